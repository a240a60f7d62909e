"""zerotick's domain vocabulary, defined once: every service, the CLI, the wire and the metrics use
these. Each is a ``str`` Enum, so its value is what travels on the wire, in logs and in metric labels.

Where numba needs an int (the pre-trade check returns a reason as an int), the int is the member's
position in its Enum: members are only ever appended, never reordered or removed.
"""

from __future__ import annotations

from enum import StrEnum


class _Vocab(StrEnum):
    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)


class OrderSide(_Vocab):
    BUY = "buy"
    SELL = "sell"


class OrderType(_Vocab):
    """The order types zerotick sends (Alpaca also knows trailing_stop)."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(_Vocab):
    """The time-in-force values zerotick sends (Alpaca also knows opg and cls)."""

    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class TradingState(_Vocab):
    """Owned by risk (see docs/architecture.md, "Trading state")."""

    ACTIVE = "active"
    REDUCE_ONLY = "reduce_only"  # only orders that shrink an existing position, never flip it
    HALTED = "halted"  # no new or replacing orders; cancels always pass

    @property
    def code(self) -> int:
        return _TS_CODES[self]

    @classmethod
    def from_code(cls, code: int) -> TradingState:
        return _TS_BY_CODE[code]

    def allows(self, reduces_position: bool) -> bool:
        """Whether an order may go out in this state (cancels are never asked: they always may)."""
        return self is TradingState.ACTIVE or (self is TradingState.REDUCE_ONLY and reduces_position)

    @staticmethod
    def strictest(a: TradingState, b: TradingState) -> TradingState:
        return a if _TS_CODES[a] >= _TS_CODES[b] else b


_TS_CODES = {TradingState.ACTIVE: 0, TradingState.REDUCE_ONLY: 1, TradingState.HALTED: 2}
_TS_BY_CODE = {v: k for k, v in _TS_CODES.items()}


class RejectReason(_Vocab):
    """Why an order did not go out: one list for signal, risk and execution.

    ``OK`` (code 0) means not rejected. Append only: the pre-trade check returns the member's index."""

    OK = "ok"
    BAD_ORDER = "bad_order"  # qty <= 0, a price out of range, a limit order without a limit price
    HALTED = "halted"  # trading state HALTED
    REDUCE_ONLY = "reduce_only"  # trading state REDUCE_ONLY and the order would not shrink a position
    MAX_ORDER_QTY = "max_order_qty"
    NO_QUOTE = "no_quote"  # no current quote and one is required (always for market and stop orders)
    MAX_ORDER_NOTIONAL = "max_order_notional"
    PRICE_BAND = "price_band"  # limit price too far from the quote mid (fat finger)
    MAX_POSITION = "max_position"  # position + pending same-side qty + this order beyond the limit
    EXPIRED = "expired"  # the intent's deadline passed before it could be acted on
    EXECUTION_UNAVAILABLE = "execution_unavailable"
    SYMBOL_NOT_ALLOWED = "symbol_not_allowed"  # not on the allow list, or on the deny list
    NOT_READY = "not_ready"  # positions not yet known (risk just started, or execution restarted)
    DUPLICATE = "duplicate"  # the client_order_id is already an order
    MAX_GROSS_EXPOSURE = "max_gross_exposure"
    MAX_NET_EXPOSURE = "max_net_exposure"
    ORDER_RATE = "order_rate"  # global order rate
    STRATEGY_ORDER_RATE = "strategy_order_rate"
    MAX_OPEN_ORDERS = "max_open_orders"  # global
    MAX_OPEN_ORDERS_SYMBOL = "max_open_orders_symbol"
    DUPLICATE_ORDER = "duplicate_order"  # same symbol, side, qty and price within the window
    STALE_QUOTE = "stale_quote"  # the quote's exchange timestamp is older than the limit
    SHORT_NOT_ALLOWED = "short_not_allowed"  # would open or grow a short where shorting is off
    FLIPS_POSITION = "flips_position"  # long to short (or back) in one order: Alpaca refuses it
    BUYING_POWER = "buying_power"
    DAILY_LOSS = "daily_loss"  # the day's loss is beyond the limit: only reducing orders pass
    UNKNOWN_STRATEGY = "unknown_strategy"
    RISK_TIMEOUT = "risk_timeout"  # signal: risk did not answer in time (an order may exist)
    RISK_UNAVAILABLE = "risk_unavailable"  # signal: risk not connected
    RISK_ERROR = "risk_error"  # signal: risk's answer was unusable (an order may exist)
    VENUE_REJECTED = "venue_rejected"  # execution: the venue refused the order
    SUBMIT_FAILED = "submit_failed"  # execution: the order could not be placed
    UNAUTHORIZED = "unauthorized"  # the sender may not send this

    @property
    def code(self) -> int:
        return _RR_CODES[self]

    @classmethod
    def from_code(cls, code: int) -> RejectReason:
        try:
            return _RR_LIST[code]
        except IndexError:
            raise ValueError(f"no reject reason with code {code}") from None


_RR_LIST = list(RejectReason)
_RR_CODES = {m: i for i, m in enumerate(_RR_LIST)}


