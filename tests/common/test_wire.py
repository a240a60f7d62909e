"""Round trip of every wire message type, and clear errors for bad frames."""

from __future__ import annotations

import msgspec
import pytest

from common import wire
from common.enums import TradingState, TripSource


def _samples() -> list[wire.Message]:  # type: ignore[valid-type]
    intent = wire.OrderIntent(
        intent_id="r1.1", strategy="probe", symbol="AAPL", side="buy", qty=1_000_000_000,
        limit_px=190_120_000_000, tick_exch_ns=1, tick_recv_ns=2, signal_ns=3, deadline_ns=4,
    )  # fmt: skip
    return [
        wire.Quote(symbol="AAPL", bid_px=1, bid_sz=2, ask_px=3, ask_sz=4, exch_ns=5, recv_ns=6),
        wire.Trade(symbol="BTC/USD", px=7, sz=8, trade_id=9, exch_ns=10, recv_ns=11),
        wire.Bar(symbol="MSFT", open=1, high=2, low=0, close=1, volume=100, vwap=1, trades=3, start_ns=4, recv_ns=5),
        wire.Book(symbol="ETH/USD", bids=[(3, 1), (2, 5)], asks=[(4, 2)], exch_ns=1, recv_ns=2),
        wire.FeedStatus(feed="stocks", state="subscribed", detail="", ts_ns=1),
        intent,
        wire.RiskDecision(intent_id="r1.1", approved=False, reason="max_order_qty", detail="qty 2 > 1",
                          client_order_id="", risk_ns=5),
        wire.OrderRequest(client_order_id="zt-r1.1", intent=intent, risk_ns=6),
        wire.OrderAck(client_order_id="zt-r1.1", accepted=True, detail="queued", ts_ns=7),
        wire.CancelRequest(client_order_id="zt-r1.1"),
        wire.OrderUpdate(seq=1, client_order_id="zt-r1.1", venue_order_id="u", strategy="probe", symbol="AAPL",
                         side="buy", status="new", event="new", qty=1, filled_qty=0, filled_avg_px=0, limit_px=3,
                         reason="", venue_ns=1, recv_ns=2),
        wire.Fill(seq=2, client_order_id="zt-r1.1", venue_order_id="u", exec_id="e", strategy="probe",
                  symbol="AAPL", side="buy", qty=1, px=3, cum_qty=1, position_qty=None, venue_ns=1, recv_ns=2),
        wire.Position(symbol="AAPL", qty=-5, avg_px=3, realized_pnl=-2, ts_ns=1),
        wire.Account(cash=1, buying_power=2, equity=3, last_equity=4, ts_ns=5),
        wire.Heartbeat(service="risk", pid=1, seq=2, state="ok", last_event_seq=3, ts_ns=4),
        wire.Control(cmd="status", args={"a": "b"}, token="t"),
        wire.Reply(ok=True, detail="x", data=b"\x00\x01"),
        wire.Replay(after_seq=42),
        wire.PositionsSnapshot(as_of_seq=3, positions=[wire.Position(symbol="A", qty=1, avg_px=2, realized_pnl=0, ts_ns=1)]),
        wire.TradingStateChanged(state=TradingState.HALTED, seq=2, source=TripSource.CLI, who="cli:u@h", reason="drill",
                                 ts_ns=5),
        wire.SetTradingState(state=TradingState.REDUCE_ONLY, reason="r", flatten=False, who="w", token="t", deadline_ns=9),
        wire.Trip(state=TradingState.HALTED, seq=3, flatten=True, deadline_ns=10),
        wire.TripReport(state=TradingState.HALTED, seq=3, ok=True, open_orders=0, positions=0, canceled=20, closed=2,
                        confirm_us=4000, detail="confirmed"),
    ]  # fmt: skip


def test_samples_cover_every_message_type() -> None:
    assert {type(m) for m in _samples()} == set(wire.ALL_TYPES)


@pytest.mark.parametrize("msg", _samples(), ids=lambda m: type(m).__name__)
def test_single_round_trip(msg: wire.Message) -> None:  # type: ignore[valid-type]
    assert wire.decode(wire.encode(msg)) == msg


def test_batch_round_trip_keeps_topic_and_order() -> None:
    msgs = _samples()
    topic, back = wire.decode_batch(wire.encode_batch(b"md.q.AAPL", msgs))
    assert topic == b"md.q.AAPL"
    assert back == msgs


def test_list_round_trip() -> None:
    msgs = _samples()
    assert wire.decode_list(wire.encode_list(msgs)) == msgs


@pytest.mark.parametrize(
    "frame, fragment",
    [
        (b"", "empty"),
        (bytes([99]) + b"\x90", "unsupported wire version 99"),
        (bytes([wire.VERSION]) + b"\xc1", "malformed"),
        (bytes([wire.VERSION]) + msgspec.msgpack.encode(["zz", 1]), "malformed"),
    ],
)
def test_decode_errors_are_clear(frame: bytes, fragment: str) -> None:
    with pytest.raises(wire.WireError, match=fragment):
        wire.decode(frame)


def test_batch_decode_errors_are_clear() -> None:
    with pytest.raises(wire.WireError, match="no topic separator"):
        wire.decode_batch(b"md.q.AAPL")
    with pytest.raises(wire.WireError, match="unsupported wire version"):
        wire.decode_batch(b"md.q.AAPL\x00\x07\x90")
    # a quote with a missing field is a schema error, not a crash
    bad = b"md.q.AAPL\x00" + bytes([wire.VERSION]) + msgspec.msgpack.encode([["q", "AAPL", 1, 2]])
    with pytest.raises(wire.WireError, match="malformed batch"):
        wire.decode_batch(bad)


class _OrderUpdateBeforeSentNs(msgspec.Struct, array_like=True, tag="ou", frozen=True, kw_only=True):
    """OrderUpdate as a producer built before ``sent_ns`` existed encodes it."""

    seq: int
    client_order_id: str
    venue_order_id: str
    strategy: str
    symbol: str
    side: str
    status: str
    event: str
    qty: int
    filled_qty: int
    filled_avg_px: int
    limit_px: int
    reason: str
    venue_ns: int
    recv_ns: int
    intent_signal_ns: int = 0
    tick_recv_ns: int = 0


def test_order_update_from_an_older_producer_decodes_without_sent_ns() -> None:
    old = _OrderUpdateBeforeSentNs(
        seq=1, client_order_id="zt-a.1", venue_order_id="v", strategy="s", symbol="AAPL", side="buy",
        status="new", event="new", qty=1, filled_qty=0, filled_avg_px=0, limit_px=1, reason="",
        venue_ns=1, recv_ns=2, tick_recv_ns=3,
    )  # fmt: skip
    got = wire.decode(bytes([wire.VERSION]) + msgspec.msgpack.encode(old))
    assert isinstance(got, wire.OrderUpdate) and (got.tick_recv_ns, got.sent_ns) == (3, 0)
