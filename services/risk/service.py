"""The risk service: pre-trade checks on every OrderIntent, forwarding approved orders to
execution, and positions / pending quantity kept from execution's order events."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from fractions import Fraction
from time import perf_counter_ns
from typing import Any

from common import oplog, topics, wire
from common.clock import tick_age_error, wall_ns
from common.config import Settings
from common.enums import OpsEvent, RejectReason, TradingState
from common.fixed import to_float, to_str
from common.ids import client_order_id
from common.log import kv
from common.metric_labels import LabelFold, configured_strategies, configured_symbols
from common.metrics import STAGE_LATENCY
from common.order_events import OrderEvent, OrderEventReceiver
from common.service import Service
from common.zmq_io import RpcClient, RpcTimeout, Subscriber
from services.risk import checks
from services.risk.book_metrics import BookFigures, BookGauges, StrategyBooks, book_figures
from services.risk.kill_switch import SET_TRADING_STATE, KillSwitch
from services.risk.limits import RiskLimits
from services.risk.metrics import (
    CHECK_LATENCY,
    DAY_PNL,
    DECISIONS,
    QUOTE_AGE,
    RECONCILED,
    declare_kill_switch_series,
)
from services.risk.state import RiskState
from services.risk.trading_day import TradingDay
from services.risk.trading_state import TradingStateOwner
from services.risk.trigger_runner import TriggerRunner
from services.risk.triggers import Exposure, Triggers

log = logging.getLogger(__name__)

ACCOUNT_MAX_AGE_NS = 60 * 1_000_000_000


class RiskService(Service):
    name = "risk"
    CONTROL_MUTATING = frozenset({SET_TRADING_STATE})

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        r = settings.risk
        md = settings.market_data
        configured = {*md.stocks, *md.crypto, *r.symbols, *(r.allow_symbols or ())}
        self.risk = RiskState(RiskLimits.from_config(r), known_symbols=frozenset(configured))
        self._risk_config = r
        self._quotes: Subscriber | None = None
        self._account_ts_ns = 0  # wall ns of the account snapshot in force (0: none)
        self.account: wire.Account | None = None  # the venue's latest account snapshot
        self._symbol_labels = LabelFold(configured_symbols(settings))
        self.strategy_books = StrategyBooks(LabelFold(configured_strategies(settings)))
        self._book_gauges = BookGauges()
        QUOTE_AGE.watch(self._symbol_labels.configured, self.quote_exch_ns)
        self.trading = TradingStateOwner(settings.zmq.run_dir, self.risk.enforce, self._publish_trading_state)
        self.trading_day = TradingDay(r.day_timezone, r.day_starts_at, settings.zmq.run_dir)
        self.kill_switch = KillSwitch(self.trading, self.guard, settings)
        declare_kill_switch_series()
        self.decisions: Counter[str] = Counter()
        self.positions_loaded = False  # a snapshot of the current execution is applied
        self._prefix = settings.execution.client_order_id_prefix
        self._max_age_ns = r.intent_max_age_ms * 1_000_000
        self._check_lat = CHECK_LATENCY
        self._s2r_lat = STAGE_LATENCY.labels(self.name, "signal_to_risk")
        self._check_ns = 0  # the numba check's duration in the decision being made (0: not run)
        self._execution: RpcClient | None = None
        self._events: OrderEventReceiver | None = None
        self.ready = asyncio.Event()  # set once start() has connected to peers
        self.triggers = Triggers(settings.kill_switch)
        self.trigger_runner = TriggerRunner(
            self.triggers,
            self.trading,
            self._exposure,
            self.kill_switch.tell_execution,
            self._spawn,
            settings.kill_switch.eval_interval_ms / 1000,
        )
        checks.warm_up()

    async def start(self) -> None:
        self._execution = self.peer_client("execution")  # orders: execution takes them only from us
        self.kill_switch.execution = self._execution
        self._quotes = self.subscribe(
            "market_data", [topics.MD_QUOTE], self._on_market_data, conflate=(topics.MD_QUOTE,),
            paced_ms=self._risk_config.quote_drain_ms or None,
        )  # fmt: skip
        self.subscribe("execution", [topics.ACCOUNT], self._on_account)
        self._events = OrderEventReceiver(
            self,
            self._on_order_event,
            self._on_snapshot,
            on_reset=self._on_execution_reset,
            reset_on_restart=True,
        )
        self.subscribe("execution", [topics.heartbeat("execution")], self._on_execution_heartbeat)
        self.tasks.spawn("trading_state_beacon", self._trading_state_beacon)
        self.tasks.spawn("kill_switch_triggers", self.trigger_runner.run)
        self.ready.set()

    def _spawn(self, coro: Any) -> None:
        self.tasks.run_once(coro.__qualname__.rsplit(".", 1)[-1].lstrip("_"), coro)

    def _on_execution_reset(self) -> None:
        """Execution restarted: until its new snapshot, nothing is approved, and the pending quantity
        of orders the dead process accepted but never journaled goes (the snapshot lists the rest)."""
        self.positions_loaded = False
        self.risk.clear_pending()

    @property
    def trading_ready(self) -> bool:
        """Execution's snapshot is applied: positions, and the open orders behind the pending quantity."""
        return self.positions_loaded

    # ---- requests ---------------------------------------------------------------------------

    def handle(self, msg: Any) -> Any:
        if isinstance(msg, wire.OrderIntent):
            return self.decide(msg)
        if isinstance(msg, wire.SetTradingState):
            return self.kill_switch.command(msg)
        return super().handle(msg)

    # ---- the trading state ----------------------------------------------------------------------

    def _publish_trading_state(self, event: wire.TradingStateChanged) -> None:
        self.pub.publish(topics.RK_TRADING_STATE, [event])

    async def _trading_state_beacon(self) -> None:
        """Re-publish the state every heartbeat (late joiners, lost frames) and adopt a change that
        `zerotick kill` wrote to the state file while we could not be reached."""
        interval = self.settings.zmq.heartbeat_interval_ms / 1000
        while True:
            now = wall_ns()
            self._expire_account(now)
            self._roll_day(now)
            await self._record_day()
            if not self.trading.adopt_external():
                self._publish_trading_state(self.trading.event())
            elif self.trading.state is TradingState.HALTED:
                record = self.trading.record  # a `kill --flatten` written to the file still flattens
                await self.kill_switch.tell_execution(record.seq, TradingState.HALTED, record.flatten, 0)
            await asyncio.sleep(interval)

    def decide(self, intent: wire.OrderIntent) -> wire.RiskDecision:
        """The decision on ``intent``; an approved order is forwarded to execution first.

        Only what the decision needs runs before the order request and the reply go out: the
        stage metrics, counters, the ops log line and the decision's publication on ``rk.rd``
        run right after this drain pass (``call_soon``), once both sends are done."""
        if self._quotes is not None:
            # the symbol's newest quote first (market data is read paced, risk.quote_drain_ms); the
            # other symbols' waiting quotes are applied once the decision's sends are done
            self._quotes.drain_for(topics.sym(topics.MD_QUOTE, intent.symbol))
        now = wall_ns()
        if now >= self.trading_day.next_start_ns:
            self._roll_day(now)
        self._check_ns = 0
        decision = self._decide(intent, now)
        self.decisions[decision.reason] += 1
        self.loop.call_soon(self._after_decision, intent, decision, now, self._check_ns)
        return decision

    def _roll_day(self, now: int) -> None:
        """A new trading day: its P&L starts at 0 (the drawdown trigger's peak moves with it)."""
        before = self.risk.day_pnl
        if self.trading_day.roll_if_due(now, self.risk.total_pnl, self.risk.realized_pnl):
            self.risk.set_day_baseline(self.trading_day.baseline)
            self.triggers.on_day_roll(before - self.risk.day_pnl)

    async def _record_day(self) -> None:
        data = self.trading_day.record(wall_ns(), self.risk.realized_pnl)
        if data is not None:
            await asyncio.to_thread(self.trading_day.save, data)

    def _decide(self, intent: wire.OrderIntent, now: int) -> wire.RiskDecision:
        stale = self._staleness(intent, now)
        if stale:
            return self._reject(intent, RejectReason.EXPIRED, stale)
        old_tick = tick_age_error(
            intent.tick_exch_ns, now, self._risk_config.quote_age_limit_ns(intent.symbol)
        )
        if old_tick:
            return self._reject(intent, RejectReason.STALE_QUOTE, old_tick)
        if not self.trading_ready:
            return self._reject(intent, RejectReason.NOT_READY, "positions not loaded from execution yet")
        try:
            coid = client_order_id(self._prefix, intent.intent_id)
        except ValueError as exc:
            return self._reject(intent, RejectReason.BAD_ORDER, str(exc))
        if coid in self.risk.pending:
            # Execution would refuse it, and that refusal must not release the live order's quantity.
            return self._reject(intent, RejectReason.DUPLICATE, f"{coid} is already an open order")
        # last before sending: an approval takes rate tokens and is recorded by the duplicate guard
        t0 = perf_counter_ns()
        code = self.risk.check(intent, now)
        self._check_ns = perf_counter_ns() - t0
        if code:
            reason = RejectReason.from_code(code)
            refused = reason is RejectReason.SYMBOL_NOT_ALLOWED and intent.symbol not in self.risk.index
            return self._reject(intent, reason, self.risk.refusal(intent.symbol) if refused else "")
        assert self._execution is not None, "start() not called"
        risk_ns = wall_ns()
        fut = self._execution.request(wire.OrderRequest(client_order_id=coid, intent=intent, risk_ns=risk_ns))
        if fut.done() and fut.exception() is not None:
            return self._reject(intent, RejectReason.EXECUTION_UNAVAILABLE, str(fut.exception()))
        self.risk.add_pending(coid, intent.symbol, intent.side, intent.qty)
        fut.add_done_callback(lambda f: self._on_ack(coid, f))
        return wire.RiskDecision(
            intent_id=intent.intent_id,
            approved=True,
            reason="ok",
            detail="",
            client_order_id=coid,
            risk_ns=risk_ns,
        )

    def _after_decision(
        self, intent: wire.OrderIntent, decision: wire.RiskDecision, now: int, check_ns: int
    ) -> None:
        """What a decision leaves to do once the order request and the reply are sent."""
        if intent.signal_ns:
            self._s2r_lat.observe(max(now - intent.signal_ns, 0) / 1e9)
        if check_ns:
            self._check_lat.observe(check_ns / 1e9)
        if decision.approved:
            self.triggers.on_order_approved()
        else:
            reason = RejectReason(decision.reason)
            self.triggers.on_risk_reject(reason)
            oplog.order_line(
                OpsEvent.RISK_REJECT,
                symbol=intent.symbol,
                side=intent.side,
                qty=intent.qty,
                price=intent.limit_px,
                client_order_id="",  # none yet: a rejected intent never becomes an order
                strategy=intent.strategy,
                reason=reason.value,
                detail=decision.detail,
                intent_id=intent.intent_id,
            )
        self._record(decision)

    def _staleness(self, intent: wire.OrderIntent, now: int) -> str:
        """Why the intent is too old to act on ("" if it is not): its own deadline, and never more
        than ``risk.intent_max_age_ms`` after the signal, whatever deadline it claims."""
        if not intent.deadline_ns and not intent.signal_ns:
            return "intent has neither signal_ns nor deadline_ns: its age is unknown"
        if intent.deadline_ns and now > intent.deadline_ns:
            return f"deadline passed {(now - intent.deadline_ns) / 1e6:.3f} ms ago"
        if intent.signal_ns:
            age = now - intent.signal_ns
            if age > self._max_age_ns:
                return f"signalled {age / 1e6:.3f} ms ago, max age {self._max_age_ns / 1e6:.0f} ms"
            if -age > self._max_age_ns:
                return f"signal_ns is {-age / 1e6:.3f} ms in the future"
        return ""

    def _reject(self, intent: wire.OrderIntent, reason: RejectReason, detail: str) -> wire.RiskDecision:
        return wire.RiskDecision(
            intent_id=intent.intent_id,
            approved=False,
            reason=reason.value,
            detail=detail,
            client_order_id="",
            risk_ns=wall_ns(),
        )

    def _record(self, decision: wire.RiskDecision) -> None:
        DECISIONS.labels(decision.reason).inc()
        self.pub.publish(topics.RK_DECISION, [decision])

    def _on_ack(self, coid: str, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if isinstance(exc, RpcTimeout):
            # Execution may have queued it: keep the quantity pending until its order events settle it.
            log.warning("execution did not ack in time", extra=kv(client_order_id=coid))
            return
        if exc is not None:
            # Only an explicit refusal proves execution did not queue the order: keep it pending
            # until its order events settle it.
            log.warning("execution's answer was unreadable", extra=kv(client_order_id=coid, error=str(exc)))
            return
        ack = fut.result()
        if not isinstance(ack, wire.OrderAck) or not ack.accepted:
            detail = ack.detail if isinstance(ack, wire.OrderAck | wire.Reply) else type(ack).__name__
            log.warning("execution refused order", extra=kv(client_order_id=coid, detail=detail))
            self.risk.release(coid)

    # ---- inputs -----------------------------------------------------------------------------

    def _on_account(self, topic: bytes, msgs: list[Any]) -> None:
        for m in msgs:
            if isinstance(m, wire.Account) and m.ts_ns >= self._account_ts_ns:
                self._account_ts_ns = m.ts_ns
                self.account = m
                self.risk.set_buying_power(max(m.buying_power, 0))

    def _expire_account(self, now_ns: int) -> None:
        """A buying power nobody refreshed for a while is not known any more (the check skips it)."""
        if self._account_ts_ns and now_ns - self._account_ts_ns > ACCOUNT_MAX_AGE_NS:
            self._account_ts_ns = 0
            self.account = None
            self.risk.set_buying_power(None)
            log.warning("venue account not refreshed: buying-power check off until it is")

    def _on_market_data(self, topic: bytes, msgs: list[Any]) -> None:
        self.risk.on_quotes(msgs)
        self.triggers.on_quote()

    def _on_execution_heartbeat(self, topic: bytes, msgs: list[Any]) -> None:
        for m in msgs:
            if isinstance(m, wire.Heartbeat):
                self.triggers.on_execution_heartbeat(m)

    def _on_order_event(self, ev: OrderEvent) -> None:
        if isinstance(ev, wire.OrderUpdate):
            self.risk.on_order_update(ev)
            self.triggers.on_order_update(ev)
            return
        pos, reconciled = self.risk.on_fill(ev)
        self.strategy_books.on_fill(ev)
        if reconciled:
            RECONCILED.labels(ev.symbol).inc()
            log.warning(
                "position adopted from venue", extra=kv(symbol=ev.symbol, seq=ev.seq, qty=to_str(pos.qty))
            )
        self._publish_position(ev.symbol)

    def _publish_position(self, symbol: str) -> None:
        pos = self.risk.positions.get(symbol)
        self.pub.publish(topics.sym(topics.RK_POSITION, symbol), [pos.to_wire(wall_ns())])

    def _on_snapshot(self, snap: wire.PositionsSnapshot) -> None:
        """Execution's state as of ``snap.as_of_seq``: the receiver delivers the events after it."""
        total_before = self.risk.total_pnl
        self.risk.set_positions(snap.positions)
        self.risk.clear_pending()
        for order in snap.open_orders:
            self.risk.on_order_update(order)
        self.strategy_books.load(snap.strategies)
        if self.trading_day.day is not None:
            # execution restarted: a new book's P&L starts over, the day's does not
            self.trading_day.rebase(total_before, self.risk.total_pnl, snap.book)
        for p in snap.positions:
            self._publish_position(p.symbol)
        self.positions_loaded = True
        if self.trading_day.day is None:
            self.trading_day.begin(wall_ns(), self.risk.total_pnl, self.risk.realized_pnl, snap.book)
        self.risk.set_day_baseline(self.trading_day.baseline)
        log.info(
            "execution's snapshot applied",
            extra=kv(
                symbols=len(snap.positions), open_orders=len(snap.open_orders), as_of_seq=snap.as_of_seq
            ),
        )

    # ---- reporting --------------------------------------------------------------------------

    def is_ready(self) -> bool:
        return self.trading_ready

    def quote_exch_ns(self, symbol: str) -> int | None:
        """Exchange time of the quote the check holds for ``symbol`` (None: none). Read by scrapes."""
        i = self.risk.index.get(symbol)
        return None if i is None else int(self.risk.state[i, checks.QUOTE_NS])

    def mid(self, symbol: str) -> Fraction | None:
        """The exact mid of the quote the check holds for ``symbol`` (price nanos), None: no quote."""
        i = self.risk.index.get(symbol)
        if i is None:
            return None
        bid, ask = int(self.risk.state[i, checks.BID]), int(self.risk.state[i, checks.ASK])
        return Fraction(bid + ask, 2) if bid > 0 and ask > 0 else None

    def book_figures(self) -> BookFigures:
        cash = self.account.cash if self.account is not None else None
        return book_figures(
            self.risk.positions, self.strategy_books.books, self.mid, self._symbol_labels, cash
        )

    def refresh_metrics(self) -> None:
        venue_equity = self.account.equity if self.account is not None else None
        self._book_gauges.show(self.book_figures(), venue_equity)
        DAY_PNL.set(to_float(self.risk.day_pnl) if self.trading_day.day is not None else 0.0)

    def _exposure(self) -> Exposure:
        holding = bool(self.risk.pending) or any(p.qty for p in self.risk.positions.all())
        return Exposure(pnl=self.risk.day_pnl if self.trading_ready else None, holding=holding)

    def heartbeat_state(self) -> str:
        """The trading state, or ``not_ready`` while risk rejects everything for lack of positions."""
        return self.trading.state.value if self.trading_ready else "not_ready"

    def state_reason(self) -> str:
        if self.trading_ready:
            return ""
        return "waiting for execution's snapshot"

    def status(self) -> dict[str, Any]:
        return {
            "trading_state": self.trading.state.value,
            "trading_state_record": {
                "seq": self.trading.record.seq,
                "source": self.trading.record.source.value,
                "who": self.trading.record.who,
                "reason": self.trading.record.reason,
                "ts_ns": self.trading.record.ts_ns,
            },
            "trading_day": self.trading_day.status(self.risk.total_pnl),
            "positions_loaded": self.positions_loaded,
            "trading_ready": self.trading_ready,
            "positions_as_of_seq": self._events.snapshot_seq if self._events else 0,
            "positions": {
                p.symbol: {
                    "qty": to_str(p.qty),
                    "avg_px": to_str(p.avg_px),
                    "realized_pnl": to_str(p.realized_pnl),
                }
                for p in self.risk.positions.all()
            },
            "pending": {
                s: {side: to_str(q) for side, q in v.items()}
                for s, v in self.risk.pending_by_symbol().items()
            },
            "open_orders": len(self.risk.pending),
            "symbols": {
                "tracked": len(self.risk.index),
                "unconfigured": self.risk.other_symbols,
                "max_unconfigured": self.risk.max_other_symbols,
                "quotes_refused": self.risk.refused_quotes,
            },
            "decisions": dict(self.decisions),
            "buying_power": to_str(bp) if (bp := self.risk.buying_power) is not None else None,
            "last_event_seq": self._events.last_seq if self._events else 0,
            "triggers": self.triggers.status(self._exposure()),
        }


SERVICE_CLASS = RiskService
