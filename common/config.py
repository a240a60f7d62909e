"""The one configuration model of zerotick.

Sources, highest priority first: explicit keyword arguments, environment variables
(``ZT_`` prefix, ``__`` between nesting levels, e.g. ``ZT_RISK__MAX_ORDER_QTY=5``; plus Alpaca's
own ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY`` / ``APCA_API_BASE_URL``), then a TOML file
(``--config`` or ``ZEROTICK_CONFIG``), then defaults. Invalid values are refused at start with a
message that names the field.
"""

from __future__ import annotations

import datetime as dt
import os
import urllib.parse
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from common import config_errors, sim_port
from common.enums import TradingState
from common.private_files import create_secret, read_secret

PAPER_BASE_URL = "https://paper-api.alpaca.markets"
LIVE_BASE_URL = "https://api.alpaca.markets"
DATA_STREAM_ORIGIN = "wss://stream.data.alpaca.markets"

SERVICES = ("market_data", "signal", "risk", "execution")

ALPACA_LIVE_HOST = "api.alpaca.markets"
ALPACA_PAPER_HOST = "paper-api.alpaca.markets"

# The privileged request sockets: kind -> the service that binds it. Who may connect is common.auth's.
PRIVILEGED_KINDS = {"orders": "execution", "intents": "risk"}
EndpointKind = Literal["pub", "rpc", "orders", "intents"]

CONTROL_TOKEN_FILE = "control.token"
PEER_KEY_FILE = "peer.key"


def url_host(url: str | None) -> str:
    """The host of ``url`` as DNS sees it: lower case, no trailing dot, no userinfo or port."""
    if not url:
        return ""
    try:
        host = urllib.parse.urlsplit(url.strip()).hostname or ""
    except ValueError:
        return ""
    return host.rstrip(".")


def is_alpaca_live(url: str | None) -> bool:
    """True for any spelling of Alpaca's live trading host (case, port, userinfo, trailing dot, path)."""
    if not url:
        return False
    try:
        scheme = urllib.parse.urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return False
    return scheme in ("http", "https", "ws", "wss") and url_host(url) == ALPACA_LIVE_HOST


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class AlpacaConfig(Section):
    """Where to trade. With no keys the embedded simulator is the venue."""

    key_id: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("key_id", "APCA_API_KEY_ID", "apca_api_key_id")
    )
    secret_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("secret_key", "APCA_API_SECRET_KEY", "apca_api_secret_key"),
    )
    # Trading REST origin, no /v2 and no trailing slash. None = derived from paper/live/sim.
    base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("base_url", "APCA_API_BASE_URL", "apca_api_base_url")
    )
    trade_stream_url: str | None = None  # full ws URL of trade_updates, default base_url + /stream
    stock_stream_url: str | None = None  # full ws URL, e.g. wss://stream.data.alpaca.markets/v2/iex
    crypto_stream_url: str | None = None  # full ws URL, e.g. .../v1beta3/crypto/us
    stock_feed: Literal["iex", "sip", "test"] = "iex"
    live: bool = False  # trading real money requires this flag explicitly

    @field_validator("base_url")
    @classmethod
    def _bare_origin(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.rstrip("/")
        if v.endswith("/v2"):
            v = v[:-3]
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) origin such as https://paper-api.alpaca.markets")
        return v

    @property
    def has_keys(self) -> bool:
        return self.key_id is not None and self.secret_key is not None


