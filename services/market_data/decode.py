"""Alpaca market-data frames (msgpack) to typed records, and wire-number conversions.

Measured choice (bench/md_decode.py, 10-quote frames): msgspec typed decode with ``t`` kept as
``msgspec.Raw`` and parsed here ~200 ns/msg; msgpack-python with ``timestamp=2`` (int ns) ~770 ns/msg.
msgspec turns msgpack Timestamps into ``datetime``, which is both slower and truncated to
microseconds, so ``t`` is taken raw and the ext -1 payload is decoded to exact int nanoseconds.

A frame is decoded in one typed call; if that fails (one bad message, an unknown type), the frame is
re-decoded element by element so only the bad messages are lost.
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime

import msgspec

from common.fixed import SCALE, to_fixed

NS = 1_000_000_000
FLOAT_EXACT_LIMIT = 4_000_000.0  # below this, round(x * 1e9) recovers <= 9 decimals exactly


class Level(msgspec.Struct):
    p: float
    s: float


class _Rec(msgspec.Struct, tag_field="T"):
    pass


class QuoteRec(_Rec, tag="q"):
    S: str
    bp: float
    bs: int | float
    ap: float
    as_: int | float = msgspec.field(name="as")
    t: msgspec.Raw = msgspec.Raw()


class TradeRec(_Rec, tag="t"):
    S: str
    p: float
    s: int | float
    t: msgspec.Raw = msgspec.Raw()
    i: int = 0


class BarRec(_Rec, tag="b"):
    S: str
    o: float
    h: float
    l: float  # noqa: E741 - Alpaca's field name
    c: float
    v: int | float
    t: msgspec.Raw = msgspec.Raw()
    vw: float | None = None
    n: int | None = None


class UpdatedBarRec(BarRec, tag="u"):
    pass


class BookRec(_Rec, tag="o"):
    S: str
    b: list[Level]
    a: list[Level]
    t: msgspec.Raw = msgspec.Raw()
    r: bool = False


class SuccessRec(_Rec, tag="success"):
    msg: str = ""


class ErrorRec(_Rec, tag="error"):
    code: int = 0
    msg: str = ""


class SubscriptionRec(_Rec, tag="subscription"):
    trades: list[str] = []
    quotes: list[str] = []
    bars: list[str] = []
    updatedBars: list[str] = []
    orderbooks: list[str] = []


class IgnoredRec(_Rec, tag="d"):
    """Daily bars: not on the wire contract (only minute bars are)."""


class _StatusRec(_Rec, tag="s"):
    pass


class _LuldRec(_Rec, tag="l"):
    pass


class _CorrectionRec(_Rec, tag="c"):
    pass


class _CancelErrorRec(_Rec, tag="x"):
    pass


class _ImbalanceRec(_Rec, tag="i"):
    pass


Record = (
    QuoteRec
    | TradeRec
    | BarRec
    | UpdatedBarRec
    | BookRec
    | SuccessRec
    | ErrorRec
    | SubscriptionRec
    | IgnoredRec
    | _StatusRec
    | _LuldRec
    | _CorrectionRec
    | _CancelErrorRec
    | _ImbalanceRec
)
IGNORED_TYPES: tuple[type, ...] = (
    IgnoredRec,
    _StatusRec,
    _LuldRec,
    _CorrectionRec,
    _CancelErrorRec,
    _ImbalanceRec,
)

_frame_dec = msgspec.msgpack.Decoder(list[Record])
_raw_list_dec = msgspec.msgpack.Decoder(list[msgspec.Raw])
_one_dec = msgspec.msgpack.Decoder(Record)
_str_dec = msgspec.msgpack.Decoder(str)
_TS64 = struct.Struct(">HQ").unpack
_TS32 = struct.Struct(">HI").unpack
_TS96_STRUCT = struct.Struct(">3sIq")


def _TS96(raw: msgspec.Raw) -> tuple[int, int, int]:
    head, nanos, secs = _TS96_STRUCT.unpack(raw)
    return int.from_bytes(head, "big"), nanos, secs


class FrameError(ValueError):
    """The frame as a whole is not a msgpack array."""


def decode_frame(data: bytes) -> tuple[list[_Rec], list[str]]:
    """Records of one frame, plus one error description per message that could not be decoded."""
    try:
        return _frame_dec.decode(data), []
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    try:
        raws = _raw_list_dec.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(f"not a msgpack array of messages: {exc}") from None
    records: list[_Rec] = []
    errors: list[str] = []
    for raw in raws:
        try:
            records.append(_one_dec.decode(raw))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            errors.append(str(exc)[:200])
    return records, errors


# ---- timestamps ----------------------------------------------------------------------------


def ts_ns(raw: msgspec.Raw) -> int:
    """Wall ns of a ``t`` field: a msgpack Timestamp (ext -1, any of its 3 sizes) or an RFC3339 string."""
    n = len(raw)
    if n == 10:  # timestamp 64 (what Alpaca sends): 30-bit ns, 34-bit seconds
        head, v = _TS64(raw)
        if head == 0xD7FF:
            return (v & 0x3_FFFF_FFFF) * NS + (v >> 34)
    elif n == 6:  # timestamp 32: seconds
        head, secs = _TS32(raw)
        if head == 0xD6FF:
            return secs * NS
    elif n == 15:  # timestamp 96: u32 ns, i64 s
        head, nanos, secs = _TS96(raw)
        if head == 0xC70CFF:
            return secs * NS + nanos
    if n == 0:
        raise ValueError("missing timestamp t")
    try:
        text = _str_dec.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise ValueError("t is neither a msgpack Timestamp nor a string") from None
    return rfc3339_to_ns(text)


def rfc3339_to_ns(text: str) -> int:
    """Parse RFC3339 with up to 9 fractional digits, exactly."""
    base, frac, tz = text, "", ""
    if text.endswith("Z"):
        base, tz = text[:-1], "+00:00"
    elif len(text) > 6 and text[-6] in "+-":
        base, tz = text[:-6], text[-6:]
    else:
        raise ValueError(f"timestamp {text!r} has no zone")
    if "." in base:
        base, frac = base.split(".", 1)
        if not frac.isdigit() or len(frac) > 9:
            raise ValueError(f"bad fraction in {text!r}")
    seconds = datetime.fromisoformat(base + tz).timestamp()
    return int(seconds) * NS + int(frac.ljust(9, "0") or 0)


def ns_to_rfc3339(ns: int) -> str:
    s, frac = divmod(ns, NS)
    return datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


# ---- numbers ---------------------------------------------------------------------------------


def to_nanos(x: int | float) -> int:
    """Exact nanos of a venue number (int sizes exactly; floats as their shortest decimal)."""
    if type(x) is int:
        return x * SCALE
    if -FLOAT_EXACT_LIMIT < x < FLOAT_EXACT_LIMIT:
        return round(x * 1e9)
    if not math.isfinite(x):
        raise ValueError(f"not a finite number: {x!r}")
    return to_fixed(x)
