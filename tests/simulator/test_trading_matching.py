"""Matching and accounting semantics of the Exchange, driven directly (no HTTP), exact Decimal checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from simulator.errors import ApiError
from simulator.exchange import Exchange
from simulator.models import OrderBody, ReplaceBody
from tests.kit.trading_venue import make_cfg

D = Decimal


@pytest.fixture
def ex() -> Exchange:
    exchange = Exchange(make_cfg(starting_cash=Decimal("10000")))
    events: list[dict[str, Any]] = []
    exchange.add_listener(events.append)
    exchange.events = events  # type: ignore[attr-defined]
    return exchange


def quote(ex: Exchange, sym: str, bid: str, bsz: str, ask: str, asz: str) -> None:
    ex.on_quote(sym, D(bid), D(bsz), D(ask), D(asz), 0)


def submit(ex: Exchange, **kw: Any) -> Any:
    base: dict[str, Any] = {"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day"}
    base.update(kw)
    return ex.submit(OrderBody.model_validate(base))


def events(ex: Exchange) -> list[tuple[str, str | None]]:
    return [(e["event"], e.get("qty")) for e in ex.events]  # type: ignore[attr-defined]


def cash(ex: Exchange) -> Decimal:
    return ex.account.cash


def pos(ex: Exchange, sym: str = "AAPL") -> Decimal:
    return ex.account.position_qty(sym)


def test_market_partial_fills_across_quotes(ex: Exchange) -> None:
    quote(ex, "AAPL", "99", "3", "100", "4")
    order = submit(ex, qty="10")
    assert (order.status, order.filled_qty) == ("partially_filled", D(4))
    quote(ex, "AAPL", "99", "3", "101", "4")
    quote(ex, "AAPL", "99", "3", "102", "5")
    assert order.status == "filled"
    assert events(ex) == [("new", None), ("partial_fill", "4"), ("partial_fill", "4"), ("fill", "2")]
    assert cash(ex) == D(10000) - (4 * D(100) + 4 * D(101) + 2 * D(102))
    assert pos(ex) == 10 and order.avg_fill_price == D("100.8")
    p = ex.account.positions["AAPL"]
    assert p.cost_basis == D("1008") and p.avg_entry_price == D("100.8")


def test_liquidity_is_shared_between_orders_until_next_quote(ex: Exchange) -> None:
    quote(ex, "AAPL", "99", "3", "100", "5")
    first = submit(ex, qty="3")
    second = submit(ex, qty="3")
    assert (first.filled_qty, second.filled_qty) == (D(3), D(2))


def test_resting_limit_fills_when_crossed_partially(ex: Exchange) -> None:
    quote(ex, "AAPL", "99", "10", "100", "10")
    order = submit(ex, type="limit", qty="6", limit_price="98", time_in_force="gtc")
    assert order.status == "new"
    quote(ex, "AAPL", "97", "10", "98.5", "10")  # ask above limit: nothing
    assert order.filled_qty == 0
    quote(ex, "AAPL", "97", "10", "97.5", "4")  # crosses: fills 4 at the touch
    assert (order.status, order.filled_qty) == ("partially_filled", D(4))
    quote(ex, "AAPL", "97", "10", "98", "10")
    assert order.status == "filled"
    assert cash(ex) == D(10000) - 4 * D("97.5") - 2 * D(98)


def test_marketable_limit_sell_opens_short_and_buy_crosses_through_zero(ex: Exchange) -> None:
    quote(ex, "AAPL", "100", "100", "100.5", "100")
    submit(ex, type="limit", side="sell", qty="5", limit_price="99", time_in_force="gtc")
    assert pos(ex) == -5 and cash(ex) == D(10500)
    short = ex.account.positions["AAPL"]
    assert (short.cost_basis, short.avg_entry_price) == (D(-500), D(100))
    assert ex.buying_power() == D(10500) - 2 * D(500)
    submit(ex, qty="8")  # buys 8 at 100.5: covers 5, opens 3 long
    assert pos(ex) == 3 and cash(ex) == D(10500) - 8 * D("100.5")
    assert ex.account.positions["AAPL"].cost_basis == 3 * D("100.5")
    assert D(ex.account_json()["equity"]) == cash(ex) + 3 * D("100.25")


def test_stop_and_stop_limit_trigger(ex: Exchange) -> None:
    quote(ex, "AAPL", "100", "100", "100.1", "100")
    stop = submit(ex, type="stop", qty="2", stop_price="105", time_in_force="gtc")
    stop_limit = submit(
        ex, type="stop_limit", qty="2", stop_price="105", limit_price="105.5", time_in_force="gtc"
    )
    quote(ex, "AAPL", "104", "100", "104.9", "100")
    assert stop.filled_qty == 0 and stop_limit.filled_qty == 0
    quote(ex, "AAPL", "105.5", "100", "106", "100")  # ask >= stop: both trigger
    assert stop.status == "filled" and stop.avg_fill_price == D(106)
    assert stop_limit.status == "new" and stop_limit.triggered  # limit 105.5 below the ask
    quote(ex, "AAPL", "105", "100", "105.4", "100")
    assert stop_limit.status == "filled" and stop_limit.avg_fill_price == D("105.4")
    ex.on_trade("AAPL", D("95"), D(1), 0)
    sell_stop = submit(ex, type="stop", side="sell", qty="1", stop_price="96", time_in_force="gtc")
    assert sell_stop.status == "filled"  # last trade 95 <= 96 triggered it at once; sold at the bid


def test_trailing_stop_follows_the_high_water_mark(ex: Exchange) -> None:
    quote(ex, "AAPL", "100", "100", "100", "100")
    submit(ex, qty="1")
    trail = submit(ex, type="trailing_stop", side="sell", qty="1", trail_price="2", time_in_force="gtc")
    assert (trail.hwm, trail.stop_price) == (D(100), D(98))
    quote(ex, "AAPL", "110", "100", "110.1", "100")
    assert (trail.hwm, trail.stop_price) == (D(110), D(108))
    quote(ex, "AAPL", "109", "100", "109.1", "100")
    assert trail.status == "new" and trail.hwm == D(110)
    quote(ex, "AAPL", "107.5", "100", "107.6", "100")
    assert trail.status == "filled" and trail.avg_fill_price == D("107.5") and pos(ex) == 0
    assert cash(ex) == D(10000) - D(100) + D("107.5")


def test_ioc_and_fok(ex: Exchange) -> None:
    quote(ex, "AAPL", "99", "10", "100", "3")
    ioc = submit(ex, type="limit", qty="5", limit_price="100", time_in_force="ioc")
    assert (ioc.status, ioc.filled_qty) == ("canceled", D(3))
    quote(ex, "AAPL", "99", "10", "100", "3")
    fok = submit(ex, type="limit", qty="5", limit_price="100", time_in_force="fok")
    assert (fok.status, fok.filled_qty) == ("canceled", D(0))
    fok_ok = submit(ex, type="limit", qty="3", limit_price="100", time_in_force="fok")
    assert fok_ok.status == "filled"
    unfilled_ioc = submit(ex, type="limit", qty="1", limit_price="90", time_in_force="ioc")
    assert unfilled_ioc.status == "canceled"
    assert pos(ex) == 6 and cash(ex) == D(10000) - 6 * D(100)


def test_cancel_and_replace_keep_books_exact(ex: Exchange) -> None:
    quote(ex, "AAPL", "99", "2", "100", "2")
    order = submit(ex, type="limit", qty="5", limit_price="100", time_in_force="gtc")
    assert order.filled_qty == 2
    assert ex.buying_power() == cash(ex) - 3 * D(100)  # the rest is held
    new = ex.replace(order.id, ReplaceBody(limit_price=D("99.5")))
    assert order.status == "replaced" and order.replaced_by == new.id
    assert new.qty == D(5) and new.replaces == order.id  # original qty, as Alpaca reportedly does
    with pytest.raises(ApiError) as err:
        ex.replace(new.id, ReplaceBody(limit_price=D("99.5")))
    assert (err.value.status, err.value.message) == (403, "order parameters are not changed")
    ex.cancel(new.id)
    assert new.status == "canceled" and ex.buying_power() == cash(ex) == D(10000) - 2 * D(100)
    with pytest.raises(ApiError) as err:
        ex.replace(new.id, ReplaceBody(qty=D(1)))
    assert err.value.status == 422
    quote(ex, "AAPL", "99", "10", "99", "10")
    assert new.filled_qty == 0 and pos(ex) == 2


def test_rejections(ex: Exchange) -> None:
    quote(ex, "AAPL", "100", "100", "100", "100")
    quote(ex, "BTC/USD", "50000", "1", "50001", "1")
    cases: list[tuple[dict[str, Any], int, int]] = [
        ({"qty": "101"}, 403, 40310000),  # buying power
        ({"symbol": "BTC/USD", "side": "sell", "qty": "1", "time_in_force": "gtc"}, 403, 40310000),
        ({"symbol": "BTC/USD", "qty": "0.01"}, 422, 42210000),  # crypto day
        ({"symbol": "NOPE", "qty": "1"}, 422, 42210000),
        ({"qty": "1.5", "type": "limit", "limit_price": "99", "time_in_force": "gtc"}, 422, 42210000),
        ({"qty": "1", "type": "limit", "limit_price": "99.123"}, 422, 42210000),  # sub-penny
        ({"qty": "1", "type": "limit"}, 422, 40010001),
        ({"side": "sell", "qty": "1.5"}, 422, 42210000),  # fractional short
        ({"qty": "1", "time_in_force": "cls"}, 422, 42210000),
    ]
    for kw, status, code in cases:
        with pytest.raises(ApiError) as err:
            submit(ex, **kw)
        assert (err.value.status, err.value.code) == (status, code), kw
    ex.patch_config(type("P", (), {"model_dump": lambda self, **_: {"no_shorting": True}})())  # type: ignore[arg-type]
    with pytest.raises(ApiError) as err:
        submit(ex, side="sell", qty="1")
    assert err.value.status == 403 and err.value.context["available"] == "0"
    assert cash(ex) == D(10000) and ex.account.positions == {}


def test_bracket_stop_loss_triggers_and_cancels_take_profit(ex: Exchange) -> None:
    quote(ex, "AAPL", "100", "100", "100", "100")
    parent = submit(
        ex,
        qty="4",
        order_class="bracket",
        take_profit={"limit_price": "110"},
        stop_loss={"stop_price": "95"},
    )
    tp, sl = parent.legs
    assert parent.status == "filled" and (tp.status, sl.status) == ("new", "held")
    quote(ex, "AAPL", "108", "2", "108.1", "100")
    quote(ex, "AAPL", "110", "1", "110.1", "100")  # take-profit fills 1 of 4: stop shrinks to 3
    assert (tp.status, tp.filled_qty, sl.qty) == ("partially_filled", D(1), D(3))
    quote(ex, "AAPL", "94", "100", "94.1", "100")
    assert sl.status == "filled" and tp.status == "canceled" and pos(ex) == 0
    assert cash(ex) == D(10000) - 4 * D(100) + D(110) + 3 * D(94)


def test_oco_one_cancels_other(ex: Exchange) -> None:
    quote(ex, "AAPL", "100", "100", "100", "100")
    submit(ex, qty="2")
    oco = submit(
        ex,
        side="sell",
        qty="2",
        type="limit",
        time_in_force="gtc",
        order_class="oco",
        take_profit={"limit_price": "105"},
        stop_loss={"stop_price": "95"},
    )
    (stop_leg,) = oco.legs
    quote(ex, "AAPL", "105", "100", "105.1", "100")
    assert oco.status == "filled" and stop_leg.status == "canceled" and pos(ex) == 0


def test_notional_buy_and_reset(ex: Exchange) -> None:
    quote(ex, "AAPL", "299", "100", "300", "100")
    order = submit(ex, notional="1000")
    assert order.filled_qty == D("3.333333333") and order.status == "filled"
    assert cash(ex) == D(10000) - D("3.333333333") * 300
    ex.reset(D(50))
    assert cash(ex) == D(50) and ex.account.positions == {} and ex.list_orders(status="all") == []
    again = submit(ex, notional="30")  # market data survived the reset
    assert again.status == "filled"
