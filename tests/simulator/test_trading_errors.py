"""Error responses, rate limiting and fault injection over raw HTTP (requests, no client retries)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import MarketOrderRequest

from simulator.rest import RATE_LIMITER
from tests.kit.trading_venue import KEY, SECRET, SimServer

AUTH = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}


def call(sim: SimServer, method: str, path: str, **kw: Any) -> requests.Response:
    headers = kw.pop("headers", AUTH)
    return requests.request(method, sim.base_url + path, headers=headers, timeout=5, **kw)


def order(symbol: str = "AAPL", qty: Any = 1, side: str = "buy", **extra: Any) -> dict[str, Any]:
    return {"symbol": symbol, "qty": qty, "side": side, "type": "market", "time_in_force": "day", **extra}


def test_401_bad_or_missing_keys(sim: SimServer) -> None:
    for headers in ({}, {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": "nope"}):
        resp = call(sim, "GET", "/v2/account", headers=headers)
        assert resp.status_code == 401
        assert resp.json() == {"code": 40110000, "message": "request is not authorized"}
        assert SECRET not in resp.text


def test_403_buying_power_and_qty(sim: SimServer) -> None:
    sim.quote("AAPL", "100", "10000", "100", "10000")
    sim.quote("BTC/USD", "50000", "10", "50000", "10")
    resp = call(sim, "POST", "/v2/orders", json=order(qty=1001))
    assert resp.status_code == 403
    body = resp.json()
    assert body["code"] == 40310000 and body["message"] == "insufficient buying power"
    assert (body["buying_power"], body["cost_basis"]) == ("100000", "100100")
    resp = call(sim, "POST", "/v2/orders", json=order("BTC/USD", "0.5", "sell", time_in_force="gtc"))
    assert resp.status_code == 403
    assert resp.json()["message"] == "insufficient qty available for order (requested: 0.5, available: 0)"
    assert resp.json()["symbol"] == "BTC/USD"


def test_404_and_422_shapes(sim: SimServer) -> None:
    resp = call(sim, "GET", "/v2/orders/6f1c3a52-1d7e-4d1b-9a53-3c1f2e0b7a10")
    assert (resp.status_code, resp.json()["code"]) == (404, 40410000)
    assert call(sim, "GET", "/v2/positions/AAPL").json() == {
        "code": 40410000,
        "message": "position does not exist",
    }
    resp = call(sim, "POST", "/v2/orders", json={"symbol": "AAPL", "side": "buy"})
    assert resp.status_code == 422 and resp.json()["code"] == 40010001
    assert "type" in resp.json()["message"] and "time_in_force" in resp.json()["message"]
    resp = call(
        sim, "POST", "/v2/orders", data="{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status_code == 422
    resp = call(sim, "POST", "/v2/orders", json=order())  # no quote yet
    assert resp.status_code == 422 and "no quote" in resp.json()["message"]


def test_422_duplicate_client_order_id_even_after_cancel(sim: SimServer) -> None:
    sim.quote("AAPL", "100", "100", "100.1", "100")
    limit = order(type="limit", limit_price="90", time_in_force="gtc", client_order_id="dup-1")
    first = call(sim, "POST", "/v2/orders", json=limit)
    assert first.status_code == 200
    dup = call(sim, "POST", "/v2/orders", json=limit)
    assert dup.status_code == 422
    assert dup.json() == {"code": 40010001, "message": "client_order_id must be unique"}
    assert call(sim, "DELETE", f"/v2/orders/{first.json()['id']}").status_code == 204
    again = call(sim, "POST", "/v2/orders", json=limit)
    assert (again.status_code, again.json()["code"]) == (422, 40010001)


def test_429_with_ratelimit_headers(sim_factory: Callable[..., SimServer]) -> None:
    sim = sim_factory(rate_limit_per_min=3)
    sim.app[RATE_LIMITER].clock = lambda: 1_800_000_030.0  # mid-window: no rollover during the test
    seen = [call(sim, "GET", "/v2/clock") for _ in range(4)]
    assert [r.status_code for r in seen] == [200, 200, 200, 429]
    assert [r.headers["X-Ratelimit-Remaining"] for r in seen] == ["2", "1", "0", "0"]
    assert all(r.headers["X-Ratelimit-Limit"] == "3" for r in seen)
    assert seen[-1].headers["X-Ratelimit-Reset"] == "1800000060"
    assert seen[-1].json() == {"code": 42910000, "message": "rate limit exceeded"}
    assert requests.get(sim.base_url + "/sim/orders/log", timeout=5).status_code == 200  # /sim is not limited


@pytest.mark.parametrize("status", [500, 504, 429])
def test_fault_next_n_calls(sim: SimServer, status: int) -> None:
    armed = requests.post(sim.base_url + "/sim/faults/rest", json={"status": status, "count": 2}, timeout=5)
    assert armed.status_code == 200
    codes = [call(sim, "GET", "/v2/account").status_code for _ in range(3)]
    assert codes == [status, status, 200]


def test_fault_after_apply_places_the_order(sim: SimServer) -> None:
    sim.quote("AAPL", "100", "100", "100", "100")
    requests.post(
        sim.base_url + "/sim/faults/rest",
        json={"status": 500, "count": 1, "after_apply": True, "paths": "/v2/orders"},
        timeout=5,
    )
    assert call(sim, "GET", "/v2/account").status_code == 200  # not under the faulted prefix
    client = TradingClient(KEY, SECRET, url_override=sim.base_url)
    with pytest.raises(APIError) as err:
        client.submit_order(
            MarketOrderRequest(
                symbol="AAPL", qty=3, side="buy", time_in_force="day", client_order_id="lost-reply"
            )
        )
    assert err.value.status_code == 500
    placed = client.get_order_by_client_id("lost-reply")
    assert placed.filled_qty == "3"
    log = requests.get(sim.base_url + "/sim/orders/log", timeout=5).json()
    assert [(e["method"], e["client_order_id"], e["status_code"]) for e in log] == [
        ("POST", "lost-reply", 500)
    ]
    assert log[0]["order_id"] == str(placed.id) and log[0]["arrived_ns"] > 0


def test_sim_reset(sim: SimServer) -> None:
    sim.quote("AAPL", "100", "100", "100", "100")
    assert call(sim, "POST", "/v2/orders", json=order(client_order_id="r1")).status_code == 200
    resp = requests.post(sim.base_url + "/sim/account/reset", json={"cash": "2500.5"}, timeout=5)
    assert resp.json()["cash"] == "2500.5"
    assert call(sim, "GET", "/v2/positions").json() == []
    assert call(sim, "GET", "/v2/orders?status=all").json() == []
    assert call(sim, "POST", "/v2/orders", json=order(client_order_id="r1")).status_code == 200
    bad = requests.post(sim.base_url + "/sim/faults/rest", json={"status": 418, "count": 1}, timeout=5)
    assert bad.status_code == 422 and bad.json()["code"] == 40010001
