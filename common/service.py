"""The skeleton every zerotick service runs on: uvloop, one PUB, one ROUTER, heartbeats, metrics,
control commands, clean shutdown on SIGTERM/SIGINT.

A service subclasses :class:`Service`, sets ``name``, and overrides ``start``, ``stop``,
``handle`` (its own request types) and ``status``. Control commands common to all services:
``ping`` and ``status``. Unknown commands are answered with a clear error, never ignored.

Trust (common.auth): a control command not declared in ``CONTROL_READ_ONLY`` needs the control token;
execution and risk also bind a privileged socket (``PRIVILEGED``) and take orders / intents only there.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import orjson
import uvloop
import zmq

from common import topics, wire
from common.auth import PRIVILEGED, REQUEST_REFUSED, ControlGuard
from common.bounds import InboundFilter
from common.clock import wall_ns
from common.config import SERVICES, ConfigError, EndpointKind, Settings, require_dialable_venue
from common.curve import CurveKeyError
from common.enums import ControlCmd
from common.log import redact_obj, register_secret, setup_logging
from common.loop_lag import LoopLagProbe
from common.metrics import HEARTBEATS, SERVICE_READY, SERVICE_UP, serve_metrics
from common.peer_link import LinkSecurity, PeerServer
from common.peer_watch import PeerWatch
from common.placement import check_cpus, pin_process, renice_process
from common.private_files import ensure_private_dir
from common.ratelog import LogLimiter
from common.tasks import TASK_FAILURES, TaskSupervisor
from common.zmq_io import Publisher, RpcClient, RpcServer, Subscriber, new_context

log = logging.getLogger(__name__)


class AlreadyRunning(SystemExit):
    """Another process runs this service on this run folder: refuse to start (exit status 1)."""

    def __init__(self, message: str, holder: str = "unknown") -> None:
        super().__init__(message)
        self.holder = holder  # the pid in the lock file


def _holder_pid(fd: int) -> str:
    """The pid the lock's holder wrote, or "unknown". A holder that has just taken the lock writes
    its pid a moment later, so an empty file is read again for up to 0.5 s."""
    for _ in range(50):
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if holder:
            return holder
        time.sleep(0.01)
    return "unknown"


class RunLock:
    """``<run_dir>/<service>.lock``, flock'ed for the life of the process, so a second copy of a
    service on the same run folder cannot take over the first one's sockets. The kernel releases
    it when the process dies, however it dies; the file keeps the holder's pid for the message."""

    def __init__(self, run_dir: Path, service: str, log_refusal: bool = True) -> None:
        self.path = run_dir / f"{service}.lock"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = _holder_pid(fd)
            finally:
                os.close(fd)
            msg = (
                f"{service} is already running on run folder {run_dir} (pid {holder} holds {self.path}); "
                "refusing to start a second copy"
            )
            if log_refusal:
                log.error(msg)
            raise AlreadyRunning(f"zerotick-{service}: {msg}", holder) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            os.close(fd)  # e.g. a full disk: no lock held, nothing left open
            raise
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None


