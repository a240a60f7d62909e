"""The signal service: runs the configured strategies on market data and order events and sends
their intents to risk, pipelined (each request has its own future; replies are handled in callbacks)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from common import topics, wire
from common.clock import mono_ns, wall_ns
from common.config import Settings
from common.enums import RejectReason, TradingState
from common.ids import IntentIds
from common.log import kv
from common.metrics import STAGE_LATENCY
from common.order_events import OrderEvent, OrderEventReceiver
from common.ratelog import ConditionLog
from common.service import Service
from common.zmq_io import RpcClient, RpcTimeout, RpcUnavailable
from services.signal.host import StrategyHost
from services.signal.metrics import DECISIONS, INTENTS
from services.signal.registry import build_strategies
from services.signal.strategy import StrategyContext

log = logging.getLogger(__name__)


def _synthetic_rejection(intent: wire.OrderIntent, reason: str, detail: str) -> wire.RiskDecision:
    return wire.RiskDecision(
        intent_id=intent.intent_id,
        approved=False,
        reason=reason,
        detail=detail,
        client_order_id="",
        risk_ns=0,
    )


def market_topics(symbols: list[str] | None) -> list[bytes]:
    """What signal subscribes to: the feeds' status and the market data of the strategies' symbols
    only, so market_data's PUB drops the rest before it reaches this process (all of it when a
    strategy takes every symbol). Topics are prefixes: ``md.q.AAPL`` also brings ``AAPLX``, which the
    host routes to nobody."""
    if symbols is None:
        return [topics.MD]
    kinds = (topics.MD_QUOTE, topics.MD_TRADE, topics.MD_BAR, topics.MD_BOOK)
    return [topics.MD_FEED, *(topics.sym(kind, symbol) for symbol in symbols for kind in kinds)]


def held_back(state: TradingState | None, position: int, intent: wire.OrderIntent) -> RejectReason | None:
    """Why signal does not send ``intent`` to risk in this trading state (None: send it; risk decides).

    HALTED: nothing goes. REDUCE_ONLY: only an intent that shrinks ``position`` (risk's last published
    one) without flipping it; risk checks again, with the open orders too. Unknown (not heard from
    risk yet): send, risk decides."""
    if state is None or state is TradingState.ACTIVE:
        return None
    if state is TradingState.REDUCE_ONLY:
        signed = intent.qty if intent.side == "buy" else -intent.qty
        if position * signed < 0 and abs(signed) <= abs(position):
            return None
        return RejectReason.REDUCE_ONLY
    return RejectReason.HALTED


class SignalService(Service):
    name = "signal"

    def __init__(self, settings: Settings) -> None:
        self.ids = IntentIds()
        self._undecided_log = ConditionLog(log)
        ctx = StrategyContext(
            ids=self.ids,
            intent_max_age_ns=settings.risk.intent_max_age_ms * 1_000_000,
            clock_ns=wall_ns,
        )
        # Strategies first: a bad strategy config fails before any socket is bound.
        self.host = StrategyHost(
            build_strategies(settings.signal.strategies, ctx, settings.signal.strategy_paths),
            settings.execution.client_order_id_prefix,
        )
        super().__init__(settings)
        self.intents_sent = 0
        self.decisions: Counter[str] = Counter()
        self._md_lat = STAGE_LATENCY.labels(self.name, "md_to_signal")
        self._rtt = STAGE_LATENCY.labels(self.name, "signal_rtt")
        self._risk: RpcClient | None = None
        self._events: OrderEventReceiver | None = None
        # risk's trading state (None until heard: risk decides) and positions, to hold back intents
        # risk would reject anyway while trading is not ACTIVE
        self.trading_state: TradingState | None = None
        self._trading_seq = -1
        self._positions: dict[str, int] = {}
        self.held_back = 0

    async def start(self) -> None:
        self._risk = self.peer_client("risk")  # intents: risk takes them only from us
        self.subscribe("risk", [topics.RK_TRADING_STATE, topics.RK_POSITION], self._on_risk_events)
        self.subscribe(
            "market_data",
            market_topics(self.host.market_symbols()),
            self._on_market_data,
            conflate=(topics.MD_QUOTE, topics.MD_BOOK),
        )
        self._events = OrderEventReceiver(self, self._on_order_event, self.host.load_snapshot)
        self.tasks.spawn("strategy_timer", self._timer_loop)
        log.info("strategies loaded", extra=kv(strategies=list(self.host.slots)))

    def is_ready(self) -> bool:
        """Risk, the only way out for intents, answers."""
        return self._risk is not None and self._risk.alive

    # ---- inputs -----------------------------------------------------------------------------

    def _on_market_data(self, topic: bytes, msgs: list[Any]) -> None:
        now = wall_ns()
        intents = self.host.on_market(msgs)
        if intents:
            self.send(intents)  # before the metrics: each send may hand the CPU to risk
        observe = self._md_lat.observe
        for m in msgs:
            recv = getattr(m, "recv_ns", 0)
            if recv:
                observe(max(now - recv, 0) / 1e9)

    def _on_order_event(self, ev: OrderEvent) -> None:
        intents = self.host.on_order_event(ev)
        if intents:
            self.send(intents)

    async def _timer_loop(self) -> None:
        interval = self.settings.signal.timer_interval_s
        while True:
            await asyncio.sleep(interval)
            intents = self.host.on_timer(wall_ns())
            if intents:
                self.send(intents)

    def _on_risk_events(self, topic: bytes, msgs: list[Any]) -> None:
        for m in msgs:
            if isinstance(m, wire.TradingStateChanged):
                if m.seq >= self._trading_seq:
                    if m.state is not self.trading_state:
                        log.warning("trading state", extra=kv(state=m.state, seq=m.seq, reason=m.reason))
                    self.trading_state, self._trading_seq = m.state, m.seq
            elif isinstance(m, wire.Position):
                self._positions[m.symbol] = m.qty

    def _held_back(self, intent: wire.OrderIntent) -> RejectReason | None:
        return held_back(self.trading_state, self._positions.get(intent.symbol, 0), intent)

    # ---- intents to risk --------------------------------------------------------------------

    def send(self, intents: list[wire.OrderIntent]) -> None:
        assert self._risk is not None, "start() not called"
        for intent in intents:
            held = self._held_back(intent)
            if held is not None:
                self.held_back += 1
                detail = f"trading state is {self.trading_state}: not sent to risk"
                self._apply_decision(intent, _synthetic_rejection(intent, held.value, detail))
                continue
            sent = mono_ns()
            fut = self._risk.request(intent)
            fut.add_done_callback(lambda f, i=intent, t=sent: self._on_decision(i, t, f))
            self.intents_sent += 1
            INTENTS.labels(intent.strategy).inc()

    def _on_decision(self, intent: wire.OrderIntent, sent_ns: int, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if isinstance(exc, RpcTimeout):
            decision = _synthetic_rejection(intent, RejectReason.RISK_TIMEOUT, str(exc))
        elif isinstance(exc, RpcUnavailable):
            decision = _synthetic_rejection(intent, RejectReason.RISK_UNAVAILABLE, str(exc))
        elif exc is not None:
            decision = _synthetic_rejection(intent, RejectReason.RISK_ERROR, f"{type(exc).__name__}: {exc}")
        else:
            reply = fut.result()
            self._rtt.observe((mono_ns() - sent_ns) / 1e9)
            if isinstance(reply, wire.RiskDecision):
                decision = reply
            else:
                detail = reply.detail if isinstance(reply, wire.Reply) else type(reply).__name__
                decision = _synthetic_rejection(intent, RejectReason.RISK_ERROR, detail)
        self._apply_decision(intent, decision)

    def _apply_decision(self, intent: wire.OrderIntent, decision: wire.RiskDecision) -> None:
        outcome = "approved" if decision.approved else str(decision.reason)
        self.decisions[outcome] += 1
        DECISIONS.labels(outcome).inc()
        if not decision.approved and decision.reason.startswith("risk_"):
            # while risk is down every intent lands here: one line per reason, then reminders
            self._undecided_log.report(
                decision.reason,
                "intent not decided by risk",
                intent_id=intent.intent_id,
                reason=decision.reason,
            )
        else:
            self._undecided_log.clear("risk decides intents again")
        intents = self.host.on_decision(intent, decision)
        if intents:
            self.send(intents)

    # ---- reporting --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "run_id": self.ids.run_id,
            "strategies": self.host.status(),
            "intents_sent": self.intents_sent,
            "decisions": dict(self.decisions),
            "order_event_seq": self._events.last_seq if self._events else 0,
            "trading_state": self.trading_state.value if self.trading_state else "unknown",
            "intents_held_back": self.held_back,
        }


SERVICE_CLASS = SignalService
