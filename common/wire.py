"""The wire contract: every message that crosses a ZeroMQ socket.

Encoding (chosen by measurement, see docs/architecture.md, "Wire format" and "Measured baselines"):
msgspec msgpack with ``array_like`` structs (82 ns encode / 163 ns decode per message, schema-checked).

A frame is ``topic + b"\\0" + VERSION byte + msgpack(list[Message])``. The topic prefix lets SUB
sockets filter; one frame carries a batch (Alpaca already batches market data per WebSocket
frame, and batching is what makes ZeroMQ fast). Request/reply frames carry no topic: they are
``VERSION byte + msgpack(Message)``.

Prices and quantities are int nanos (``common.fixed``). Timestamps are int ns: ``*_ns`` wall clock.
Every encoded frame has the registered secrets masked (``common.log.redact_bytes``): nothing a venue
echoes back leaves the process with a key in it.
Every market event carries the exchange time (``exch_ns``) and the local receive time (``recv_ns``);
an order intent carries both of the tick that caused it, and each later stage stamps its own.
"""

from __future__ import annotations

import struct

import msgspec

from common.enums import ControlCmd, FeedState, OrderSide, OrderType, TimeInForce, TradingState, TripSource
from common.log import redact_bytes

VERSION = 1
SEP = b"\0"
# A sequenced PUB frame: ``topic 0x00 0x02 <epoch u32> <first seq u64> <count u32> msgpack([...])``.
# ``first seq`` numbers messages per topic and publisher instance (``epoch``), so a subscriber counts
# exactly how many it never got (docs/architecture.md, "Bounded queues"). Request/reply frames stay VERSION 1.
SEQ_VERSION = 2
_SEQ_HEADER = struct.Struct("<BIQI")  # version, epoch, first seq, count

Side = OrderSide  # the names the strategy API has always used


class WireError(ValueError):
    """A frame that cannot be decoded: wrong version, malformed, or schema mismatch."""


class _Msg(msgspec.Struct, array_like=True, tag=True, frozen=True, kw_only=True):
    pass


# ---- market data (market_data -> signal, risk) ----------------------------------------------


class Quote(_Msg, tag="q"):
    symbol: str
    bid_px: int
    bid_sz: int
    ask_px: int
    ask_sz: int
    exch_ns: int
    recv_ns: int


class Trade(_Msg, tag="t"):
    symbol: str
    px: int
    sz: int
    trade_id: int
    exch_ns: int
    recv_ns: int


class Bar(_Msg, tag="b"):
    symbol: str
    open: int
    high: int
    low: int
    close: int
    volume: int
    vwap: int
    trades: int
    start_ns: int
    recv_ns: int


class Book(_Msg, tag="o"):
    """Top ``depth`` levels of an L2 book after a frame's deltas were applied.

    ``bids`` best first (descending price), ``asks`` best first (ascending); each level (px, sz).
    """

    symbol: str
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    exch_ns: int
    recv_ns: int


class FeedStatus(_Msg, tag="fs"):
    feed: str  # "stocks" | "crypto"
    state: FeedState
    detail: str
    ts_ns: int


# ---- orders (signal -> risk -> execution) ----------------------------------------------------


class OrderIntent(_Msg, tag="oi"):
    intent_id: str  # "<run>.<seq>" from common.ids.IntentIds: unique per run of signal
    strategy: str
    symbol: str
    side: Side
    qty: int
    order_type: OrderType = OrderType.LIMIT
    limit_px: int = 0
    stop_px: int = 0
    tif: TimeInForce = TimeInForce.DAY
    tick_exch_ns: int = 0
    tick_recv_ns: int = 0
    signal_ns: int = 0
    deadline_ns: int = 0  # wall ns after which nobody may act on it (0 = no deadline)


class RiskDecision(_Msg, tag="rd"):
    intent_id: str
    approved: bool
    reason: str  # "ok" or a reject code, e.g. "max_order_qty"
    detail: str
    client_order_id: str  # the id execution will use at the venue ("" when rejected)
    risk_ns: int


class OrderRequest(_Msg, tag="or"):
    """An approved order, risk -> execution. ``client_order_id`` is deterministic and unique."""

    client_order_id: str
    intent: OrderIntent
    risk_ns: int


class OrderAck(_Msg, tag="oa"):
    client_order_id: str
    accepted: bool
    detail: str
    ts_ns: int


class CancelRequest(_Msg, tag="cr"):
    client_order_id: str  # "" with all=True cancels every open order
    all: bool = False


# ---- order events (execution -> risk, signal); sequenced so a gap is seen and replayed --------


class OrderUpdate(_Msg, tag="ou"):
    seq: int
    client_order_id: str
    venue_order_id: str
    strategy: str
    symbol: str
    side: Side
    status: str  # Alpaca OrderStatus value, or "submit_failed" / "unknown"
    event: str  # Alpaca trade_updates event, or "submitted" / "submit_failed" / "reconciled"
    qty: int
    filled_qty: int
    filled_avg_px: int
    limit_px: int
    reason: str
    venue_ns: int
    recv_ns: int
    intent_signal_ns: int = 0
    tick_recv_ns: int = 0
    sent_ns: int = 0  # wall ns execution wrote the order's POST (0: not written); keep it last