class SimConfig(Section):
    """The embedded Alpaca-compatible venue (used when no Alpaca keys are configured)."""

    host: str = "127.0.0.1"  # where the venue binds (0.0.0.0 in a container)
    # how the services reach the venue (a compose service name, another machine); None = host
    connect_host: str | None = None
    port: int = Field(default=8765, ge=0, le=65535)  # 0 = ephemeral
    metrics_port: int = Field(default=9108, ge=0, le=65535)
    key_id: str = "zerotick-sim-key"
    secret_key: SecretStr = SecretStr("zerotick-sim-secret")
    seed: int = 7
    stocks: list[str] = Field(default_factory=lambda: ["AAPL", "MSFT", "FAKEPACA"])
    # tradable stocks with no synthetic data: only what /sim/inject sends (benchmarks' probe symbol)
    quiet_stocks: list[str] = Field(default_factory=list)
    crypto: list[str] = Field(default_factory=lambda: ["BTC/USD", "ETH/USD"])
    message_rate: float = Field(default=20.0, ge=0, le=1_000_000)  # total md messages / s
    batch_max: int = Field(default=16, ge=1, le=10_000)  # messages per ws frame at most
    book_depth: int = Field(default=10, ge=1, le=500)
    bar_interval_s: float = Field(default=60.0, gt=0)
    replay_file: Path | None = None
    rate_limit_per_min: int = Field(default=200, ge=1)
    one_connection_per_key: bool = True
    starting_cash: Decimal = Decimal("100000")
    auth_timeout_s: float = Field(default=10.0, gt=0)
    log_level: str = "INFO"
    md_send_queue_max: int = Field(default=10_000, ge=1)  # frames queued per md client before 407
    md_log_size: int = Field(default=4096, ge=1)  # frames kept for GET /sim/md/log
    feed_start_paused: bool = False  # synthetic/replay feed waits for POST /sim/feed/resume
    # > 0: orders are acknowledged (pending_new -> new), canceled and replaced this long after the
    # request, with pending_* events in between; 0 = everything takes effect at once
    ack_delay_ms: float = Field(default=0.0, ge=0, le=60_000)
    # orders, positions, account and id counters survive a restart (simulator/state_file.py);
    # None = a restarted venue starts empty. Written when changed, at most every state_flush_ms.
    state_file: Path | None = None
    state_flush_ms: float = Field(default=50.0, ge=1, le=60_000)

    @field_validator("starting_cash")
    @classmethod
    def _cash(cls, v: Decimal) -> Decimal | None:
        return _nanos(v, _MAX_MONEY, allow_zero=True)


class ServiceHost(Section):
    """Where one service's sockets live over tcp: ``bind`` is the address it binds (0.0.0.0 in a
    container), ``connect`` the name or address the others (and the CLI) reach it by. None =
    ``zmq.tcp_host``."""

    bind: str | None = None
    connect: str | None = None


class ZmqHosts(Section):
    market_data: ServiceHost = Field(default_factory=ServiceHost)
    signal: ServiceHost = Field(default_factory=ServiceHost)
    risk: ServiceHost = Field(default_factory=ServiceHost)
    execution: ServiceHost = Field(default_factory=ServiceHost)


class ZmqConfig(Section):
    """Sockets. Every service binds one PUB (events) and one ROUTER (requests and control); execution
    and risk also bind a privileged ROUTER ("orders", "intents") that only their one peer may use.
    Over tcp every socket is CURVE-encrypted and authenticated with the keys in ``curve_dir``."""

    run_dir: Path = Path("run")
    transport: Literal["ipc", "tcp"] = "ipc"
    tcp_host: str = (
        "127.0.0.1"  # bind and connect host of every service without its own [zmq.hosts.<service>]
    )
    tcp_base_port: int = Field(default=5550, ge=1024, le=65000)
    hosts: ZmqHosts = Field(default_factory=ZmqHosts)
    # CURVE keys (`zerotick keys generate --dir`): public/<name>.key, private/<name>.key_secret;
    # required over tcp; relative = relative to the config file's folder
    curve_dir: Path | None = None
    sndhwm: int = Field(default=100_000, ge=1)
    rcvhwm: int = Field(default=100_000, ge=1)
    request_timeout_ms: int = Field(default=250, ge=1, le=60_000)
    heartbeat_interval_ms: int = Field(default=500, ge=10)
    peer_dead_after_ms: int = Field(default=2_000, ge=50)
    # the secret the peers' credentials derive from; None = <run_dir>/peer.key (made on first use)
    peer_secret: SecretStr | None = None

    @model_validator(mode="after")
    def _tcp_needs_keys(self) -> ZmqConfig:
        if self.transport == "tcp" and self.curve_dir is None:
            raise ValueError(
                "transport 'tcp' needs CURVE keys: set zmq.curve_dir to a folder made by "
                "`zerotick keys generate --dir DIR` (ZT_ZMQ__CURVE_DIR)"
            )
        return self

    def bind_host(self, service: str) -> str:
        return getattr(self.hosts, _known(service)).bind or self.tcp_host

    def connect_host(self, service: str) -> str:
        return getattr(self.hosts, _known(service)).connect or self.tcp_host

    def endpoint(self, service: str, kind: EndpointKind) -> str:
        """Where a client reaches ``service``'s ``kind`` socket."""
        return self._endpoint(service, kind, self.connect_host)

    def bind_endpoint(self, service: str, kind: EndpointKind) -> str:
        """Where ``service`` binds its ``kind`` socket."""
        return self._endpoint(service, kind, self.bind_host)

    def _endpoint(self, service: str, kind: EndpointKind, host_of: Callable[[str], str]) -> str:
        _known(service)
        if kind in PRIVILEGED_KINDS and PRIVILEGED_KINDS[kind] != service:
            raise ValueError(f"{service} has no {kind!r} socket")
        if kind not in ("pub", "rpc", *PRIVILEGED_KINDS):
            raise ValueError(f"unknown endpoint kind {kind!r}")
        if self.transport == "ipc":
            return f"ipc://{self.run_dir.resolve()}/{service}.{kind}"
        if kind in PRIVILEGED_KINDS:  # after the pub/rpc pairs: existing port numbers do not move
            port = self.tcp_base_port + 2 * len(SERVICES) + SERVICES.index(service)
        else:
            port = self.tcp_base_port + 2 * SERVICES.index(service) + (1 if kind == "rpc" else 0)
        host = host_of(service)
        return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def _known(service: str) -> str:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}")
    return service


