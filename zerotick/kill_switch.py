"""The operator's side of the kill switch: ``zerotick kill``, ``reduce-only`` and ``reset``.

``kill`` must work when everything else is on fire, so it does not depend on the services:
  1. it writes HALTED to the state file itself (a kill may always tighten the state; an execution that
     wakes up from a hang reads it before its next order POST, and risk adopts it);
  2. it asks risk to trip (risk halts, execution cancels, flattens and confirms at the venue);
  3. whatever the answer, it reads the venue back itself, canceling and closing until the venue shows
     nothing open; only then does it exit 0.
No numba and no service code beyond the REST client are imported on this path.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
import time
from dataclasses import dataclass
from typing import Any

from common import wire
from common.enums import TradingState, TripSource
from common.trading_state import AuditLog, StateRecord, StateStore
from services.execution.venue.venue_kill import empty_venue_direct
from zerotick.control import ControlError, NotRunning, as_doc, request

CONNECT_TIMEOUT_MS = 150  # a service that does not take a connection this fast is dead or hung
SERVICES_PATH_S = 1.5  # how long risk + execution get to empty the venue before we do it ourselves


def operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"cli:{user}@{socket.gethostname()}"


@dataclass
class KillResult:
    confirmed: bool
    via_services: dict[str, Any] | None
    services_error: str
    venue: dict[str, Any]
    elapsed_ms: float


def write_state(settings: Any, state: TradingState, reason: str, flatten: bool) -> StateRecord:
    """Write ``state`` to the state file as the CLI, out of band: the next seq, who ran it."""
    store = StateStore(settings.zmq.run_dir)
    current = store.load()
    record = StateRecord(
        state=state,
        seq=current.seq + 1,
        source=TripSource.CLI_OUT_OF_BAND,
        who=operator(),
        reason=reason,
        ts_ns=time.time_ns(),
        flatten=flatten,
    )
    store.save(record)
    return record


def kill(settings: Any, reason: str, flatten: bool, timeout_s: float) -> KillResult:
    start = time.monotonic()
    audit = AuditLog(settings.zmq.run_dir)
    record = write_state(settings, TradingState.HALTED, reason, flatten)
    audit.append("kill_requested", record)
    via: dict[str, Any] | None = None
    error = ""
    cmd = wire.SetTradingState(
        state=TradingState.HALTED,
        reason=reason,
        flatten=flatten,
        who=operator(),
        token=settings.control_token(),
        deadline_ns=time.time_ns() + int(SERVICES_PATH_S * 1e9),
    )
    try:
        reply = request(
            settings,
            "risk",
            cmd,
            timeout_ms=int(SERVICES_PATH_S * 1000) + 200,
            connect_timeout_ms=CONNECT_TIMEOUT_MS,
        )
        via = as_doc(reply)
        if isinstance(reply, wire.Reply):
            error = reply.detail
    except NotRunning:
        error = "risk not reachable: emptying the venue out of band"
    except ControlError as exc:
        error = f"risk: {exc}"
    remaining = max(0.5, timeout_s - (time.monotonic() - start))
    outcome = asyncio.run(empty_venue_direct(settings, flatten, remaining))
    elapsed_ms = (time.monotonic() - start) * 1000
    venue = outcome.report()
    audit.append(
        "kill_result", None, via_services=via, services_error=error, venue=venue, elapsed_ms=elapsed_ms
    )
    return KillResult(outcome.confirmed, via, error, venue, elapsed_ms)


def set_state(
    settings: Any, state: TradingState, reason: str, timeout_s: float
) -> tuple[bool, dict[str, Any]]:
    """reduce-only / reset through risk, the owner. Without risk, only a tightening can be written
    (to the state file, as `kill` does); a loosening needs the running system to check the venue."""
    cmd = wire.SetTradingState(
        state=state,
        reason=reason,
        who=operator(),
        token=settings.control_token(),
        deadline_ns=time.time_ns() + int(timeout_s * 1e9),
    )
    try:
        reply = request(
            settings, "risk", cmd, timeout_ms=int(timeout_s * 1000), connect_timeout_ms=CONNECT_TIMEOUT_MS
        )
    except NotRunning:
        current = StateStore(settings.zmq.run_dir).load()
        if state.code > current.state.code:
            record = write_state(settings, state, reason, False)
            AuditLog(settings.zmq.run_dir).append("change_out_of_band", record)
            return True, {"state": state.value, "detail": "risk not reachable: written to the state file"}
        return False, {
            "detail": f"risk not reachable: {state.value} needs the running system (`zerotick up`)"
        }
    except ControlError as exc:
        return False, {"detail": f"risk: {exc}"}
    doc = as_doc(reply)
    ok = isinstance(reply, wire.TripReport) and reply.ok
    return ok, doc
