"""The market-data client's failures over real sockets: classified, counted, in the feed's state
detail, and an auth rejection waits the long backoff instead of a tight loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from common.enums import FeedState, LinkFailure
from common.netfail import AUTH_RETRY_S
from services.market_data.alpaca_ws import FeedConnection
from tests.kit.market_data import SIM_SECRET, FakeAlpaca
from tests.kit.system import free_port


@pytest.fixture
def venue() -> Iterator[FakeAlpaca]:
    v = FakeAlpaca()
    yield v
    v.close()


def run_until_failure(
    url: str, secret: str = SIM_SECRET
) -> tuple[FeedConnection, list[tuple[FeedState, str]]]:
    states: list[tuple[FeedState, str]] = []

    async def main() -> FeedConnection:
        conn = FeedConnection(
            "stocks", url, ("test-key", secret), {"quotes": ["AAPL"]}, lambda f, r: [],
            lambda s, d: states.append((s, d)), 0.05, 0.1,
        )  # fmt: skip
        task = asyncio.get_running_loop().create_task(conn.run())
        try:
            for _ in range(250):
                if any(s is FeedState.DISCONNECTED for s, _ in states):
                    return conn
                await asyncio.sleep(0.02)
            raise AssertionError(f"no failure reported: {states}")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    return asyncio.run(main()), states


def test_closed_port_is_connection_refused_in_the_feed_state() -> None:
    port = free_port()
    before = REGISTRY.get_sample_value(
        "zt_link_failures_total", {"service": "market_data", "link": "stocks", "kind": "connection_refused"}
    )
    conn, states = run_until_failure(f"ws://127.0.0.1:{port}/v2/iex")
    assert conn.health.last is not None and conn.health.last.kind is LinkFailure.CONNECTION_REFUSED
    detail = next(d for s, d in states if s is FeedState.DISCONNECTED)
    assert detail.startswith(f"connection_refused: connection refused by 127.0.0.1:{port} ")
    after = REGISTRY.get_sample_value(
        "zt_link_failures_total", {"service": "market_data", "link": "stocks", "kind": "connection_refused"}
    )
    assert after == (before or 0) + 1


def test_unresolvable_host_is_dns_failure() -> None:
    conn, states = run_until_failure("wss://nonexistent.invalid/v2/iex")
    assert conn.health.last is not None and conn.health.last.kind is LinkFailure.DNS_FAILURE
    assert any(d.startswith("dns_failure: cannot resolve nonexistent.invalid (DNS)") for _, d in states)


def test_rejected_keys_are_auth_rejected_with_the_long_backoff(venue: FakeAlpaca) -> None:
    conn, states = run_until_failure(venue.url("/v2/iex"), secret="wrong-secret")
    assert conn.health.last is not None and conn.health.last.kind is LinkFailure.AUTH_REJECTED
    assert "rejected the API keys (error 402 auth failed)" in conn.health.last.message
    detail = next(d for s, d in states if s is FeedState.DISCONNECTED)
    assert detail.startswith("auth_rejected: ") and detail.endswith("retry in 60.0s")
    assert conn.health.retry_delay(0.1) == AUTH_RETRY_S
    assert "wrong-secret" not in " ".join(d for _, d in states)