class MetricsConfig(Section):
    host: str = "127.0.0.1"  # where /metrics binds (0.0.0.0 in a container); the venue's binds on sim.host
    base_port: int = Field(default=9101, ge=0, le=65000)  # service i gets base_port + i; 0 = off

    def port(self, service: str) -> int:
        return 0 if self.base_port == 0 else self.base_port + SERVICES.index(service)


class MarketDataConfig(Section):
    stocks: list[str] = Field(default_factory=lambda: ["AAPL", "MSFT"])
    crypto: list[str] = Field(default_factory=lambda: ["BTC/USD"])
    subscribe_trades: bool = True
    subscribe_bars: bool = True
    book_depth_published: int = Field(default=5, ge=1, le=50)
    book_capacity: int = Field(default=512, ge=8, le=100_000)  # numba book levels per side
    stale_after_s: float = Field(default=5.0, gt=0)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    capture_file: Path | None = None

    @field_validator("stocks", "crypto")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        for s in v:
            if not s or s != s.strip() or s != s.upper():
                raise ValueError(f"symbol {s!r} must be upper-case with no spaces")
        return v


class StrategyConfig(Section):
    name: str  # unique instance name
    kind: str  # registered strategy name ("probe", "imbalance", ...) or "module:Class"
    symbols: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class SignalConfig(Section):
    strategies: list[StrategyConfig] = Field(default_factory=list)
    # folders strategy modules ("module:Class" kinds) are imported from; relative: to the config file
    strategy_paths: list[Path] = Field(default_factory=list)
    timer_interval_s: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _unique_names(self) -> SignalConfig:
        names = [s.name for s in self.strategies]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"strategy names must be unique, repeated: {sorted(dup)}")
        return self


NANO = Decimal("1e-9")
_MAX_QTY = Decimal("1e9")  # units: far beyond any order, well inside int64 nanos
_MAX_MONEY = Decimal("1e9")  # dollars: 1e18 nanos, inside int64 (9.2e18) with room for sums


def _nanos(v: Decimal | None, upper: Decimal, allow_zero: bool = False) -> Decimal | None:
    """A quantity or amount that is exact in nanos (9 decimals), positive (or zero where allowed) and
    at most ``upper``. A value that would round in the conversion to int nanos is refused, never
    rounded: ``1e-10`` would silently become 0."""
    if v is None:
        return v
    if not v.is_finite():
        raise ValueError("must be a finite number")
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError("must be positive" if not allow_zero else "must not be negative")
    if v > upper:
        raise ValueError(f"must be at most {upper}")
    exact = v.quantize(NANO)  # within 28 digits: v is at most 1e12 here
    if v != exact:
        becomes = format(exact.normalize(), "f") if exact else "0"
        raise ValueError(
            f"{format(v, 'f')} is not exact to 9 decimal places (int nanos): it would become {becomes}"
        )
    return v