class Fill(_Msg, tag="f"):
    seq: int
    client_order_id: str
    venue_order_id: str
    exec_id: str
    strategy: str
    symbol: str
    side: Side
    qty: int  # this execution only (derived from cumulative filled_qty)
    px: int
    cum_qty: int
    position_qty: int | None  # signed venue position after the fill, when the venue says
    venue_ns: int
    recv_ns: int


class Account(_Msg, tag="ac"):
    """The venue's account, polled by execution (money in nanos; Alpaca's fields)."""

    cash: int
    buying_power: int
    equity: int
    last_equity: int  # equity at the previous session's close
    ts_ns: int


class Position(_Msg, tag="p"):
    symbol: str
    qty: int  # signed
    avg_px: int
    realized_pnl: int
    ts_ns: int


# ---- system ---------------------------------------------------------------------------------


class Heartbeat(_Msg, tag="hb"):
    service: str
    pid: int
    seq: int
    state: str  # service-specific: "ok", "degraded", "journal_failed"; risk: its trading state
    last_event_seq: int  # execution: newest order-event seq (lets subscribers see a lost tail)
    ts_ns: int
    # execution: names its sequence of order events; the same across its restarts (the seq continues
    # from its journal), new only when the sequence or its positions book starts over
    incarnation: str = ""
    boot: int = 0  # execution: how many times it has started on this journal (a restart, not a reconnect)


class Control(_Msg, tag="c"):
    """A control command. ``token`` authenticates every command that changes something; a command
    that arrives after ``deadline_ns`` (wall ns, 0 = none) is refused, not acted on. A command outside
    the vocabulary fails to decode and is answered as a bad request."""

    cmd: ControlCmd
    args: dict[str, str] = {}
    token: str = ""
    deadline_ns: int = 0


class Reply(_Msg, tag="r"):
    ok: bool
    detail: str
    data: bytes = b""  # nested encoded payload (e.g. a list of messages), or orjson for status


class StrategyPositions(_Msg, tag="sps"):
    """One strategy's positions: every fill of its orders in execution's order-event sequence."""

    strategy: str
    positions: list[Position]


class PositionsSnapshot(_Msg, tag="ps"):
    """Execution's state as of its order-event ``as_of_seq`` (-1: the venue's positions, not
    sequenced): the account's position book, each strategy's positions and the last update of every
    open order, so a receiver starts from here and needs only the events after ``as_of_seq``.
    ``book`` names the book (execution's incarnation): its realized P&L is one running figure for as
    long as the name stays ("": not a book, or not known)."""

    as_of_seq: int
    positions: list[Position]
    book: str = ""
    strategies: list[StrategyPositions] = []
    open_orders: list[OrderUpdate] = []


# ---- the trading state and the kill switch ---------------------------------------------------


class TradingStateChanged(_Msg, tag="ts"):
    """Published by risk, the owner, on every change and again every heartbeat (a late joiner learns
    it; ``seq`` tells a newer record from an older one)."""

    state: TradingState
    seq: int
    source: TripSource
    who: str
    reason: str
    ts_ns: int


class SetTradingState(_Msg, tag="sts"):
    """An operator's command to risk: change the trading state. HALTED is a trip: every open order is
    canceled at the venue (and every position closed with ``flatten``) before the reply."""

    state: TradingState
    reason: str
    flatten: bool = False
    who: str = ""
    token: str = ""
    deadline_ns: int = 0  # wall ns after which it must not be acted on (0 = none)


class Trip(_Msg, tag="tp"):
    """risk -> execution: enforce ``state`` from now on. HALTED: cancel every open order at the venue,
    close every position with ``flatten``, and confirm by reading the venue back. REDUCE_ONLY with
    ``flatten`` (an automatic trigger's choice) empties the venue the same way. ACTIVE (a reset):
    refused while the venue holds open orders execution does not know."""

    state: TradingState
    seq: int
    flatten: bool = False
    deadline_ns: int = 0


class TripReport(_Msg, tag="tr"):
    state: TradingState
    seq: int
    ok: bool  # HALTED: the venue confirmed; ACTIVE: the reset may go ahead
    open_orders: int  # at the venue, at the last look
    positions: int  # at the venue, at the last look
    canceled: int
    closed: int
    confirm_us: int  # from the request's arrival to the venue's confirmation (0: not confirmed)
    detail: str


class Replay(_Msg, tag="rp"):
    """Ask execution for every order event with seq > after_seq (gap fill / startup snapshot)."""

    after_seq: int


