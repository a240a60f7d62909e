"""The venue's trading metrics move by exactly what a scripted session does (scraped from the registry)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.kit.trade_updates import Updates, sim_post
from tests.kit.trading_venue import KEY, SECRET, SimServer
from tests.kit.waiting import wait_until

Sample = tuple[str, tuple[tuple[str, str], ...]]


def scrape() -> dict[Sample, float]:
    """Every zt_sim_* sample of the default registry, as the /metrics endpoint would serve it."""
    out: dict[Sample, float] = {}
    for family in text_string_to_metric_families(generate_latest().decode()):
        for s in family.samples:
            if s.name.startswith("zt_sim_"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def delta(before: dict[Sample, float], after: dict[Sample, float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_trading_metrics_count_events_requests_rejections_and_connections(
    sim_factory: Callable[..., SimServer],
) -> None:
    sim = sim_factory()
    client = TradingClient(KEY, SECRET, url_override=sim.base_url)
    before = scrape()
    updates = Updates(sim).start()
    assert delta(before, scrape(), "zt_sim_trade_stream_connections") == 1

    sim.quote("AAPL", "100", "10", "100.5", "10")
    resting = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=90
        )
    )
    client.get_order_by_id(resting.id)
    client.cancel_order_by_id(resting.id)
    with pytest.raises(APIError) as refused:
        client.submit_order(
            MarketOrderRequest(symbol="AAPL", qty=5000, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
        )
    assert refused.value.code == 40310000
    headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    assert (
        requests.get(sim.base_url + "/v2/account/nothing-here", headers=headers, timeout=5).status_code == 404
    )
    sim_post(sim, "/sim/faults/reject", {"count": 1})
    client.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    assert [u.event for u in updates.take(4)] == ["new", "canceled", "pending_new", "rejected"]
    after = scrape()

    events = "zt_sim_orders_total"
    for event, n in (("new", 1), ("canceled", 1), ("pending_new", 1), ("rejected", 1), ("fill", 0)):
        assert delta(before, after, events, event=event) == n, event
    requests_total, count = "zt_sim_rest_requests_total", "zt_sim_rest_latency_seconds_count"
    assert delta(before, after, requests_total, method="POST", route="/v2/orders", code="200") == 2
    assert delta(before, after, requests_total, method="POST", route="/v2/orders", code="403") == 1
    assert delta(before, after, requests_total, method="GET", route="/v2/orders/{order_id}", code="200") == 1
    assert (
        delta(before, after, requests_total, method="DELETE", route="/v2/orders/{order_id}", code="204") == 1
    )
    assert delta(before, after, requests_total, method="GET", route="unmatched", code="404") == 1
    assert delta(before, after, count, route="/v2/orders") == 3
    assert delta(before, after, count, route="/v2/orders/{order_id}") == 2
    assert delta(before, after, "zt_sim_rejections_total", code="40310000") == 1
    assert delta(before, after, "zt_sim_rejections_total", code="async") == 1

    updates.stop()
    wait_until(lambda: delta(before, scrape(), "zt_sim_trade_stream_connections") == 0, 10, "the condition")