class SymbolRiskLimits(Section):
    """Per-symbol overrides of :class:`RiskConfig`'s per-symbol limits; unset = the global value."""

    max_order_qty: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_position_qty: Decimal | None = None
    price_band_bps: int | None = Field(default=None, ge=1, le=100_000)
    max_open_orders: int | None = Field(default=None, ge=1, le=100_000)
    max_quote_age_ms: int | None = Field(default=None, ge=1, le=3_600_000)
    duplicate_window_ms: int | None = Field(default=None, ge=0, le=3_600_000)
    allow_short: bool | None = None

    @field_validator("max_order_qty", "max_position_qty")
    @classmethod
    def _qty(cls, v: Decimal | None) -> Decimal | None:
        return _nanos(v, _MAX_QTY)

    @field_validator("max_order_notional")
    @classmethod
    def _money(cls, v: Decimal | None) -> Decimal | None:
        return _nanos(v, _MAX_MONEY)


class RiskConfig(Section):
    """Pre-trade limits (docs/risk-checks.md). Per-symbol limits can be overridden in ``symbols``."""

    # per symbol (overridable in `symbols`)
    max_order_qty: Decimal = Decimal("100")
    max_order_notional: Decimal = Decimal("50000")
    max_position_qty: Decimal = Decimal("500")  # absolute, per symbol
    price_band_bps: int = Field(default=500, ge=1, le=100_000)  # limit price vs current quote mid
    max_open_orders_per_symbol: int = Field(default=20, ge=1, le=100_000)
    # the quote's exchange timestamp vs the wall clock, either way
    max_quote_age_ms: int = Field(default=2_000, ge=1, le=3_600_000)
    # risk reads market data every so many ms and right before each decision, not on every frame
    # (one wake-up per period instead of one per frame; the decision still sees the newest quote).
    # 0 = on every frame.
    quote_drain_ms: int = Field(default=5, ge=0, le=1_000)
    duplicate_window_ms: int = Field(default=1_000, ge=0, le=3_600_000)  # 0 = no duplicate guard
    allow_short: bool = False
    symbols: dict[str, SymbolRiskLimits] = Field(default_factory=dict)
    allow_symbols: list[str] | None = None  # None = every symbol not denied
    deny_symbols: list[str] = Field(default_factory=list)
    # across symbols
    max_gross_exposure: Decimal = Decimal("200000")  # sum of |worst-case position| * mid
    max_net_exposure: Decimal = Decimal("100000")  # |sum of signed worst-case position * mid|
    max_open_orders: int = Field(default=100, ge=1, le=1_000_000)
    max_daily_loss: Decimal = Decimal("10000")  # beyond it only reducing orders pass
    # The trading day that loss is counted over: it starts at this local time in this zone, from
    # the P&L at that moment (kept in the run folder across restarts the same day).
    day_timezone: str = "America/New_York"
    day_starts_at: dt.time = dt.time(0, 0)
    order_rate_per_s: Decimal | None = Decimal("10")  # token bucket over all strategies; None = off
    order_rate_burst: int = Field(default=20, ge=1, le=1_000_000)
    strategy_order_rate_per_s: Decimal | None = Decimal("5")  # per strategy; None = off
    strategy_order_rate_burst: int = Field(default=10, ge=1, le=1_000_000)
    require_quote: bool = True  # reject orders on symbols with no current quote
    intent_max_age_ms: int = Field(default=1_000, ge=1)  # drop intents older than this on arrival

    def quote_age_limit_ns(self, symbol: str) -> int:
        """How old (by its exchange timestamp) the tick an order was built from may be when the order
        goes out; checked by risk and again by execution right before the POST."""
        override = self.symbols.get(symbol)
        ms = override.max_quote_age_ms if override and override.max_quote_age_ms else self.max_quote_age_ms
        return ms * 1_000_000

    @field_validator("max_order_qty", "max_position_qty")
    @classmethod
    def _qty(cls, v: Decimal) -> Decimal | None:
        return _nanos(v, _MAX_QTY)

    @field_validator("max_order_notional", "max_gross_exposure", "max_net_exposure", "max_daily_loss")
    @classmethod
    def _money(cls, v: Decimal) -> Decimal | None:
        return _nanos(v, _MAX_MONEY)

    @field_validator("order_rate_per_s", "strategy_order_rate_per_s")
    @classmethod
    def _rate(cls, v: Decimal | None) -> Decimal | None:
        return _nanos(v, Decimal(1_000_000))

    @field_validator("day_timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as America/New_York)") from None
        return v

    @field_validator("day_starts_at")
    @classmethod
    def _local_time(cls, v: dt.time) -> dt.time:
        if v.tzinfo is not None:
            raise ValueError("give the time without an offset: risk.day_timezone says where it is")
        return v

    @field_validator("allow_symbols", "deny_symbols", "symbols")
    @classmethod
    def _symbol_names(cls, v: Any) -> Any:
        for s in v or ():
            if not s or s != s.strip() or s != s.upper():
                raise ValueError(f"symbol {s!r} must be upper-case with no spaces")
        return v