Message = (
    Quote
    | Trade
    | Bar
    | Book
    | FeedStatus
    | OrderIntent
    | RiskDecision
    | OrderRequest
    | OrderAck
    | CancelRequest
    | OrderUpdate
    | Fill
    | Position
    | Heartbeat
    | Control
    | Reply
    | Replay
    | PositionsSnapshot
    | Account
    | TradingStateChanged
    | SetTradingState
    | Trip
    | TripReport
)
ALL_TYPES: tuple[type, ...] = Message.__args__  # type: ignore[attr-defined]

_enc = msgspec.msgpack.Encoder()
_batch_dec = msgspec.msgpack.Decoder(list[Message])
_one_dec = msgspec.msgpack.Decoder(Message)
_VB = bytes([VERSION])


# The fields that may carry text from outside (a venue's error message echoed into a detail, an
# operator's reason): only frames with a non-empty one are scanned for secrets, so market data and
# the order path's approvals pay one dict lookup per message, not a byte search per secret.
_FREE_TEXT: dict[type, tuple[str, ...]] = {
    FeedStatus: ("detail",),
    OrderUpdate: ("reason",),
    RiskDecision: ("detail",),
    OrderAck: ("detail",),
    Reply: ("detail", "data"),
    TripReport: ("detail",),
    TradingStateChanged: ("who", "reason"),
    SetTradingState: ("who", "reason"),
    Control: ("args",),
}


_NUMBERS_ONLY_TOPICS = (b"md.q.", b"md.t.", b"md.b.", b"md.o.")  # market data: no free text at all


def _has_free_text(msg: Message) -> bool:  # type: ignore[valid-type]
    fields = _FREE_TEXT.get(type(msg))
    if fields is None:
        return False
    for f in fields:
        if getattr(msg, f):
            return True
    return False


def encode_batch(topic: bytes, msgs: list[Message]) -> bytes:  # type: ignore[valid-type]
    frame = topic + SEP + _VB + _enc.encode(msgs)
    if topic.startswith(_NUMBERS_ONLY_TOPICS):
        return frame
    for m in msgs:
        if _has_free_text(m):
            return redact_bytes(frame)
    return frame


def encode_seq_batch(topic: bytes, epoch: int, first_seq: int, msgs: list[Message]) -> bytes:  # type: ignore[valid-type]
    """A batch frame numbered per topic: its messages are ``first_seq .. first_seq + len(msgs) - 1``."""
    return topic + SEP + _SEQ_HEADER.pack(SEQ_VERSION, epoch, first_seq, len(msgs)) + _enc.encode(msgs)


def frame_header(frame: bytes) -> tuple[bytes, int, int, int, int]:
    """``(topic, epoch, first_seq, count, body offset)`` of a PUB frame without decoding its body.

    An unsequenced (VERSION 1) frame has ``first_seq = -1`` and ``count = -1``."""
    i = frame.find(SEP)
    if i < 0 or i + 1 >= len(frame):
        raise WireError("frame has no topic separator")
    version = frame[i + 1]
    if version == SEQ_VERSION:
        if len(frame) < i + 1 + _SEQ_HEADER.size:
            raise WireError(f"truncated sequence header on topic {frame[:i]!r}")
        _, epoch, first_seq, count = _SEQ_HEADER.unpack_from(frame, i + 1)
        return frame[:i], epoch, first_seq, count, i + 1 + _SEQ_HEADER.size
    if version == VERSION:
        return frame[:i], 0, -1, -1, i + 2
    raise WireError(f"unsupported wire version {version} (this build speaks {VERSION}, {SEQ_VERSION})")


def decode_body(frame: bytes, topic: bytes, offset: int) -> list[Message]:  # type: ignore[valid-type]
    try:
        return _batch_dec.decode(memoryview(frame)[offset:])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise WireError(f"malformed batch on topic {topic!r}: {exc}") from None


def decode_batch(frame: bytes) -> tuple[bytes, list[Message]]:  # type: ignore[valid-type]
    """Topic and messages of a PUB frame, sequenced or not."""
    topic, _, _, _, offset = frame_header(frame)
    return topic, decode_body(frame, topic, offset)


def encode(msg: Message) -> bytes:  # type: ignore[valid-type]
    frame = _VB + _enc.encode(msg)
    return redact_bytes(frame) if _has_free_text(msg) else frame


def decode(frame: bytes) -> Message:  # type: ignore[valid-type]
    if not frame:
        raise WireError("empty frame")
    if frame[0] != VERSION:
        raise WireError(f"unsupported wire version {frame[0]} (this build speaks {VERSION})")
    try:
        return _one_dec.decode(memoryview(frame)[1:])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise WireError(f"malformed message: {exc}") from None


def encode_list(msgs: list[Message]) -> bytes:  # type: ignore[valid-type]
    """For Reply.data: a plain list of messages."""
    return _enc.encode(msgs)


def decode_list(data: bytes) -> list[Message]:  # type: ignore[valid-type]
    try:
        return _batch_dec.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise WireError(f"malformed message list: {exc}") from None
