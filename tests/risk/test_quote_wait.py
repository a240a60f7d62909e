"""A decision on an intent built from a quote risk has not read yet waits for that quote, without
holding the loop and at most ``risk.quote_wait_ms``; then it is judged by what risk holds (in-process
risk, real sockets in a tmp dir, the test playing market_data; nobody plays execution, so an order
that passes every check ends as ``execution_unavailable``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from common import wire
from common.config import Settings
from common.enums import RejectReason
from common.fixed import to_fixed
from common.zmq_io import Publisher
from services.risk.metrics import QUOTE_WAITS
from services.risk.service import MAX_WAITING_DECISIONS, RiskService
from tests.kit.risk_fed import quote, risk_fed_by_test


def _intent(iid: str, tick_exch_ns: int) -> wire.OrderIntent:
    now = time.time_ns()
    return wire.OrderIntent(
        intent_id=iid, strategy="t", symbol="AAPL", side="buy", qty=to_fixed("1"), limit_px=to_fixed("100"),
        signal_ns=now, deadline_ns=now + 10**9, tick_exch_ns=tick_exch_ns,
    )  # fmt: skip


def _waits(outcome: str) -> float:
    return QUOTE_WAITS.labels(outcome)._value.get()


Scenario = Callable[[RiskService, Publisher], Awaitable[Any]]


def _run(tmp_path: Path, wait_ms: int, scenario: Scenario, drain_ms: int = 1000) -> Any:
    # by default paced reading whose timer never fires during the test: only decisions read the socket
    settings = Settings(
        zmq={"run_dir": tmp_path},
        metrics={"base_port": 0},
        risk={"quote_drain_ms": drain_ms, "quote_wait_ms": wait_ms},
    )

    async def main() -> Any:
        async with risk_fed_by_test(settings) as (svc, pub):
            # risk holds an AAPL quote whose mid puts the intent's limit (100) outside the price band
            svc.risk.on_quote(quote("AAPL", "50", time.time_ns() - 10_000_000))
            return await scenario(svc, pub)

    return asyncio.run(main())


@pytest.mark.parametrize("drain_ms", [1000, 0], ids=["paced", "on every frame"])
def test_the_decision_waits_for_the_quote_its_intent_was_built_from(tmp_path: Path, drain_ms: int) -> None:
    arrived = _waits("arrived")

    async def scenario(svc: RiskService, pub: Publisher) -> wire.RiskDecision:
        tick = time.time_ns()
        pending = svc.decide(_intent("a", tick))
        # the quote the strategy acted on reaches risk 5 ms after the intent
        asyncio.get_running_loop().call_later(0.005, pub.publish, b"md.q.AAPL", [quote("AAPL", "100", tick)])
        assert not isinstance(pending, wire.RiskDecision)
        return await pending  # type: ignore[no-any-return,misc]

    decision = _run(tmp_path, 100, scenario, drain_ms)
    # judged by the new quote (mid 100): every check passed, only forwarding failed
    assert decision.reason == RejectReason.EXECUTION_UNAVAILABLE.value
    assert _waits("arrived") == arrived + 1


def test_a_quote_that_never_comes_is_waited_for_only_quote_wait_ms(tmp_path: Path) -> None:
    timeouts = _waits("timeout")

    async def scenario(svc: RiskService, pub: Publisher) -> tuple[float, wire.RiskDecision]:
        t0 = time.monotonic()
        pending = svc.decide(_intent("b", time.time_ns()))
        pub.publish(b"md.q.MSFT", [quote("MSFT", "100", time.time_ns())])  # another symbol's: no help
        assert not isinstance(pending, wire.RiskDecision)
        decision = await pending  # type: ignore[misc]
        return time.monotonic() - t0, decision

    waited_s, decision = _run(tmp_path, 30, scenario)
    assert decision.reason == RejectReason.PRICE_BAND.value  # judged by the quote risk holds (mid 50)
    assert 0.030 <= waited_s < 1.0
    assert _waits("timeout") == timeouts + 1


@pytest.mark.parametrize("wait_ms", [0, 100])
def test_an_intent_risk_is_not_behind_on_or_with_waiting_off_is_decided_at_once(
    tmp_path: Path, wait_ms: int
) -> None:
    async def scenario(svc: RiskService, pub: Publisher) -> list[object]:
        held = svc.quote_exch_ns("AAPL")
        assert held is not None
        # built from the quote risk holds, and (with waiting off) from a newer one
        return [
            svc.decide(_intent("c", held)),
            svc.decide(_intent("d", time.time_ns() if not wait_ms else held)),
        ]

    for decision in _run(tmp_path, wait_ms, scenario):
        assert isinstance(decision, wire.RiskDecision)
        assert decision.reason == RejectReason.PRICE_BAND.value


def test_a_flood_of_intents_claiming_unseen_quotes_waits_only_so_many_at_once(tmp_path: Path) -> None:
    """Signal is not trusted: intents whose ticks risk never sees hold at most
    MAX_WAITING_DECISIONS timers; the rest are judged at once."""

    async def scenario(svc: RiskService, pub: Publisher) -> tuple[int, list[object]]:
        results = [svc.decide(_intent(f"f{i}", time.time_ns())) for i in range(MAX_WAITING_DECISIONS + 6)]
        waiting = [r for r in results if not isinstance(r, wire.RiskDecision)]
        decided = [await w for w in waiting]  # type: ignore[misc]
        return len(waiting), decided + [r for r in results if isinstance(r, wire.RiskDecision)]

    waited, decisions = _run(tmp_path, 30, scenario)
    assert waited == MAX_WAITING_DECISIONS
    assert len(decisions) == MAX_WAITING_DECISIONS + 6
    assert all(
        isinstance(d, wire.RiskDecision) and d.reason == RejectReason.PRICE_BAND.value for d in decisions
    )