class TriggerConfig(Section):
    """One automatic kill-switch trigger: whether it is on, the state it moves to and whether it
    closes every position. Its action applies only when stricter than the current state."""

    enabled: bool = True
    action: TradingState = TradingState.HALTED
    flatten: bool = False

    @field_validator("action")
    @classmethod
    def _not_active(cls, v: TradingState) -> TradingState:
        if v is TradingState.ACTIVE:
            raise ValueError("must be 'halted' or 'reduce_only'")
        return v


class MoneyTrigger(TriggerConfig):
    limit: Decimal  # money, beyond which the trigger fires

    @field_validator("limit")
    @classmethod
    def _money(cls, v: Decimal) -> Decimal | None:
        return _nanos(v, _MAX_MONEY)


class DailyLossTrigger(MoneyTrigger):
    # Twice risk.max_daily_loss: the pre-trade check already blocks new risk at 10k; at 20k the
    # losses are running through it (gaps, reducing orders at bad prices), so stop and get out.
    limit: Decimal = Decimal("20000")
    flatten: bool = True


class DrawdownTrigger(MoneyTrigger):
    # Giving back 10k from the session's best P&L: keep managing positions, open nothing new.
    limit: Decimal = Decimal("10000")
    action: TradingState = TradingState.REDUCE_ONLY


class CountTrigger(TriggerConfig):
    max_count: int = Field(ge=1, le=1_000_000)  # fires at max_count + 1 within window_s
    window_s: float = Field(default=60.0, gt=0, le=86_400)


class RejectRateTrigger(CountTrigger):
    # 50 rejects a minute (risk's own, not halted/reduce_only/not_ready, plus the venue's) is a
    # strategy or venue in a loop; normal trading sees a few.
    max_count: int = Field(default=50, ge=1, le=1_000_000)


class OrderRateTrigger(CountTrigger):
    # Orders risk approved. 600 a minute is risk's default token bucket (10/s) saturated for a
    # whole minute and three times Alpaca's 200 requests/min: only a runaway strategy gets there.
    max_count: int = Field(default=600, ge=1, le=1_000_000)


class DurationTrigger(TriggerConfig):
    after_s: float = Field(gt=0, le=86_400)


class StaleDataTrigger(DurationTrigger):
    # No quote on any symbol for 30 s while positions or working orders exist: the feed is dead
    # (market_data itself calls a feed stale after 5 s and reconnects well before this).
    after_s: float = Field(default=30.0, gt=0, le=86_400)


class TradeStreamDownTrigger(DurationTrigger):
    # Execution's trade_updates down 30 s: fills are learnt only by reconciles; reconnects take
    # well under that (backoff up to execution.reconnect_max_s).
    after_s: float = Field(default=30.0, gt=0, le=86_400)


class ExecutionUnreachableTrigger(DurationTrigger):
    # No heartbeat from execution for 10 s after one was seen: supervisord restarts a crashed
    # execution in ~1-2 s, so 10 s means it is hung or cannot come back.
    after_s: float = Field(default=10.0, gt=0, le=86_400)


class LatencyTrigger(TriggerConfig):
    # Tick-to-order (tick received -> order POST written) p99 over the last window_s: normal is
    # well under 5 ms; 250 ms means a stalled host or event loop. Needs min_samples to judge.
    action: TradingState = TradingState.REDUCE_ONLY
    p99_ms: float = Field(default=250.0, gt=0, le=60_000)
    window_s: float = Field(default=60.0, gt=0, le=86_400)
    min_samples: int = Field(default=50, ge=1, le=100_000)
    max_samples: int = Field(default=2_000, ge=1, le=100_000)  # the window keeps at most these

    @model_validator(mode="after")
    def _samples(self) -> LatencyTrigger:
        if self.min_samples > self.max_samples:
            raise ValueError("min_samples must be at most max_samples")
        return self


