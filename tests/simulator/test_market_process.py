"""The synthetic market: reproducible per seed, valid increments, consistent books and bars."""

from __future__ import annotations

from decimal import Decimal

from common.fixed import to_fixed
from simulator.market import TICK, L2Book, Market, book_levels_from_wire

T0 = 1_700_000_000_000_000_000
SYMBOLS = (["AAPL", "MSFT", "FAKEPACA"], ["BTC/USD", "ETH/USD"])


def run(market: Market, steps: int, per_step: int = 50, dt_ns: int = 250_000_000) -> list[tuple]:
    events = []
    for i in range(steps):
        events += [ev.key() for ev in market.step(per_step, T0 + i * dt_ns)]
    return events


def test_same_seed_same_stream_different_seed_differs() -> None:
    a = run(Market(*SYMBOLS, seed=11, book_depth=5, bar_interval_s=1.0), 40)
    b = run(Market(*SYMBOLS, seed=11, book_depth=5, bar_interval_s=1.0), 40)
    c = run(Market(*SYMBOLS, seed=12, book_depth=5, bar_interval_s=1.0), 40)
    assert len(a) >= 40 * 50
    assert a == b
    assert a != c


def test_step_yields_at_least_the_requested_count() -> None:
    m = Market(*SYMBOLS, seed=3)
    for n in (1, 7, 500):
        assert len(m.step(n, T0)) >= n


def test_prices_on_the_cent_grid_and_stock_sizes_whole() -> None:
    m = Market(*SYMBOLS, seed=5, book_depth=4, bar_interval_s=1.0)
    seen = set()
    for i in range(20):
        for ev in m.step(200, T0 + i * 200_000_000):
            msg = ev.msg
            seen.add(msg["T"])
            price_keys = ("o", "h", "l", "c") if msg["T"] in ("b", "d") else ("bp", "ap", "p")
            prices = [msg[k] for k in price_keys if k in msg]
            prices += [lv["p"] for lv in msg.get("b", []) + msg.get("a", [])] if msg["T"] == "o" else []
            for p in prices:
                assert to_fixed(p) % TICK == 0, (p, msg)
            if ev.feed == "stocks":
                for k in ("bs", "as", "s", "v"):
                    if k in msg:
                        assert isinstance(msg[k], int), (k, msg)
            if ev.venue_quote is not None:
                bid_px, _, ask_px, _ = ev.venue_quote
                assert isinstance(bid_px, Decimal) and bid_px < ask_px
                assert bid_px == Decimal(str(msg["bp"])) and ask_px == Decimal(str(msg["ap"]))
    assert {"q", "t", "o", "b", "d"} <= seen


def test_bars_carry_n_and_vw_and_cover_their_trades() -> None:
    m = Market(["AAPL"], [], seed=9, bar_interval_s=1.0)
    trades = [ev.msg for ev in m.step(300, T0) if ev.msg["T"] == "t"]
    bars = [ev.msg for ev in m.step(1, T0 + 1_000_000_000) if ev.msg["T"] == "b"]
    assert len(bars) == 1
    bar = bars[0]
    assert {"n", "vw", "o", "h", "l", "c", "v", "t"} <= bar.keys()
    assert bar["n"] == len(trades)
    assert bar["v"] == sum(t["s"] for t in trades)
    assert bar["o"] == trades[0]["p"] and bar["c"] == trades[-1]["p"]
    assert bar["h"] == max(t["p"] for t in trades) and bar["l"] == min(t["p"] for t in trades)
    assert bar["l"] <= bar["vw"] <= bar["h"]
    assert bar["t"] == T0  # bar start


def test_book_deltas_rebuild_the_venue_book_and_keep_its_shape() -> None:
    m = Market([], ["BTC/USD"], seed=21, book_depth=6)
    venue = m.books["BTC/USD"]
    mirror = L2Book()
    snap = venue.snapshot("BTC/USD", T0).msg
    mirror.apply(book_levels_from_wire(snap["b"]), book_levels_from_wire(snap["a"]), reset=True)
    last_quote = None
    for i in range(300):
        for ev in m.step(5, T0 + i):
            if ev.msg["T"] == "o":
                mirror.apply(book_levels_from_wire(ev.msg["b"]), book_levels_from_wire(ev.msg["a"]))
            elif ev.msg["T"] == "q":
                last_quote = ev.msg
        assert mirror.bids == venue.bids and mirror.asks == venue.asks
        assert len(venue.bids) == 6 and len(venue.asks) == 6
        top = venue.top()
        assert top is not None and top[0] < top[2]
    assert last_quote is not None
    bid_px, bid_sz, ask_px, ask_sz = venue.top()  # type: ignore[misc]
    assert (to_fixed(last_quote["bp"]), to_fixed(last_quote["ap"])) == (bid_px, ask_px)
    assert (to_fixed(last_quote["bs"]), to_fixed(last_quote["as"])) == (bid_sz, ask_sz)
