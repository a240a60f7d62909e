"""Every TradingClient method of the protocol reference against the simulator, via real alpaca-py."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    AssetClass,
    OrderClass,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import AccountConfiguration, Order
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetAssetsRequest,
    GetCalendarRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)

from tests.kit.trading_venue import KEY, SECRET, SimServer


@pytest.fixture
def client(sim: SimServer) -> TradingClient:
    return TradingClient(KEY, SECRET, url_override=sim.base_url)


def D(x: object) -> Decimal:
    return Decimal(str(x))


def test_account_and_configurations(sim: SimServer, client: TradingClient) -> None:
    acct = client.get_account()
    assert D(acct.cash) == sim.cfg.starting_cash
    assert D(acct.buying_power) == sim.cfg.starting_cash
    assert acct.status.value == "ACTIVE"
    conf = client.get_account_configurations()
    assert conf.no_shorting is False
    updated = client.set_account_configurations(
        AccountConfiguration(**{**conf.model_dump(), "no_shorting": True, "suspend_trade": False})
    )
    assert updated.no_shorting is True
    assert client.get_account_configurations().no_shorting is True


def test_submit_every_order_type_and_tif(sim: SimServer, client: TradingClient) -> None:
    sim.quote("AAPL", "100", "1000", "100.10", "1000")
    sim.quote("BTC/USD", "50000", "2", "50010", "2")
    requests = [
        MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY),
        MarketOrderRequest(symbol="AAPL", notional=100.5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY),
        MarketOrderRequest(symbol="AAPL", qty=0.5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY),
        LimitOrderRequest(
            symbol="AAPL", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=90
        ),
        LimitOrderRequest(
            symbol="AAPL",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=95.5,
            extended_hours=True,
        ),
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.IOC, limit_price=101
        ),
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.FOK, limit_price=101
        ),
        StopOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, stop_price=120
        ),
        StopLimitOrderRequest(
            symbol="AAPL",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            stop_price=120,
            limit_price=121,
        ),
        TrailingStopOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, trail_price=2
        ),
        TrailingStopOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY, trail_percent=1.5
        ),
        MarketOrderRequest(symbol="BTC/USD", qty=0.25, side=OrderSide.BUY, time_in_force=TimeInForce.GTC),
        LimitOrderRequest(
            symbol="BTC/USD", qty=0.1, side=OrderSide.BUY, time_in_force=TimeInForce.IOC, limit_price=50020
        ),
        LimitOrderRequest(
            symbol="AAPL",
            qty=3,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=99,
            client_order_id="my-limit-1",
        ),
    ]
    replies = [client.submit_order(r) for r in requests]
    assert all(isinstance(o, Order) for o in replies)
    # the POST reply is the order as accepted, fills are reported afterwards (stream, GET)
    assert {o.status for o in replies} == {OrderStatus.NEW}
    assert all(D(o.filled_qty) == 0 and o.filled_avg_price is None for o in replies)
    orders = [client.get_order_by_id(o.id) for o in replies]
    (
        market,
        notional,
        fractional,
        limit,
        ext,
        ioc,
        fok,
        stop,
        stop_limit,
        trail_px,
        trail_pct,
        btc,
        btc_ioc,
        named,
    ) = orders
    assert market.status == OrderStatus.FILLED and D(market.filled_avg_price) == D("100.10")
    assert notional.notional == "100.5" and notional.status == OrderStatus.FILLED
    assert D(notional.filled_qty) == (Decimal("100.5") / Decimal("100.10")).quantize(
        Decimal("1e-9"), "ROUND_DOWN"
    )
    assert D(fractional.filled_qty) == Decimal("0.5")
    assert limit.status == OrderStatus.NEW and limit.type == OrderType.LIMIT
    assert ext.extended_hours is True
    assert ioc.status == OrderStatus.FILLED and fok.status == OrderStatus.FILLED
    assert stop.status == OrderStatus.NEW and D(stop.stop_price) == 120
    assert stop_limit.type == OrderType.STOP_LIMIT
    assert trail_px.trail_price == "2" and D(trail_px.hwm) == 100 and D(trail_px.stop_price) == 98
    assert trail_pct.trail_percent == "1.5" and D(trail_pct.stop_price) == Decimal("98.5")
    assert btc.status == OrderStatus.FILLED and btc.asset_class == AssetClass.CRYPTO
    assert btc_ioc.status == OrderStatus.FILLED
    assert named.client_order_id == "my-limit-1"

    # opg/cls are refused in Alpaca's error shape
    with pytest.raises(APIError) as err:
        client.submit_order(
            MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.OPG)
        )
    assert err.value.status_code == 422 and err.value.code == 42210000


def test_bracket_order_legs(sim: SimServer, client: TradingClient) -> None:
    sim.quote("AAPL", "100", "100", "100.10", "100")
    parent = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=10,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=99,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=110),
            stop_loss=StopLossRequest(stop_price=90, limit_price=89.5),
        )
    )
    assert parent.order_class == OrderClass.BRACKET
    assert parent.legs is not None and {leg.status for leg in parent.legs} == {OrderStatus.HELD}
    sim.quote("AAPL", "98.90", "100", "99", "100")  # entry fills at 99
    nested = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True))
    top = next(o for o in nested if o.id == parent.id)
    assert top.status == OrderStatus.FILLED
    legs = {o.type: o for o in top.legs or []}
    assert legs[OrderType.LIMIT].status == OrderStatus.NEW
    assert legs[OrderType.STOP_LIMIT].status == OrderStatus.HELD
    sim.quote("AAPL", "110", "100", "110.10", "100")  # take profit fills, stop loss canceled
    after = client.get_order_by_id(parent.id)
    statuses = {leg.type: leg.status for leg in after.legs or []}
    assert statuses == {OrderType.LIMIT: OrderStatus.FILLED, OrderType.STOP_LIMIT: OrderStatus.CANCELED}
    assert client.get_all_positions() == []


def test_get_orders_filters_and_lookups(sim: SimServer, client: TradingClient) -> None:
    sim.quote("AAPL", "100", "100", "100.10", "100")
    sim.quote("MSFT", "300", "100", "300.10", "100")
    a = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=90
        )
    )
    b = client.submit_order(
        LimitOrderRequest(
            symbol="MSFT", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=290
        )
    )
    c = client.submit_order(MarketOrderRequest(symbol="MSFT", qty=1, side=OrderSide.BUY, time_in_force="day"))
    d = client.submit_order(
        LimitOrderRequest(
            symbol="MSFT", qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, limit_price=400
        )
    )
    open_ids = [o.id for o in client.get_orders()]
    assert open_ids == [d.id, b.id, a.id]  # default: open, newest first
    assert [o.id for o in client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))] == [c.id]
    asc = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, direction="asc", limit=2))
    assert [o.id for o in asc] == [a.id, b.id]
    msft = client.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["MSFT"], side=OrderSide.BUY)
    )
    assert {o.id for o in msft} == {b.id, c.id}
    after = client.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.ALL, after=b.submitted_at, direction="asc")
    )
    assert [o.id for o in after] == [c.id, d.id]
    until = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, until=b.submitted_at))
    assert [o.id for o in until] == [a.id]
    assert client.get_order_by_id(a.id).id == a.id
    assert client.get_order_by_client_id(b.client_order_id).id == b.id


def test_replace_and_cancel(sim: SimServer, client: TradingClient) -> None:
    sim.quote("AAPL", "100", "100", "100.10", "100")
    old = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=95
        )
    )
    new = client.replace_order_by_id(old.id, ReplaceOrderRequest(qty=6, limit_price=96))
    assert new.id != old.id and new.replaces == old.id
    assert D(new.qty) == 6 and D(new.limit_price) == 96
    replaced = client.get_order_by_id(old.id)
    assert replaced.status == OrderStatus.REPLACED and replaced.replaced_by == new.id
    with pytest.raises(APIError) as err:
        client.replace_order_by_id(new.id, ReplaceOrderRequest(limit_price=96))
    assert err.value.status_code == 403 and err.value.message == "order parameters are not changed"
    client.cancel_order_by_id(new.id)
    assert client.get_order_by_id(new.id).status == OrderStatus.CANCELED
    with pytest.raises(APIError) as err:
        client.replace_order_by_id(new.id, ReplaceOrderRequest(limit_price=97))
    assert err.value.status_code == 422

    x = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=90
        )
    )
    y = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=91
        )
    )
    responses = client.cancel_orders()
    assert {r.id for r in responses} == {x.id, y.id} and {r.status for r in responses} == {200}
    assert client.get_orders() == []


def test_positions_close_and_close_all(sim: SimServer, client: TradingClient) -> None:
    sim.quote("AAPL", "100", "1000", "100", "1000")
    sim.quote("BTC/USD", "50000", "10", "50000", "10")
    client.submit_order(MarketOrderRequest(symbol="AAPL", qty=10, side=OrderSide.BUY, time_in_force="day"))
    client.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=1, side=OrderSide.BUY, time_in_force="gtc"))
    positions = {p.symbol: p for p in client.get_all_positions()}
    assert set(positions) == {"AAPL", "BTC/USD"}
    assert positions["AAPL"].side == PositionSide.LONG and D(positions["AAPL"].qty) == 10
    assert D(client.get_open_position("BTCUSD").qty) == 1
    with pytest.raises(APIError) as err:
        client.get_open_position("MSFT")
    assert err.value.status_code == 404 and err.value.code == 40410000

    closing = client.close_position("AAPL", ClosePositionRequest(qty="4"))
    assert closing.side == OrderSide.SELL and D(closing.qty) == 4 and closing.status == OrderStatus.NEW
    assert client.get_order_by_id(closing.id).status == OrderStatus.FILLED
    assert D(client.get_open_position("AAPL").qty) == 6
    client.close_position("AAPL", ClosePositionRequest(percentage="50"))
    assert D(client.get_open_position("AAPL").qty) == 3

    resting = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=50
        )
    )
    results = client.close_all_positions(cancel_orders=True)
    assert {r.symbol for r in results} == {"AAPL", "BTC/USD"} and {r.status for r in results} == {200}
    assert client.get_order_by_id(resting.id).status == OrderStatus.CANCELED
    assert client.get_all_positions() == []
    # bought 10 AAPL and 1 BTC at 100 / 50000 and sold them all at the same prices: cash is back
    assert D(client.get_account().cash) == sim.cfg.starting_cash


def test_clock_calendar_assets(client: TradingClient) -> None:
    clock = client.get_clock()
    assert clock.is_open is True and clock.next_close > clock.timestamp
    start = date(2026, 11, 16)  # a Monday
    days = client.get_calendar(GetCalendarRequest(start=start, end=start + timedelta(days=6)))
    assert [d.date.weekday() for d in days] == [0, 1, 2, 3, 4]
    assets = client.get_all_assets()
    assert {a.symbol for a in assets} == {"AAPL", "MSFT", "FAKEPACA", "BTC/USD", "ETH/USD"}
    crypto = client.get_all_assets(GetAssetsRequest(asset_class=AssetClass.CRYPTO))
    assert {a.symbol for a in crypto} == {"BTC/USD", "ETH/USD"} and not any(a.shortable for a in crypto)
    fake = client.get_asset("FAKEPACA")
    assert fake.shortable is True and client.get_asset(fake.id).symbol == "FAKEPACA"
    assert client.get_asset("BTCUSD").symbol == "BTC/USD"