class JournalTrigger(TriggerConfig):
    # Execution's heartbeat says "journal_failed" (disk full, read-only or gone): a trading system
    # that cannot write its order journal must not trade. Fires on the first such heartbeat.
    pass


class KillSwitchConfig(Section):
    """Automatic kill-switch triggers (docs/triggers.md), evaluated by risk."""

    eval_interval_ms: int = Field(default=100, ge=10, le=10_000)
    daily_loss: DailyLossTrigger = Field(default_factory=DailyLossTrigger)
    drawdown: DrawdownTrigger = Field(default_factory=DrawdownTrigger)
    reject_rate: RejectRateTrigger = Field(default_factory=RejectRateTrigger)
    order_rate: OrderRateTrigger = Field(default_factory=OrderRateTrigger)
    stale_data: StaleDataTrigger = Field(default_factory=StaleDataTrigger)
    trade_stream_down: TradeStreamDownTrigger = Field(default_factory=TradeStreamDownTrigger)
    execution_unreachable: ExecutionUnreachableTrigger = Field(default_factory=ExecutionUnreachableTrigger)
    latency: LatencyTrigger = Field(default_factory=LatencyTrigger)
    journal: JournalTrigger = Field(default_factory=JournalTrigger)


class ExecutionConfig(Section):
    rate_limit_per_min: int = Field(default=190, ge=1)  # stays under Alpaca's 200/min
    rate_limit_burst: int = Field(default=10, ge=1)
    http_timeout_s: float = Field(default=5.0, gt=0)
    client_order_id_prefix: str = Field(default="zt", pattern=r"^[A-Za-z0-9]{1,8}$")
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    event_log_size: int = Field(default=100_000, ge=100)  # order events kept for replay
    account_poll_s: float = Field(default=5.0, ge=0.5, le=3_600)  # venue account (buying power) refresh


class ControlConfig(Section):
    """The control channel. Every control command that changes something must carry this token;
    None = the token `zerotick up` generates into <run_dir>/control.token."""

    token: SecretStr | None = None


class ServiceNice(Section):
    """Each service's niceness (-20 most urgent .. 19). Below 0 needs root or CAP_SYS_NICE."""

    market_data: int = Field(default=0, ge=-20, le=19)
    signal: int = Field(default=0, ge=-20, le=19)
    risk: int = Field(default=0, ge=-20, le=19)
    execution: int = Field(default=0, ge=-20, le=19)