class OrderStatus(_Vocab):
    """Alpaca's order statuses, plus zerotick's own beliefs about orders the venue has not confirmed."""

    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    DONE_FOR_DAY = "done_for_day"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    ACCEPTED = "accepted"
    PENDING_NEW = "pending_new"
    ACCEPTED_FOR_BIDDING = "accepted_for_bidding"
    STOPPED = "stopped"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    CALCULATED = "calculated"
    HELD = "held"
    PENDING_REVIEW = "pending_review"
    # zerotick's own
    PENDING_SUBMIT = "pending_submit"  # queued in execution, no venue answer yet
    UNKNOWN = "unknown"  # the POST outcome could not be established yet
    SUBMIT_FAILED = "submit_failed"  # never placed at the venue
    VENUE_LOST = "venue_lost"  # the venue acknowledged it and no longer knows it (venue state lost)

    @property
    def is_terminal(self) -> bool:
        """The order can no longer fill."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.EXPIRED,
        OrderStatus.REJECTED,
        OrderStatus.REPLACED,
        OrderStatus.SUBMIT_FAILED,
        OrderStatus.VENUE_LOST,
    }
)
TERMINAL_STATUS_VALUES: frozenset[str] = frozenset(s.value for s in _TERMINAL)


class VenueRejectReason(_Vocab):
    """Why the venue refused an order (``zt_exec_venue_rejects_total{reason}``)."""

    HTTP_4XX = "http_4xx"  # the order POST answered 4xx (not a duplicate id, not rate limited)
    HTTP_OTHER = "http_other"  # another status that proves the order was not placed
    REJECTED_EVENT = "rejected_event"  # accepted, then rejected (trade_updates or a reconcile)

    @classmethod
    def of_status(cls, status: int) -> VenueRejectReason:
        return cls.HTTP_4XX if 400 <= status < 500 else cls.HTTP_OTHER


class FeedState(_Vocab):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    SUBSCRIBED = "subscribed"
    DISCONNECTED = "disconnected"
    STALE = "stale"
    ERROR = "error"


class ControlCmd(_Vocab):
    """Control commands (``wire.Control.cmd``). Which service answers which: docs/architecture.md."""

    PING = "ping"  # every service
    STATUS = "status"  # every service
    POSITIONS = "positions"  # execution: its position book as of an order-event seq
    VENUE_POSITIONS = "venue_positions"  # execution: the venue's positions now
    ORDERS = "orders"  # execution: the orders it tracks
    CANCEL_ALL = "cancel_all"  # execution: cancel every open order at the venue (token)


class TripSource(_Vocab):
    """Who changed the trading state."""

    CLI = "cli"  # `zerotick kill/reduce-only/reset` through the running services
    CLI_OUT_OF_BAND = "cli_out_of_band"  # `zerotick kill` straight to the venue (services dead/hung)
    CONTROL = "control"  # an authenticated control request from any tool
    TRIGGER = "trigger"  # an automatic trigger in risk
    STARTUP = "startup"  # risk at start: the state file was missing (ACTIVE) or unreadable (HALTED)


class Trigger(_Vocab):
    """Automatic kill-switch triggers, each with its own reason code."""

    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    REJECT_RATE = "reject_rate"
    ORDER_RATE = "order_rate"
    STALE_DATA = "stale_data"
    TRADE_STREAM_DOWN = "trade_stream_down"
    EXECUTION_UNREACHABLE = "execution_unreachable"
    LATENCY = "latency"
    JOURNAL = "journal"  # execution cannot write its order journal


class ServiceHealth(_Vocab):
    """A service as `zerotick top` judges it from its endpoints."""

    READY = "ready"  # answers and reports nothing wrong
    UP = "up"  # answers, not ready yet (starting, positions not loaded)
    DEGRADED = "degraded"  # answers with something wrong (a feed, the trade stream, a task, the journal)
    DOWN = "down"  # answers on neither its control socket nor /metrics


class OpsEvent(_Vocab):
    """The operations log's events (``common.oplog``): one INFO line each."""

    ORDER_SENT = "order sent"  # execution: the POST went out (logged once its answer is in)
    ORDER_FINAL = "order final"  # execution: the order reached a final status
    FILL = "fill"  # execution: an execution reported by the venue
    RISK_REJECT = "risk reject"  # risk refused an intent
    TRIP = "trading state trip"  # risk: the trading state changed (kill switch, reduce-only, reset)


class LinkFailure(_Vocab):
    """Why a connection to the venue (REST, trade_updates, market data) failed, as logged, counted
    (``zt_link_failures_total``) and shown in ``zerotick status``."""

    AUTH_REJECTED = "auth_rejected"  # the venue refused the API keys (HTTP 401, stream auth failure)
    DNS_FAILURE = "dns_failure"  # the host name does not resolve
    CONNECTION_REFUSED = "connection_refused"  # nothing listens there
    CONNECTION_LOST = "connection_lost"  # reset or closed under us
    TIMEOUT = "timeout"  # no (complete) answer in time
    TLS_ERROR = "tls_error"  # handshake or certificate
    HTTP_ERROR = "http_error"  # the venue answered with an error status (5xx, 429, a refused upgrade)
    PROTOCOL_ERROR = "protocol_error"  # an answer that is not the protocol expected
    VENUE_ERROR = "venue_error"  # the venue's own error message on a stream (connection limit, plan)


class RangeReason(_Vocab):
    """Why a value from outside was out of range (``common.bounds``): the metrics' reason label."""

    PRICE = "price"  # a price or money amount
    SIZE = "size"  # a quantity
    TIMESTAMP = "timestamp"  # before the venue era or too far ahead of this host's clock
    COUNT = "count"  # a count, sequence number or level count


class PeerRefusal(_Vocab):
    """Why an authenticated ZeroMQ socket refused a connection (``zt_peer_refused_total``)."""

    CREDENTIALS = "credentials"  # ZAP said no to the name or the key
    PROTOCOL = "protocol"  # the handshake failed: no credentials, another mechanism, a wrong server key


class ControlRefusal(_Vocab):
    """Why a control command was not run (``zt_control_refused_total``)."""

    TOKEN = "token"  # missing or wrong control token
    EXPIRED = "expired"  # arrived after its deadline