class Service:
    name: ClassVar[str] = ""
    # Control commands anyone who reaches the rpc socket may run (besides ping and status); every
    # other command needs the control token. CONTROL_MUTATING names the known others (metric labels).
    CONTROL_READ_ONLY: ClassVar[frozenset[str]] = frozenset()
    CONTROL_MUTATING: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        self.ctx: zmq.Context = new_context()
        z = settings.zmq
        ensure_private_dir(z.run_dir.resolve())
        self.run_lock = RunLock(z.run_dir.resolve(), self.name)  # before any socket is bound
        try:
            self._bind(settings)
        except BaseException:
            self.run_lock.release()
            raise
        self._subs: list[Subscriber] = []
        self._sub_sources: list[str] = []
        self._clients: list[RpcClient] = []
        self._peer_subs: list[Subscriber] = []
        self._hb_seq = 0
        self._stopping = asyncio.Event()
        self.started_ns = wall_ns()
        self.inbound = InboundFilter(self.name)  # out-of-range values never reach a handler
        self.exit_code = 0  # non-zero after a fatal task failure: supervisord restarts the process
        # every background task of the service runs under it (common/tasks.py): none dies silently
        self.tasks = TaskSupervisor(self.name, on_fatal=self._fail)
        self.peers = PeerWatch(self.name, SERVICES, settings.zmq.peer_dead_after_ms)
        self.loop_lag = LoopLagProbe(self.name)
        self._ready_gauge = SERVICE_READY.labels(self.name)
        self._metric_errors = LogLimiter()

    def _bind(self, settings: Settings) -> None:
        z = settings.zmq
        self.guard = ControlGuard(
            self.name, self.CONTROL_READ_ONLY, self.CONTROL_MUTATING, settings.control_token()
        )
        self._refusal_logs = LogLimiter()
        try:
            self.security = LinkSecurity(settings, self.name)
        except CurveKeyError as exc:  # over tcp a service without its keys does not start
            log.error("CURVE keys unusable: not starting", extra={"fields": {"error": str(exc)}})
            raise
        kinds: tuple[EndpointKind, ...] = ("pub", "rpc")
        self._guards = [g for k in kinds if (g := self.security.guard(self.ctx, self.loop, self.name, k))]
        setups = {g.policy.socket: g.setup for g in self._guards}
        self.pub = Publisher(
            self.ctx, z.bind_endpoint(self.name, "pub"), self.name, z.sndhwm, setup=setups.get("pub")
        )
        self.rpc = RpcServer(
            self.ctx,
            self.loop,
            z.bind_endpoint(self.name, "rpc"),
            self._dispatch,
            self.name,
            setup=setups.get("rpc"),
        )
        spec = PRIVILEGED.get(self.name)
        self.peer_server = (
            PeerServer(self.ctx, self.loop, self.security, spec, self._dispatch_privileged) if spec else None
        )
        for kind in spec.requests if spec else ():  # series from the start: alerts see the first refusal
            REQUEST_REFUSED.labels(self.name, kind.__name__)

    # ---- for subclasses ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to peers and venues. Called once after the sockets are bound."""

    async def stop(self) -> None:
        """Release resources. Called once on shutdown."""

    def handle(self, msg: Any) -> Any:
        """Answer a service-specific request; return a reply, an awaitable of one, or None."""
        return wire.Reply(ok=False, detail=f"{self.name} does not handle {type(msg).__name__}")

    def control(self, cmd: wire.Control) -> wire.Reply | None:
        """Service-specific control commands; return None for 'unknown'."""
        return None

    def status(self) -> dict[str, Any]:
        return {}

    def heartbeat_state(self) -> str:
        return "ok"

    def is_ready(self) -> bool:
        """What ``zt_service_ready`` shows: started and able to do its job (subclasses narrow it)."""
        return True

    def refresh_metrics(self) -> None:
        """Gauges computed from the service's state, on the loop, every heartbeat interval."""

    def state_reason(self) -> str:
        """Why ``heartbeat_state()`` is not "ok" (empty when it is): `zerotick status` shows it."""
        return ""

    def incarnation(self) -> str:
        """Execution: the name of its order-event sequence (Heartbeat.incarnation); others: ""."""
        return ""

    def boot(self) -> int:
        return 0

    def last_event_seq(self) -> int:
        return 0

    # ---- helpers ----------------------------------------------------------------------------

    def subscribe(
        self,
        service: str,
        prefixes: list[bytes],
        handler: Any,
        conflate: tuple[bytes, ...] = (),
        paced_ms: int | None = None,
    ) -> Subscriber:
        """``handler(topic, msgs)`` gets each batch with its out-of-range messages dropped (counted).
        ``conflate``: topic prefixes whose older frames are skipped when newer ones already wait.
        ``paced_ms``: drained every so many ms (and by ``Subscriber.drain``), not on every frame."""
        z = self.settings.zmq
        inbound = self.inbound

        def checked(topic: bytes, msgs: list[Any]) -> None:
            msgs = inbound(topic, msgs)
            if msgs:
                handler(topic, msgs)

        sub = Subscriber(
            self.ctx,
            self.loop,
            [z.endpoint(service, "pub")],
            prefixes,
            checked,
            self.name,
            z.rcvhwm,
            conflate=conflate,
            setup=self.security.client(service, "pub"),
            paced_s=paced_ms / 1000 if paced_ms else None,
        )
        self._subs.append(sub)
        self._sub_sources.append(service)
        return sub

    def client(self, service: str, timeout_ms: int | None = None) -> RpcClient:
        z = self.settings.zmq
        c = RpcClient(
            self.ctx,
            self.loop,
            z.endpoint(service, "rpc"),
            self.name,
            service,
            timeout_ms=timeout_ms or z.request_timeout_ms,
            heartbeat_ms=z.heartbeat_interval_ms,
            dead_after_ms=z.peer_dead_after_ms,
            setup=self.security.client(service, "rpc"),
        )
        self._clients.append(c)
        return c

    def peer_client(self, service: str, timeout_ms: int | None = None) -> RpcClient:
        """A client of ``service``'s privileged socket, authenticated as this service."""
        spec = PRIVILEGED.get(service)
        if spec is None or spec.peer != self.name:
            raise ValueError(f"{self.name} may not use a privileged socket of {service}")
        z = self.settings.zmq
        c = RpcClient(
            self.ctx,
            self.loop,
            z.endpoint(service, spec.kind),
            self.name,
            service,
            timeout_ms=timeout_ms or z.request_timeout_ms,
            heartbeat_ms=z.heartbeat_interval_ms,
            dead_after_ms=z.peer_dead_after_ms,
            setup=self.security.client(service, spec.kind),
        )
        self._clients.append(c)
        return c

    # ---- machinery --------------------------------------------------------------------------

    def _dispatch(self, msg: Any) -> Any:
        """The general rpc socket: control commands (guarded) and requests anyone may send."""
        spec = self.peer_server.spec if self.peer_server else None
        if spec is not None and isinstance(msg, spec.requests):
            kind = type(msg).__name__
            REQUEST_REFUSED.labels(self.name, kind).inc()
            if self._refusal_logs.allow(kind):
                log.warning("request on the wrong socket refused", extra={"fields": {"kind": kind}})
            return wire.Reply(ok=False, detail=f"refused: {self.name} takes {kind} only from {spec.peer}")
        if isinstance(msg, wire.Control):
            refusal = self.guard.refusal(msg, wall_ns())
            if refusal is not None:
                return refusal
            if msg.cmd == ControlCmd.PING:
                return wire.Reply(ok=True, detail="pong")
            if msg.cmd == ControlCmd.STATUS:
                return wire.Reply(
                    ok=True,
                    detail="status",
                    data=orjson.dumps(
                        redact_obj(self.full_status()), default=str, option=orjson.OPT_NON_STR_KEYS
                    ),
                )
            reply = self.control(msg)
            if reply is None:
                return wire.Reply(ok=False, detail=f"unknown command {msg.cmd!r} for {self.name}")
            return reply
        return self.handle(msg)

    def _dispatch_privileged(self, msg: Any) -> Any:
        """The privileged socket (only its one authenticated peer gets here): its requests, and ping."""
        assert self.peer_server is not None
        if isinstance(msg, self.peer_server.spec.requests):
            return self.handle(msg)
        if isinstance(msg, wire.Control) and msg.cmd == ControlCmd.PING:
            return wire.Reply(ok=True, detail="pong")
        return wire.Reply(ok=False, detail=f"{type(msg).__name__} goes to {self.name}'s rpc socket")

    def full_status(self) -> dict[str, Any]:
        return {
            "service": self.name,
            "pid": os.getpid(),
            "cpus": sorted(os.sched_getaffinity(0)),
            "nice": os.getpriority(os.PRIO_PROCESS, 0),
            "state": self.heartbeat_state(),
            "state_reason": self.state_reason(),
            "uptime_s": round((wall_ns() - self.started_ns) / 1e9, 3),
            "venue": self.settings.venue,
            "tasks": self.tasks.status(),
            "subscriptions": self.subscription_stats(),
            **self.status(),
        }

    def subscription_stats(self) -> dict[str, dict[str, dict[str, int]]]:
        """Per publisher and topic: received, gaps (never arrived), conflated (skipped as superseded)."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for source, sub in zip(self._sub_sources, self._subs, strict=True):
            out.setdefault(source, {}).update(sub.stats())
        return out

    async def _heartbeats(self) -> None:
        interval = self.settings.zmq.heartbeat_interval_ms / 1000
        topic = topics.heartbeat(self.name)
        hb_count = HEARTBEATS.labels(self.name)
        pid = os.getpid()
        while True:
            self._hb_seq += 1
            hb = wire.Heartbeat(
                service=self.name,
                pid=pid,
                seq=self._hb_seq,
                state=self.heartbeat_state(),
                last_event_seq=self.last_event_seq(),
                ts_ns=wall_ns(),
                incarnation=self.incarnation(),
                boot=self.boot(),
            )
            self.pub.publish(topic, [hb])
            hb_count.inc()
            self._refresh_gauges()
            await asyncio.sleep(interval)

    def _refresh_gauges(self) -> None:
        """The ready and peer gauges and the service's own; a failure is logged, never fatal to the
        heartbeats."""
        try:
            self._ready_gauge.set(1 if self.is_ready() else 0)
            self.peers.refresh()
            self.refresh_metrics()
        except Exception as exc:
            TASK_FAILURES.labels(self.name, "refresh_metrics").inc()
            if self._metric_errors.allow(type(exc).__name__):
                log.exception("refreshing metrics failed")

    def _watch_peers(self) -> None:
        """A SUB socket on each other service's heartbeats (``zt_peer_alive``); one per peer, since
        over tcp each publisher has its own CURVE key."""
        z = self.settings.zmq
        for peer in self.peers.peers:
            sub = Subscriber(
                self.ctx,
                self.loop,
                [z.endpoint(peer, "pub")],
                [topics.HEARTBEAT],
                self.peers.on_heartbeats,
                self.name,
                z.rcvhwm,
                setup=self.security.client(peer, "pub"),
            )
            self._peer_subs.append(sub)

    def request_stop(self) -> None:
        self._stopping.set()

    def _fail(self, task: str, exc: BaseException) -> None:
        log.critical("a task that must not stop failed: exiting", extra={"fields": {"task": task}})
        self.exit_code = 1
        self.request_stop()

    async def run_forever(self) -> None:
        """Start, serve until asked to stop, then shut down; the sockets are closed on every path.

        A stop request while ``start()`` is still waiting (e.g. on a venue) cancels it. If
        ``start()`` raises, the service shuts down and the exception propagates."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.request_stop)
        try:
            if not await self._start_unless_stopped():
                return
            # Everything start-up made (modules, numba's compiler, config) lives as long as the
            # process: out of the collector's way, so a collection on the hot path scans only what
            # trading allocated since.
            gc.collect()
            gc.freeze()
            if self.settings.host.cpu_affinity is not None:
                # only now: start-up (imports, numba's caches, connecting) runs on every CPU, in
                # parallel with the other services', which keeps them ready within ~3 s
                cpus = pin_process(self.settings.host.cpu_affinity)
                log.info("pinned to CPUs", extra={"fields": {"cpus": sorted(cpus)}})
            self._watch_peers()
            self.tasks.spawn("heartbeats", self._heartbeats)
            self.tasks.spawn("loop_lag", self.loop_lag.run)
            SERVICE_UP.labels(self.name).set(1)
            log.info("service ready", extra={"fields": {"pid": os.getpid(), "venue": self.settings.venue}})
            await self._stopping.wait()
        finally:
            log.info("service stopping")
            SERVICE_UP.labels(self.name).set(0)
            self._ready_gauge.set(0)
            await self._shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.loop.remove_signal_handler(sig)

    async def _start_unless_stopped(self) -> bool:
        starting = self.loop.create_task(self.start())
        stopping = self.loop.create_task(self._stopping.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            stopping.cancel()
            starting.result()  # raises what start() raised
            return True
        starting.cancel()
        try:
            await starting
        except asyncio.CancelledError:
            pass
        return False

    async def _shutdown(self) -> None:
        # Take no new requests or events first, so nothing is acted on while stop() runs.
        self.rpc.close()
        if self.peer_server is not None:
            self.peer_server.close()
        for s in self._subs:
            s.close()
        for sub in self._peer_subs:
            sub.close()
        try:
            await self.stop()
        except Exception:
            log.exception("stop() failed")
        finally:
            await self.tasks.stop()
            for c in self._clients:
                c.close()
            self.pub.close()
            for guard in self._guards:
                guard.close()
            self.run_lock.release()


def run(service_cls: type[Service], settings: Settings) -> None:
    """Run one service in this process until SIGTERM/SIGINT."""
    require_dialable_venue(settings)
    setup_logging(service_cls.name, settings.log.level, settings.log.use_json(sys.stderr.isatty()))
    for secret in (settings.alpaca.key_id, settings.alpaca.secret_key, settings.sim.secret_key):
        if secret is not None:
            register_secret(secret.get_secret_value())
    if settings.host.cpu_affinity is not None:
        check_cpus(settings.host.cpu_affinity)  # refused at start; applied once started (Service.run_forever)
    nice = getattr(settings.host.nice, service_cls.name, 0)
    if nice:
        log.info("niceness", extra={"fields": {"nice": renice_process(nice)}})
    serve_metrics(settings.metrics.host, settings.metrics.port(service_cls.name))

    exit_code = 0

    async def main() -> None:
        nonlocal exit_code
        svc = service_cls(settings)
        await svc.run_forever()
        exit_code = svc.exit_code

    uvloop.run(main())
    if exit_code:
        raise SystemExit(exit_code)


def main(service_cls: type[Service], argv: list[str] | None = None) -> None:
    """``python -m services.<name> [--config FILE]``"""
    import argparse

    from common.config import load_settings

    p = argparse.ArgumentParser(prog=f"zerotick-{service_cls.name}")
    p.add_argument("--config", help="TOML config file (default: $ZEROTICK_CONFIG)")
    args = p.parse_args(argv)
    try:
        run(service_cls, load_settings(args.config))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(ConfigError.EXIT_CODE) from None