class HostConfig(Section):
    """Host tuning: applied by `zerotick up` (idle_poll) and by each service as it starts
    (cpu_affinity, nice)."""

    # hold /dev/cpu_dma_latency at 0 while the system runs (root; idle CPUs poll: lower wake-up latency)
    idle_poll: bool = False
    # the CPUs every thread of the four services runs on; None = wherever the kernel puts them.
    # One CPU for all four turns each hop's cross-CPU wake-up into a local context switch
    # (docs/architecture.md, "CPU placement").
    cpu_affinity: list[int] | None = None
    # the scheduler's weight per service. Sharing CPUs, the later a service is on the way to the
    # order POST, the more urgent it should be: with execution < risk < signal < market_data the
    # process a send wakes runs before the sender's work after the send (docs/architecture.md).
    nice: ServiceNice = Field(default_factory=ServiceNice)

    @field_validator("cpu_affinity")
    @classmethod
    def _cpus(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return None
        if not v:
            raise ValueError("an empty list pins to no CPU; leave it unset for no pinning")
        if any(c < 0 or c > 4095 for c in v):
            raise ValueError("CPU numbers are 0..4095")
        if len(set(v)) != len(v):
            raise ValueError("a CPU is listed twice")
        return v


class LogConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # json: one object per line (log files, shippers); console: one readable line; auto: console when
    # stderr is a terminal (`zerotick run` by hand), json otherwise (under supervisord)
    format: Literal["auto", "json", "console"] = "auto"
    json_format: bool | None = None  # the older spelling: true = json, false = console; wins when set

    def use_json(self, stderr_is_terminal: bool) -> bool:
        if self.json_format is not None:
            return self.json_format
        return self.format == "json" or (self.format == "auto" and not stderr_is_terminal)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ZT_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    alpaca: AlpacaConfig = Field(default_factory=AlpacaConfig)
    sim: SimConfig = Field(default_factory=SimConfig)
    zmq: ZmqConfig = Field(default_factory=ZmqConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    market_data: MarketDataConfig = Field(default_factory=MarketDataConfig)
    signal: SignalConfig = Field(default_factory=SignalConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    kill_switch: KillSwitchConfig = Field(default_factory=KillSwitchConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    host: HostConfig = Field(default_factory=HostConfig)
    log: LogConfig = Field(default_factory=LogConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            _AlpacaEnvSource(settings_cls),
        ]
        path = _config_file or os.environ.get("ZEROTICK_CONFIG")
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)

    # ---- derived endpoints -------------------------------------------------------------

    @property
    def venue(self) -> Literal["sim", "paper", "live", "custom"]:
        """sim: no keys, the embedded venue. paper/live: Alpaca. custom: keys plus a REST origin that is
        neither of Alpaca's (e.g. a second simulator, or a proxy)."""
        if not self.alpaca.has_keys:
            return "sim"
        if self.alpaca.live or any(is_alpaca_live(u) for u in self._trading_urls()):
            return "live"
        base = self.alpaca.base_url
        return "paper" if base is None or url_host(base) == ALPACA_PAPER_HOST else "custom"

    def _trading_urls(self) -> tuple[str | None, ...]:
        return (self.alpaca.base_url, self.alpaca.trade_stream_url)

    def credentials(self) -> tuple[str, str]:
        """(key_id, secret) for the venue in use. Never log the result."""
        if self.venue == "sim":
            return self.sim.key_id, self.sim.secret_key.get_secret_value()
        assert self.alpaca.key_id is not None and self.alpaca.secret_key is not None
        return self.alpaca.key_id.get_secret_value(), self.alpaca.secret_key.get_secret_value()

    def control_token(self) -> str:
        """The configured token, else the one in <run_dir>/control.token, else "" (refuse all)."""
        if self.control.token is not None:
            return self.control.token.get_secret_value()
        return read_secret(self.control_token_path())

    def control_token_path(self) -> Path:
        return self.zmq.run_dir.resolve() / CONTROL_TOKEN_FILE

    def peer_key_path(self) -> Path:
        return self.zmq.run_dir.resolve() / PEER_KEY_FILE

    def peer_secret(self) -> str:
        """The configured peer secret, else <run_dir>/peer.key, created on first use."""
        if self.zmq.peer_secret is not None:
            return self.zmq.peer_secret.get_secret_value()
        return create_secret(self.peer_key_path())

    def sim_port(self) -> int:
        """``sim.port``, or for 0 (ephemeral) the port `zerotick up` chose and recorded in the run
        folder; 0 when none is recorded yet (``common.sim_port``)."""
        return self.sim.port or sim_port.recorded(self.zmq.run_dir.resolve())

    def sim_port_unresolved(self) -> bool:
        """The services would dial the venue at port 0: ``sim.port = 0`` and no port recorded."""
        return self.venue == "sim" and not self.alpaca.base_url and self.sim_port() == 0

    def sim_connect_host(self) -> str:
        """How the services reach the venue: ``sim.connect_host``, else the host it binds."""
        host = self.sim.connect_host or self.sim.host
        return f"[{host}]" if ":" in host else host

    def sim_origin(self) -> str:
        return f"http://{self.sim_connect_host()}:{self.sim_port()}"

    def trading_base_url(self) -> str:
        if self.alpaca.base_url:
            return self.alpaca.base_url
        return {"sim": self.sim_origin(), "live": LIVE_BASE_URL}.get(self.venue, PAPER_BASE_URL)

    def trade_stream_url(self) -> str:
        if self.alpaca.trade_stream_url:
            return self.alpaca.trade_stream_url
        base = self.trading_base_url()
        return base.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/stream"

    def _data_origin(self) -> str:
        if self.venue == "sim" and not self.alpaca.base_url:
            return f"ws://{self.sim_connect_host()}:{self.sim_port()}"
        return DATA_STREAM_ORIGIN

    def stock_stream_url(self) -> str:
        return self.alpaca.stock_stream_url or f"{self._data_origin()}/v2/{self.alpaca.stock_feed}"

    def crypto_stream_url(self) -> str:
        return self.alpaca.crypto_stream_url or f"{self._data_origin()}/v1beta3/crypto/us"

    @model_validator(mode="after")
    def _live_needs_flag(self) -> Settings:
        if any(is_alpaca_live(u) for u in self._trading_urls()) and not self.alpaca.live:
            raise ValueError(
                "alpaca.base_url or trade_stream_url points at Alpaca LIVE but alpaca.live is false; "
                "set ZT_ALPACA__LIVE=true (or `zerotick up --live`) to trade real money"
            )
        if self.alpaca.live and not self.alpaca.has_keys:
            raise ValueError("alpaca.live is true but no Alpaca keys are configured")
        if (self.alpaca.key_id is None) != (self.alpaca.secret_key is None):
            raise ValueError("set both APCA_API_KEY_ID and APCA_API_SECRET_KEY, or neither")
        return self


_config_file: str | None = None  # set by load_settings for the duration of one load


class _AlpacaEnvSource(PydanticBaseSettingsSource):
    """Alpaca's own environment variable names, mapped into the alpaca section."""

    NAMES: ClassVar[dict[str, str]] = {
        "APCA_API_KEY_ID": "key_id",
        "APCA_API_SECRET_KEY": "secret_key",
        "APCA_API_BASE_URL": "base_url",
    }

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found = {dst: os.environ[src] for src, dst in self.NAMES.items() if os.environ.get(src)}
        return {"alpaca": found} if found else {}


class ConfigError(SystemExit):
    """The configuration is invalid. Each line of the message is one problem, complete on its own
    (``file:line:col``, the environment variable or the dotted field, and what is wrong), and never
    carries a secret. Entry points print it and exit with status 2."""

    EXIT_CODE = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lines = message.splitlines()

    @classmethod
    def of(cls, problems: list[str]) -> ConfigError:
        return cls("\n".join(f"config error: {p}" for p in problems))


SIM_PORT_ZERO = (
    "sim.port: 0 (ephemeral) but no venue port is recorded in {path}; `zerotick up` chooses and "
    "records one; or set a port"
)


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load and validate. ``config_file`` wins over ``ZEROTICK_CONFIG``. Any problem is a
    :class:`ConfigError`: TOML syntax, an environment value that cannot be parsed, a field out of range."""
    global _config_file
    path = Path(config_file) if config_file is not None else None
    if path is None and os.environ.get("ZEROTICK_CONFIG"):
        path = Path(os.environ["ZEROTICK_CONFIG"])
    if path is not None and not path.is_file():
        raise ConfigError.of([f"config file not found: {path}"])
    if path is not None and (problems := config_errors.check_toml(path)):
        raise ConfigError.of(problems)
    _config_file = str(path) if path else None
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError.of(config_errors.validation_lines(exc)) from None
    except SettingsError as exc:
        prefix = str(Settings.model_config.get("env_prefix", ""))
        raise ConfigError.of(config_errors.env_lines(exc, Settings, prefix, os.environ)) from None
    finally:
        _config_file = None
    settings.zmq.run_dir = _absolute(settings.zmq.run_dir, path, overrides, "zmq", "RUN_DIR")
    if settings.zmq.curve_dir is not None:
        settings.zmq.curve_dir = _absolute(settings.zmq.curve_dir, path, overrides, "zmq", "CURVE_DIR")
    paths = settings.signal.strategy_paths
    settings.signal.strategy_paths = [
        _absolute(p, path, overrides, "signal", "STRATEGY_PATHS") for p in paths
    ]
    return settings


def require_dialable_venue(settings: Settings) -> None:
    """For the services: refuse to start dialling the venue at port 0."""
    if settings.sim_port_unresolved():
        path = settings.zmq.run_dir.resolve() / sim_port.SIM_PORT_FILE
        raise ConfigError.of([SIM_PORT_ZERO.format(path=path)])


def _absolute(
    folder: Path, config_file: Path | None, overrides: dict[str, Any], section: str, key: str
) -> Path:
    """A relative folder from the config file (or its default) is relative to the file's folder, so
    every command finds the running system from any working folder; one from the environment or the
    caller is relative to the current folder."""
    if folder.is_absolute():
        return folder
    env_name = f"ZT_{section.upper()}__{key}"
    from_env = any(k.upper() == env_name for k in os.environ) or section in overrides
    base = config_file.resolve().parent if config_file is not None and not from_env else Path.cwd()
    return (base / folder).resolve()
