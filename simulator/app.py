"""The venue: assembly of exchange, market, streams and control plane; the ``zerotick sim`` process.

One HTTP port serves everything: Alpaca trading REST (/v2/...), trade_updates (/stream), market
data (/v2/iex, /v2/sip, /v2/test, /v1beta3/crypto/us) and the control plane (/sim/...).

Ready line. When listening, the process prints exactly one line to stdout and flushes::

    zerotick-sim ready rest=http://127.0.0.1:8765 trade_updates=ws://127.0.0.1:8765/stream \
iex=ws://127.0.0.1:8765/v2/iex sip=ws://127.0.0.1:8765/v2/sip test=ws://127.0.0.1:8765/v2/test \
crypto=ws://127.0.0.1:8765/v1beta3/crypto/us metrics=9108

(one physical line): the literal prefix ``zerotick-sim ready``, then space-separated ``name=value``
tokens; values contain no spaces; ``metrics`` is the Prometheus port or ``off``. Parse with
``parse_ready_line``. Logs go to stderr as JSON lines. SIGTERM/SIGINT stop it cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from typing import Any

import uvloop
from aiohttp import web
from pydantic import ValidationError

from common.config import ConfigError, SimConfig, load_settings
from common.config_errors import validation_lines
from common.log import kv, register_secret, setup_logging
from common.metrics import serve_metrics
from simulator.arrival import StampingAppRunner
from simulator.control import Control, add_control_routes
from simulator.exchange import Exchange
from simulator.feed import FeedDriver
from simulator.market import L2Book, Market, ReplaySource
from simulator.md_stream import CRYPTO_PATHS, STOCK_PATHS, MdHub, add_md_routes
from simulator.rest import TRADE_STREAM_HUB, add_trading_routes
from simulator.state_file import StateFile, StateFileError

log = logging.getLogger("simulator.app")

READY_PREFIX = "zerotick-sim ready"

EXCHANGE: web.AppKey[Exchange] = web.AppKey("exchange", Exchange)
MARKET: web.AppKey[Market | ReplaySource] = web.AppKey("market", object)  # type: ignore[arg-type]
FEED: web.AppKey[FeedDriver] = web.AppKey("feed", FeedDriver)


def build_app(cfg: SimConfig, exchange: Exchange | None = None) -> web.Application:
    """The venue: the exchange with its trading REST and stream, the market, the market-data
    streams and /sim control. Tests may pass their own ``Exchange`` (e.g. one that records)."""
    exchange = exchange if exchange is not None else Exchange(cfg)
    app = web.Application()
    market: Market | None = None
    replay: ReplaySource | None = None
    books: dict[str, L2Book]
    if cfg.replay_file is not None:
        replay = ReplaySource(cfg.replay_file)
        books = replay.books
    else:
        market = Market.from_config(cfg)
        books = market.books
    hub = MdHub(cfg, books)
    feed = FeedDriver(hub, exchange, market, replay, cfg.message_rate, paused=cfg.feed_start_paused)
    app[EXCHANGE] = exchange
    app[MARKET] = replay if replay is not None else market  # type: ignore[assignment]
    app[FEED] = feed
    add_trading_routes(app, exchange, cfg)
    add_md_routes(app, hub)
    add_control_routes(app, Control(hub, feed, books, market, app[TRADE_STREAM_HUB].drop_all))

    state = StateFile(cfg.state_file, exchange, cfg.state_flush_ms / 1000) if cfg.state_file else None

    async def lifecycle(app: web.Application) -> Any:
        if state is not None:
            state.load()
            state.start()
        feed.seed_venue()  # before the ready line: market orders are priced from the first request
        feed.start()
        yield
        await feed.stop()
        if state is not None:
            await state.stop()

    async def close_streams(app: web.Application) -> None:
        await hub.close_all()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(close_streams)
    return app


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0") else (f"[{host}]" if ":" in host else host)


class VenueServer:
    """Runs the venue on the current event loop. ``cfg.port`` 0 binds an ephemeral port."""

    def __init__(self, cfg: SimConfig, app: web.Application | None = None) -> None:
        self.cfg = cfg
        self.app = app
        self.port = 0
        self.rest_url = ""
        self.trade_stream_url = ""
        self.stock_stream_urls: dict[str, str] = {}
        self.crypto_stream_url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        if self.app is None:
            self.app = build_app(self.cfg)
        exchange = self.app.get(EXCHANGE)
        clock = exchange.now_ns if exchange is not None else time.time_ns
        runner = StampingAppRunner(
            self.app, clock=clock, access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await runner.setup()
        site = web.TCPSite(runner, self.cfg.host, self.cfg.port, reuse_address=True)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        origin = f"{_url_host(self.cfg.host)}:{self.port}"
        self.rest_url = f"http://{origin}"
        self.trade_stream_url = f"ws://{origin}/stream"
        self.stock_stream_urls = {name: f"ws://{origin}{path}" for path, name in STOCK_PATHS.items()}
        self.crypto_stream_url = f"ws://{origin}{next(iter(CRYPTO_PATHS))}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def ready_line(self, metrics_port: int = 0) -> str:
        tokens = [f"rest={self.rest_url}", f"trade_updates={self.trade_stream_url}"]
        tokens += [f"{name}={url}" for name, url in self.stock_stream_urls.items()]
        tokens += [f"crypto={self.crypto_stream_url}", f"metrics={metrics_port or 'off'}"]
        return " ".join([READY_PREFIX, *tokens])


def parse_ready_line(line: str) -> dict[str, str]:
    """``zerotick-sim ready rest=... crypto=...`` -> {"rest": ..., "crypto": ...}."""
    if not line.startswith(READY_PREFIX + " "):
        raise ValueError(f"not a zerotick-sim ready line: {line!r}")
    return dict(tok.split("=", 1) for tok in line[len(READY_PREFIX) + 1 :].split())


# ---- process ----------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="zerotick sim", description="Run the Alpaca-compatible venue simulator.")
    p.add_argument("--config", help="TOML config file (its [sim] section is used)")
    p.add_argument("--host", help="bind address")
    p.add_argument("--port", type=int, help="HTTP/WS port, 0 = ephemeral")
    p.add_argument("--seed", type=int, help="seed of the synthetic market")
    p.add_argument("--rate", type=float, help="synthetic market-data messages per second")
    p.add_argument("--replay", help="replay this capture file instead of the synthetic market")
    p.add_argument("--metrics-port", type=int, help="Prometheus port, 0 = off")
    p.add_argument("--paused", action="store_true", help="start with the feed paused")
    p.add_argument("--state-file", help="keep orders, positions and account here across restarts")
    return p.parse_args(argv)


def sim_config_from_args(args: argparse.Namespace) -> tuple[SimConfig, bool]:
    """The [sim] settings with command-line overrides, validated; and whether logs are JSON."""
    settings = load_settings(args.config)
    overrides: dict[str, Any] = {
        "host": args.host,
        "port": args.port if args.port is not None else settings.sim_port(),
        "seed": args.seed,
        "message_rate": args.rate,
        "replay_file": args.replay,
        "metrics_port": args.metrics_port,
        "feed_start_paused": True if args.paused else None,
        "state_file": args.state_file,
    }
    data = settings.sim.model_dump()
    data.update({k: v for k, v in overrides.items() if v is not None})
    return SimConfig.model_validate(data), settings.log.use_json(sys.stderr.isatty())


async def _serve(cfg: SimConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = VenueServer(cfg)
    await server.start()
    serve_metrics(cfg.host, cfg.metrics_port)
    print(server.ready_line(cfg.metrics_port), flush=True)
    log.info(
        "venue ready", extra=kv(rest=server.rest_url, rate=cfg.message_rate, replay=str(cfg.replay_file))
    )
    await stop.wait()
    log.info("venue stopping")
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    try:
        cfg, json_logs = sim_config_from_args(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(ConfigError.EXIT_CODE) from None
    except ValidationError as exc:  # an override out of range: one line per field, exit 2
        print(ConfigError.of([f"sim.{line}" for line in validation_lines(exc)]), file=sys.stderr)
        raise SystemExit(ConfigError.EXIT_CODE) from None
    setup_logging("sim", cfg.log_level, json_logs)
    register_secret(cfg.secret_key.get_secret_value())
    try:
        uvloop.run(_serve(cfg))
    except StateFileError as exc:  # refuse to start rather than come up empty (a silent reset)
        log.error("venue state file unusable", extra=kv(path=str(cfg.state_file), error=str(exc)))
        print(f"zerotick sim: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
