"""The simulator's matching engine and account: orders in, fills and trade_updates events out.

Market state
    ``on_quote`` sets the touch of a symbol (bid/ask price and size). The touch sizes are the
    liquidity available to the simulator's own orders until the next quote: every fill takes its
    quantity out of it, so two orders arriving between quotes cannot both take the full size.
    ``on_trade`` records the last trade price (used to trigger stops and as a mark when no quote
    was seen). Nothing else is done per quote unless orders rest on that symbol.

Matching (all fills are at the touch price, never better or worse)
    * market: buy at the ask, sell at the bid, up to the touch size; the rest stays working and
      fills on later quotes (partial fills). A market order (or notional order) for a symbol with
      no quote yet is rejected with 422 (42210000) rather than held.
    * limit: fills at the touch at once if marketable (buy: ask <= limit, sell: bid >= limit),
      else rests and fills when a later touch crosses it; partially when the touch is smaller.
    * stop / stop_limit: triggered when buy: ask >= stop (or a trade >= stop), sell: bid <= stop
      (or a trade <= stop); then they behave as market / limit orders.
    * trailing_stop: ``hwm`` follows the best bid (sells) or the lowest ask (buys) since the order
      became active and ``stop_price`` is derived from it (trail_price or trail_percent); it
      triggers like a stop and then fills as a market order.
    * notional orders (market only) fill qty = remaining notional / price, rounded down to 1e-9.
    * ioc: what fills on arrival (or on trigger) fills, the remainder is canceled (``canceled``
      event). fok: fills in full on arrival or is canceled with no fill.
    * Resting orders are matched in arrival order against each new quote.
    * Rejections are normally synchronous (HTTP 4xx, no order is created). ``arm_rejections(n,
      reason)`` (POST /sim/faults/reject) makes the next n accepted submissions (position closes
      included) answer ``pending_new`` and then fail on the stream: ``pending_new`` event, then
      ``rejected`` (status ``rejected``, ``failed_at`` set, no fill, holds released; the event data
      carries ``reason``, an extension Alpaca does not send) after ``ack_delay_ms``, or on the next
      loop turn when that is 0.

Trading session (``close_session`` / ``open_session``, POST /sim/session/close|open)
    The session is open at start and stays open unless closed by hand: the simulator matches
    around the clock, like Alpaca's 24/7 test feed. Closing it
    * expires every open ``day`` order (status ``expired``, ``expired_at``, ``expired`` event; legs
      of a day bracket too, since they share its time_in_force), which releases their holds;
      extended-hours day orders included: the close models the end of the trading day;
    * pauses stock orders without extended_hours: resting ones (gtc) stay ``new`` but do not
      match until the open. Crypto and extended-hours orders keep trading;
    * queues new stock orders without extended_hours, market orders included, as Alpaca does
      outside market hours: they pass every check, hold buying power, get status ``accepted``
      and an ``accepted`` event, and go live (``new`` event, matched, ioc/fok applied) at the next
      open, after the orders that were already resting. A queued day order is for the next
      session, so it is not expired by a close that happens while it waits (there is none: a
      close while closed does nothing).
    ``opg`` and ``cls`` stay rejected (422) in both states: the simulator runs no opening or
    closing auction. GET /v2/clock reports ``is_open`` and next_open / next_close consistent
    with it (simulator/exchange_calendar.py).

Acknowledgement delay (``SimConfig.ack_delay_ms`` > 0; 0 = every request takes effect at once)
    * submit: the reply and a ``pending_new`` event come at once; after the delay the order is
      acknowledged (``new``, or ``accepted`` while the session is closed) and only then can fill.
    * cancel: ``pending_cancel`` (status, event, ``cancel_requested_at``) at once, ``canceled``
      (with the rest of its group) after the delay. The order keeps working in between, so a
      fill may win the race: a complete fill leaves it ``filled`` and the cancel does nothing; a
      partial fill is reported (``partial_fill``) and the status stays ``pending_cancel``.
    * replace: the PATCH reply is the new order (status ``pending_new``, ``replaces`` set) and the
      old one gets ``pending_replace`` at once; after the delay the old order is ``replaced`` and
      the new one ``new``. The old order keeps working in between: partial fills are reported
      (status stays ``pending_replace``); if it fills completely, expires or is canceled first,
      the new order is ``rejected`` instead. A second cancel or replace of an order with a
      request in flight: cancel is a no-op while a cancel is pending, and 422 while a replace is
      pending (of the old order or of its not-yet-live replacement), as is replace.
    Per order the events therefore run pending_new -> new | accepted -> (partial_fill)* ->
    pending_cancel | pending_replace -> (partial_fill)* -> fill | canceled | replaced | expired;
    or pending_new -> rejected. ``reset`` drops every delayed step still to come.

Order classes
    bracket / oto: the exit legs are ``held`` and inactive until the entry fills completely. Then
    the take-profit becomes ``new`` (working) and the stop-loss stays ``held`` but watches its stop;
    when it triggers it becomes ``new`` and the take-profit is canceled. A partial take-profit
    fill shrinks the stop-loss to the take-profit's remaining qty; a completed exit cancels the
    other leg; canceling any member cancels the rest of the group. oco: the limit (take-profit)
    order and the stop leg are both working at once, with the same one-cancels-other rules.

Replace (PATCH) creates a new order (``replaces`` = old id) and marks the old one ``replaced``;
the new order keeps the original qty unless a qty is given (Alpaca's reported behaviour, even for
partially filled orders). Cancel of an order that is already final is a silent no-op (204), as
Alpaca does in practice.

Accounting (non-margin, multiplier 1, see simulator/accounts.py for positions)
    cash           moves by exactly qty*price per fill (short sales credit cash).
    equity         = cash + sum(qty * mark) over positions (shorts have negative value);
                     mark = quote midpoint, else last trade, else average entry price.
    buying_power   = cash - 2 * |cost basis of short positions| (the short proceeds plus the same
                     amount again as collateral) - holds of open buy orders, floored at 0.
                     A buy order holds remaining qty x (limit price | stop price | ask at entry),
                     a notional buy its remaining notional. Exit legs hold nothing.
    shorting       stocks are shortable (unless account configuration ``no_shorting``), crypto
                     never. Selling more than the unheld long qty: crypto -> 403 insufficient qty;
                     stock with no_shorting -> 403; fractional short -> 422; else the short part
                     (qty beyond the long position) must fit in buying power (403 otherwise).
    fractional     stocks: fractional qty or notional only for simple market day orders (422).
All money and quantities are Decimal; the only rounding is documented above (1e-9).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from common.config import SimConfig
from simulator import errors
from simulator.accounts import Account
from simulator.exchange_assets import Asset, AssetBook
from simulator.metrics import ASYNC_REJECTION, ORDER_EVENTS, REJECTIONS
from simulator.models import AccountConfigPatch, OrderBody, ReplaceBody
from simulator.orders import NANO, ZERO, SimOrder, fmt, quantize9, rfc3339

log = logging.getLogger("simulator.exchange")

EventListener = Callable[[dict[str, Any]], None]
# schedule(delay_s, fn): run fn on the exchange's thread after delay_s seconds
Scheduler = Callable[[float, Callable[[], None]], object]

HUNDRED = Decimal(100)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
REPLACEABLE = frozenset({"new", "partially_filled", "held", "accepted", "pending_new"})
PENDING_CHANGE = frozenset({"pending_cancel", "pending_replace"})
DEFAULT_ACCOUNT_CONFIG: dict[str, Any] = {
    "dtbp_check": "entry",
    "fractional_trading": True,
    "max_margin_multiplier": "1",
    "no_shorting": False,
    "pdt_check": "entry",
    "suspend_trade": False,
    "trade_confirm_email": "all",
    "ptp_no_exception_entry": False,
    "max_options_trading_level": 0,
}


class Touch:
    __slots__ = ("ask_avail", "ask_px", "ask_sz", "bid_avail", "bid_px", "bid_sz", "ts_ns")

    def __init__(self) -> None:
        self.bid_px = self.ask_px = self.bid_sz = self.ask_sz = self.bid_avail = self.ask_avail = ZERO
        self.ts_ns = 0

    def mid(self) -> Decimal | None:
        if self.bid_px > 0 and self.ask_px > 0:
            return (self.bid_px + self.ask_px) / 2
        return self.bid_px or self.ask_px or None


def _is_whole(q: Decimal) -> bool:
    return q == q.to_integral_value()


def _decimals(p: Decimal) -> int:
    exp = p.normalize().as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


def _loop_schedule(delay_s: float, fn: Callable[[], None]) -> object:
    return asyncio.get_running_loop().call_later(delay_s, fn)


class Exchange:
    def __init__(
        self, cfg: SimConfig, now_ns: Callable[[], int] = time.time_ns, schedule: Scheduler | None = None
    ) -> None:
        """``schedule`` runs the delayed steps (acks, async rejections); default: the running loop."""
        self.cfg = cfg
        self.now_ns = now_ns
        self.scheduler: Scheduler = schedule or _loop_schedule
        self.session_open = True
        self._reject_left = 0
        self._reject_reason = ""
        self._epoch = 0
        self.assets = AssetBook([*cfg.stocks, *cfg.quiet_stocks], cfg.crypto)
        self._listeners: list[EventListener] = []
        self._touch: dict[str, Touch] = {}
        self._last_trade: dict[str, Decimal] = {}
        self._event_seq = 0
        self.reset()

    # ---- lifecycle -----------------------------------------------------------------------

    def reset(self, cash: Decimal | None = None) -> None:
        """Flat account with fresh cash, no orders, no used client_order_ids, empty request log.
        Market state (touches, last trades) and the venue's session and armed rejections are kept;
        delayed steps of the old orders are dropped."""
        self.account = Account(self.cfg.starting_cash if cash is None else cash)
        self.account_config: dict[str, Any] = dict(DEFAULT_ACCOUNT_CONFIG)
        self._orders: dict[str, SimOrder] = {}
        self._by_coid: dict[str, SimOrder] = {}
        self._resting: dict[str, list[SimOrder]] = {}
        self._queued: list[SimOrder] = []  # accepted while the session is closed, in arrival order
        self._seq = 0
        self._epoch += 1
        self._log: list[dict[str, Any]] = []
        for touch in self._touch.values():
            touch.bid_avail, touch.ask_avail = touch.bid_sz, touch.ask_sz

    def add_listener(self, listener: EventListener) -> None:
        """``listener(data)`` gets the ``data`` object of every trade_updates event, in order."""
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def record_request(self, entry: dict[str, Any]) -> None:
        self._log.append(entry)

    def order_log(self) -> list[dict[str, Any]]:
        return list(self._log)

    # ---- session and injected rejections -------------------------------------------------

    def close_session(self) -> list[SimOrder]:
        """End the trading day: expire every open day order; returns them (none if already closed)."""
        if not self.session_open:
            return []
        self.session_open = False
        now = self.now_ns()
        expired = []
        for order in list(self._orders.values()):
            # a replacement still waiting for its swap is decided at the swap (queued for the next day)
            if order.terminal or order.time_in_force != "day" or order.swap_pending:
                continue
            self._unrest(order)
            order.expired_ns = now
            self._set_status(order, "expired")
            self._emit("expired", order)
            expired.append(order)
        return expired

    def open_session(self) -> list[SimOrder]:
        """Start a trading day: resting stock orders match again, then queued orders go live."""
        if self.session_open:
            return []
        self.session_open = True
        for symbol in list(self._resting):
            if symbol in self._resting:
                self._match_symbol(symbol)
        queued, self._queued = self._queued, []
        released = []
        for order in queued:
            if order.status == "accepted":  # not canceled, replaced or pending a change meanwhile
                self._go_live(order)
                released.append(order)
        return released

    def arm_rejections(self, count: int, reason: str) -> None:
        """The next ``count`` accepted submissions are rejected asynchronously (0 disarms)."""
        self._reject_left, self._reject_reason = count, reason

    @property
    def rejections_armed(self) -> int:
        return self._reject_left

    # ---- market data in ------------------------------------------------------------------

    def on_quote(
        self, symbol: str, bid_px: Decimal, bid_sz: Decimal, ask_px: Decimal, ask_sz: Decimal, ts_ns: int
    ) -> None:
        touch = self._touch.get(symbol)
        if touch is None:
            touch = self._touch[symbol] = Touch()
        touch.bid_px, touch.bid_sz, touch.bid_avail = bid_px, bid_sz, bid_sz
        touch.ask_px, touch.ask_sz, touch.ask_avail = ask_px, ask_sz, ask_sz
        touch.ts_ns = ts_ns
        if symbol in self._resting:
            self._match_symbol(symbol)

    def on_trade(self, symbol: str, px: Decimal, sz: Decimal, ts_ns: int) -> None:
        self._last_trade[symbol] = px
        if symbol in self._resting:
            self._match_symbol(symbol)

    def touch(self, symbol: str) -> Touch | None:
        return self._touch.get(symbol)

    def mark(self, symbol: str) -> Decimal | None:
        touch = self._touch.get(symbol)
        mid = touch.mid() if touch else None
        return mid if mid is not None else self._last_trade.get(symbol)

    # ---- queries -------------------------------------------------------------------------

    def asset(self, key: str) -> Asset:
        asset = self.assets.find(key)
        if asset is None:
            raise errors.not_found(f"asset not found for {key}")
        return asset

    def get_order(self, order_id: str) -> SimOrder:
        try:
            uuid.UUID(order_id)
        except ValueError:
            raise errors.validation("order_id is missing") from None
        order = self._orders.get(order_id)
        if order is None:
            raise errors.not_found("order not found")
        return order

    def get_order_by_client_id(self, client_order_id: str) -> SimOrder:
        order = self._by_coid.get(client_order_id)
        if order is None:
            raise errors.not_found("order not found")
        return order

    def list_orders(
        self,
        status: str = "open",
        limit: int = 50,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        nested: bool = False,
        side: str | None = None,
        symbols: list[str] | None = None,
        asset_class: str | None = None,
    ) -> list[SimOrder]:
        # Clients send microsecond timestamps (isoformat), so compare at microsecond resolution.
        after_us = (after - _EPOCH) // _MICRO if after else None
        until_us = (until - _EPOCH) // _MICRO if until else None
        wanted = {(a.symbol if (a := self.assets.find(s)) else s) for s in symbols} if symbols else None
        out = []
        for order in self._orders.values():
            if nested and order.parent is not None:
                continue
            if (status == "open" and order.terminal) or (status == "closed" and not order.terminal):
                continue
            if after_us is not None and order.created_ns // 1000 <= after_us:
                continue
            if until_us is not None and order.created_ns // 1000 >= until_us:
                continue
            if side and order.side != side:
                continue
            if wanted is not None and order.symbol not in wanted:
                continue
            if asset_class and order.asset_class != asset_class:
                continue
            out.append(order)
        out.sort(key=lambda o: o.seq, reverse=direction == "desc")
        return out[:limit]

    def positions_json(self) -> list[dict[str, Any]]:
        return [p.to_json(self.mark(sym)) for sym, p in sorted(self.account.positions.items())]

    def position_json(self, key: str) -> dict[str, Any]:
        asset = self.assets.find(key)
        pos = self.account.positions.get(asset.symbol) if asset else None
        if pos is None:
            raise errors.not_found("position does not exist")
        return pos.to_json(self.mark(pos.asset.symbol))

    def buying_power(self) -> Decimal:
        bp = self.account.cash
        for pos in self.account.positions.values():
            if pos.qty < 0:
                bp += 2 * pos.cost_basis  # cost_basis is negative for shorts
        for order in self._orders.values():
            if order.side == "buy" and order.role is None and not order.terminal and not order.swap_pending:
                bp -= self._hold(order)
        return max(bp, ZERO)

    def account_json(self) -> dict[str, Any]:
        acct = self.account
        long_mv = short_mv = ZERO
        for sym, pos in acct.positions.items():
            mark = self.mark(sym)
            value = pos.qty * (mark if mark is not None else pos.avg_entry_price)
            if pos.qty > 0:
                long_mv += value
            else:
                short_mv += value
        equity = acct.cash + long_mv + short_mv
        bp = fmt(self.buying_power())
        created = rfc3339(0)
        return {
            "id": acct.id,
            "account_number": acct.account_number,
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": bp,
            "regt_buying_power": bp,
            "daytrading_buying_power": "0",
            "effective_buying_power": bp,
            "non_marginable_buying_power": bp,
            "options_buying_power": "0",
            "bod_dtbp": "0",
            "cash": fmt(acct.cash),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "pending_transfer_out": "0",
            "portfolio_value": fmt(equity),
            "pattern_day_trader": False,
            "trading_blocked": bool(self.account_config["suspend_trade"]),
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": created,
            "trade_suspended_by_user": bool(self.account_config["suspend_trade"]),
            "multiplier": "1",
            "shorting_enabled": not self.account_config["no_shorting"],
            "equity": fmt(equity),
            "last_equity": fmt(acct.starting_cash),
            "long_market_value": fmt(long_mv),
            "short_market_value": fmt(short_mv),
            "position_market_value": fmt(long_mv - short_mv),
            "initial_margin": fmt(long_mv - short_mv),
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": 0,
            "balance_asof": (rfc3339(self.now_ns()) or "")[:10],
            "crypto_tier": 1,
            "options_approved_level": 0,
            "options_trading_level": 0,
            "intraday_adjustments": "0",
            "pending_reg_taf_fees": "0",
        }

    def patch_config(self, patch: AccountConfigPatch) -> dict[str, Any]:
        for key, value in patch.model_dump(exclude_none=True).items():
            self.account_config[key] = value
        return dict(self.account_config)

    # ---- order entry ---------------------------------------------------------------------

    def submit(self, body: OrderBody, closing: bool = False) -> SimOrder:
        """Validate, place and match at once. ``closing`` = a position close (no BP check)."""
        asset = self._check_order(body, closing)
        order_class = body.order_class or "simple"
        coid = body.client_order_id or str(uuid.uuid4())
        if coid in self._by_coid:
            raise errors.validation("client_order_id must be unique")
        limit_price = body.limit_price
        if order_class == "oco" and limit_price is None and body.take_profit is not None:
            limit_price = body.take_profit.limit_price
        touch = self._touch.get(asset.symbol)
        root = self._new_order(
            asset,
            body.side,
            body.type,
            body.time_in_force,
            body.qty,
            body.notional,
            limit_price,
            body.stop_price,
            body.trail_price,
            body.trail_percent,
            body.extended_hours,
            order_class,
            coid,
        )
        if touch is not None and body.side == "buy":
            root.hold_px = touch.ask_px or None
        exit_side = "sell" if body.side == "buy" else "buy"
        if order_class in ("bracket", "oto"):
            if body.take_profit:
                self._add_leg(root, "take_profit", exit_side, "limit", body.take_profit.limit_price, None)
            if body.stop_loss:
                sl_type = "stop_limit" if body.stop_loss.limit_price else "stop"
                self._add_leg(
                    root,
                    "stop_loss",
                    exit_side,
                    sl_type,
                    body.stop_loss.limit_price,
                    body.stop_loss.stop_price,
                )
        elif order_class == "oco" and body.stop_loss:
            root.role = "take_profit"
            sl_type = "stop_limit" if body.stop_loss.limit_price else "stop"
            self._add_leg(
                root, "stop_loss", body.side, sl_type, body.stop_loss.limit_price, body.stop_loss.stop_price
            )
        if self._reject_left > 0:
            self._reject_left -= 1
            reason = self._reject_reason
            self._set_status(root, "pending_new")
            self._emit("pending_new", root)
            self._later(lambda: self._reject(root, reason), self._ack_delay_s)
        elif self._ack_delay_s > 0:
            self._set_status(root, "pending_new")
            self._emit("pending_new", root)
            self._later(lambda: self._on_ack(root), self._ack_delay_s)
        else:
            self._acknowledge(root)
        return root

    @property
    def _ack_delay_s(self) -> float:
        return self.cfg.ack_delay_ms / 1000

    def _later(self, step: Callable[[], None], delay_s: float) -> None:
        """Run ``step`` after ``delay_s`` unless the account is reset before."""
        epoch = self._epoch

        def run() -> None:
            if epoch != self._epoch:
                return
            try:
                step()
            except Exception:
                log.exception("delayed order step failed")

        self.scheduler(delay_s, run)

    def _on_ack(self, order: SimOrder) -> None:
        if order.status == "pending_new":  # else canceled, replaced or expired while pending
            self._acknowledge(order)

    def _acknowledge(self, order: SimOrder) -> None:
        """The venue takes the order: live now, or queued as ``accepted`` until the session opens."""
        if not self._trades_now(order):
            self._set_status(order, "accepted")
            self._emit("accepted", order)
            self._queued.append(order)
            return
        self._go_live(order)

    def _go_live(self, order: SimOrder) -> None:
        self._set_status(order, "new")
        self._emit("new", order)
        self._activate(order)
        if order.order_class == "oco":
            for leg in order.legs:
                if not leg.active and not leg.terminal:
                    self._activate(leg)

    def _trades_now(self, order: SimOrder) -> bool:
        return self.session_open or order.extended_hours or order.asset_class == "crypto"

    def _reject(self, order: SimOrder, reason: str) -> None:
        """Reject an accepted order after the fact, with the rest of its group."""
        if order.terminal:
            return
        now = self.now_ns()
        for member in (order, *order.legs):
            if member.terminal:
                continue
            self._unrest(member)
            member.failed_ns = now
            self._set_status(member, "rejected")
            self._emit("rejected", member, reason=reason)
        REJECTIONS.labels(ASYNC_REJECTION).inc()
        log.info("order rejected asynchronously", extra={"fields": {"order_id": order.id, "reason": reason}})

    def _new_order(
        self,
        asset: Asset,
        side: str,
        type_: str,
        tif: str,
        qty: Decimal | None,
        notional: Decimal | None,
        limit_price: Decimal | None,
        stop_price: Decimal | None,
        trail_price: Decimal | None,
        trail_percent: Decimal | None,
        extended_hours: bool,
        order_class: str,
        coid: str,
    ) -> SimOrder:
        self._seq += 1
        now = self.now_ns()
        order = SimOrder(
            id=str(uuid.uuid4()),
            client_order_id=coid,
            symbol=asset.symbol,
            asset_id=asset.id,
            asset_class=asset.asset_class,
            side=side,
            type=type_,
            time_in_force=tif,
            qty=qty,
            notional=notional,
            limit_price=limit_price,
            stop_price=stop_price,
            trail_price=trail_price,
            trail_percent=trail_percent,
            extended_hours=extended_hours,
            order_class=order_class,
            seq=self._seq,
            created_ns=now,
            updated_ns=now,
        )
        self._orders[order.id] = order
        self._by_coid[coid] = order
        return order

    def _add_leg(
        self,
        root: SimOrder,
        role: str,
        side: str,
        type_: str,
        limit_price: Decimal | None,
        stop_price: Decimal | None,
    ) -> None:
        asset = self.asset(root.symbol)
        leg = self._new_order(
            asset,
            side,
            type_,
            root.time_in_force,
            root.qty,
            None,
            limit_price,
            stop_price,
            None,
            None,
            False,
            root.order_class,
            str(uuid.uuid4()),
        )
        leg.parent, leg.role, leg.status, leg.active = root, role, "held", False
        root.legs.append(leg)

    def _check_order(self, body: OrderBody, closing: bool) -> Asset:
        if self.account_config["suspend_trade"]:
            raise errors.forbidden("trading is suspended for this account")
        asset = self.assets.find(body.symbol)
        if asset is None:
            raise errors.unprocessable(f'asset "{body.symbol}" not found')
        tif, typ, cls = body.time_in_force, body.type, body.order_class or "simple"
        if tif in ("opg", "cls"):
            raise errors.unprocessable(f"time_in_force {tif} is not supported by this venue")
        if asset.is_crypto and tif not in ("gtc", "ioc"):
            raise errors.unprocessable("invalid crypto time_in_force")
        self._check_price_fields(body, asset)
        if body.extended_hours and not (typ == "limit" and tif == "day"):
            raise errors.unprocessable("extended hours order must be DAY limit orders")
        if body.notional is not None and (typ != "market" or cls != "simple"):
            raise errors.unprocessable("notional orders must be simple market orders")
        fractional = body.notional is not None or not _is_whole(body.qty or ZERO)
        if fractional and not asset.is_crypto and not (typ == "market" and tif == "day" and cls == "simple"):
            raise errors.unprocessable(
                "fractional orders must be simple market orders with time_in_force day"
            )
        self._check_class(body, asset)
        touch = self._touch.get(asset.symbol)
        if typ == "market" and (touch is None or not (touch.ask_px if body.side == "buy" else touch.bid_px)):
            raise errors.unprocessable(
                f"no quote for {asset.symbol} yet: the simulator cannot price a market order without one"
            )
        self._check_funds(body, asset, touch, closing)
        return asset

    def _check_price_fields(self, body: OrderBody, asset: Asset) -> None:
        typ = body.type
        needs_limit = typ in ("limit", "stop_limit") and body.order_class != "oco"
        if needs_limit and body.limit_price is None:
            raise errors.validation(f"limit_price is required for {typ} orders")
        if typ in ("market", "stop", "trailing_stop") and body.limit_price is not None:
            raise errors.validation(f"limit_price is not allowed for {typ} orders")
        if typ in ("stop", "stop_limit") and body.stop_price is None:
            raise errors.validation(f"stop_price is required for {typ} orders")
        if typ in ("market", "limit", "trailing_stop") and body.stop_price is not None:
            raise errors.validation(f"stop_price is not allowed for {typ} orders")
        trails = (body.trail_price is not None) + (body.trail_percent is not None)
        if typ == "trailing_stop" and trails != 1:
            raise errors.validation("trailing_stop orders need exactly one of trail_price or trail_percent")
        if typ != "trailing_stop" and trails:
            raise errors.validation(f"trail_price / trail_percent are not allowed for {typ} orders")
        if body.trail_percent is not None and body.trail_percent >= HUNDRED:
            raise errors.validation("trail_percent must be below 100")
        if not asset.is_crypto:
            prices = [("limit_price", body.limit_price), ("stop_price", body.stop_price)]
            if body.take_profit:
                prices.append(("take_profit.limit_price", body.take_profit.limit_price))
            if body.stop_loss:
                prices += [
                    ("stop_loss.stop_price", body.stop_loss.stop_price),
                    ("stop_loss.limit_price", body.stop_loss.limit_price),
                ]
            for name, px in prices:
                if px is not None and _decimals(px) > (2 if px >= 1 else 4):
                    raise errors.unprocessable(
                        f"invalid {name} {fmt(px)}. sub-penny increment does not fulfill minimum pricing criteria"
                    )

    def _check_class(self, body: OrderBody, asset: Asset) -> None:
        cls = body.order_class or "simple"
        if cls == "simple":
            return
        if asset.is_crypto:
            raise errors.unprocessable(f"{cls} orders are not supported for crypto")
        tp, sl = body.take_profit, body.stop_loss
        if cls in ("bracket", "oco") and (tp is None or sl is None):
            raise errors.unprocessable(f"{cls} orders require take_profit and stop_loss")
        if cls == "oto" and tp is None and sl is None:
            raise errors.unprocessable("oto orders require take_profit or stop_loss")
        if cls == "oco" and body.type != "limit":
            raise errors.unprocessable("oco orders must be limit orders")
        if cls in ("bracket", "oto") and body.type not in ("market", "limit"):
            raise errors.unprocessable(f"{cls} orders must be entry orders (market or limit)")
        if body.time_in_force not in ("day", "gtc"):
            raise errors.unprocessable(f"{cls} orders must be day or gtc")
        if body.extended_hours:
            raise errors.unprocessable(f"{cls} orders cannot be extended hours")
        if tp is not None and sl is not None:
            exit_is_sell = body.side == "buy" if cls != "oco" else body.side == "sell"
            ok = tp.limit_price > sl.stop_price if exit_is_sell else tp.limit_price < sl.stop_price
            if not ok:
                raise errors.unprocessable(
                    "take_profit.limit_price must be "
                    + ("above" if exit_is_sell else "below")
                    + " stop_loss.stop_price"
                )

    def _check_funds(self, body: OrderBody, asset: Asset, touch: Touch | None, closing: bool) -> None:
        side = body.side
        ref = body.limit_price or body.stop_price
        if ref is None and touch is not None:
            ref = touch.ask_px if side == "buy" else touch.bid_px
        qty = body.qty
        if qty is None and body.notional is not None:
            qty = (body.notional / ref).quantize(NANO, rounding=ROUND_DOWN) if ref else ZERO
        assert qty is not None
        position = self.account.position_qty(asset.symbol)
        if closing:
            held = self._held_for_orders(asset.symbol, side)
            available = abs(position) - held
            if qty > available:
                raise self._insufficient_qty(asset, qty, available, position, held)
            return
        if side == "buy":
            cost = body.notional if body.notional is not None else qty * (ref or ZERO)
            self._check_buying_power(cost)
            return
        is_exit_pair = body.order_class == "oco"
        held = self._held_for_orders(asset.symbol, "sell")
        available = max(position, ZERO) - held
        short_qty = qty - max(available, ZERO)
        if short_qty <= 0 or (is_exit_pair and qty <= max(position, ZERO)):
            return
        if asset.is_crypto or self.account_config["no_shorting"]:
            raise self._insufficient_qty(asset, qty, max(available, ZERO), position, held)
        if not _is_whole(short_qty):
            raise errors.unprocessable("fractional orders cannot be sold short")
        self._check_buying_power(short_qty * (ref or ZERO))

    def _check_buying_power(self, cost: Decimal) -> None:
        bp = self.buying_power()
        if cost > bp:
            raise errors.forbidden("insufficient buying power", buying_power=fmt(bp), cost_basis=fmt(cost))

    def _insufficient_qty(
        self, asset: Asset, qty: Decimal, available: Decimal, position: Decimal, held: Decimal
    ) -> errors.ApiError:
        return errors.forbidden(
            f"insufficient qty available for order (requested: {fmt(qty)}, available: {fmt(available)})",
            available=fmt(available),
            existing_qty=fmt(position),
            held_for_orders=fmt(held),
            related_orders=[
                o.id for o in self._orders.values() if o.symbol == asset.symbol and not o.terminal
            ],
            symbol=asset.symbol,
        )

    def _held_for_orders(self, symbol: str, side: str) -> Decimal:
        """Qty of open entry orders on this side (exit legs are not counted twice)."""
        held = ZERO
        for order in self._orders.values():
            if (
                order.symbol == symbol
                and order.side == side
                and order.parent is None
                and not order.terminal
                and not order.swap_pending
            ):
                held += order.remaining_qty or ZERO
        return held

    def _hold(self, order: SimOrder) -> Decimal:
        if order.notional is not None:
            return max(order.notional - order.filled_notional, ZERO)
        px = order.limit_price or order.stop_price or order.hold_px or ZERO
        return (order.remaining_qty or ZERO) * px

    # ---- cancel / replace ----------------------------------------------------------------

    def cancel(self, order_id: str) -> SimOrder:
        order = self.get_order(order_id)
        if order.terminal or order.cancel_requested_ns is not None:
            return order
        if order.swap_pending or order.status == "pending_replace":
            raise errors.unprocessable("order is pending replace; cancel the replacement once it is live")
        order.cancel_requested_ns = self.now_ns()
        if self._ack_delay_s > 0:
            self._set_status(order, "pending_cancel")
            self._emit("pending_cancel", order)
            self._later(lambda: self._cancel_with_group(order), self._ack_delay_s)
        else:
            self._cancel_with_group(order)
        return order

    def _cancel_with_group(self, order: SimOrder) -> None:
        if order.terminal:  # a fill won the race against a pending cancel
            return
        self._cancel(order)
        for member in self._group(order):
            self._cancel(member)

    def cancel_all(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for order in list(self._orders.values()):
            if order.terminal or order.parent is not None:
                continue
            try:
                self.cancel(order.id)
            except errors.ApiError as exc:
                out.append({"id": order.id, "status": exc.status, "body": exc.body()})
                continue
            out.append({"id": order.id, "status": 200, "body": order.to_json()})
        return out

    def replace(self, order_id: str, body: ReplaceBody) -> SimOrder:
        old = self.get_order(order_id)
        if old.status not in REPLACEABLE or old.swap_pending:
            raise errors.unprocessable("unable to replace order in current state")
        changes: dict[str, Any] = {}
        if body.qty is not None and body.qty != old.qty:
            changes["qty"] = body.qty
        if body.time_in_force is not None and body.time_in_force != old.time_in_force:
            changes["time_in_force"] = body.time_in_force
        if body.limit_price is not None:
            if old.type not in ("limit", "stop_limit"):
                raise errors.validation(f"limit_price is not applicable to {old.type} orders")
            if body.limit_price != old.limit_price:
                changes["limit_price"] = body.limit_price
        if body.stop_price is not None:
            if old.type not in ("stop", "stop_limit"):
                raise errors.validation(f"stop_price is not applicable to {old.type} orders")
            if body.stop_price != old.stop_price:
                changes["stop_price"] = body.stop_price
        if body.trail is not None:
            if old.type != "trailing_stop":
                raise errors.validation("trail is only applicable to trailing_stop orders")
            field = "trail_price" if old.trail_price is not None else "trail_percent"
            if body.trail != getattr(old, field):
                changes[field] = body.trail
        if not changes and body.client_order_id is None:
            raise errors.forbidden("order parameters are not changed")
        coid = body.client_order_id or str(uuid.uuid4())
        if coid in self._by_coid:
            raise errors.validation("client_order_id must be unique")
        new = self._new_order(
            self.asset(old.symbol),
            old.side,
            old.type,
            changes.get("time_in_force", old.time_in_force),
            changes.get("qty", old.qty),
            old.notional,
            changes.get("limit_price", old.limit_price),
            changes.get("stop_price", old.stop_price),
            changes.get("trail_price", old.trail_price),
            changes.get("trail_percent", old.trail_percent),
            old.extended_hours,
            old.order_class,
            coid,
        )
        prior_status = old.status
        if self._ack_delay_s <= 0:
            self._swap(old, new, prior_status)
            return new
        new.replaces, new.swap_pending, new.active = old.id, True, False
        self._set_status(new, "pending_new")
        self._set_status(old, "pending_replace")
        self._emit("pending_replace", old)
        self._later(lambda: self._finish_replace(old, new, prior_status), self._ack_delay_s)
        return new

    def _finish_replace(self, old: SimOrder, new: SimOrder, prior_status: str) -> None:
        if new.terminal:
            return
        new.swap_pending = False
        if old.status != "pending_replace":  # filled, expired or canceled first: too late to replace
            self._reject(new, "order was no longer replaceable")
            return
        self._swap(old, new, prior_status)

    def _swap(self, old: SimOrder, new: SimOrder, prior_status: str) -> None:
        """``new`` takes the place of ``old`` (in its group too); old becomes ``replaced``."""
        new.replaces, new.role, new.parent, new.hold_px = old.id, old.role, old.parent, old.hold_px
        new.legs = old.legs
        for leg in new.legs:
            leg.parent = new
        if old.parent is not None:
            siblings = old.parent.legs
            siblings[siblings.index(old)] = new
        old.legs = []
        self._unrest(old)
        now = self.now_ns()
        old.status, old.replaced_by, old.replaced_ns, old.updated_ns = "replaced", new.id, now, now
        if not old.active:  # a leg waiting for its entry
            new.status, new.active = "held", False
            self._emit("replaced", old)
        elif prior_status == "held" and not old.triggered:  # an armed stop-loss: held until triggered
            new.status, new.active = "held", True
            self._emit("replaced", old)
            self._activate(new)
        else:
            new.active = True
            self._emit("replaced", old)
            self._acknowledge(new)

    # ---- positions -----------------------------------------------------------------------

    def close_position(
        self, key: str, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> SimOrder:
        asset = self.assets.find(key)
        pos = self.account.positions.get(asset.symbol) if asset else None
        if pos is None or asset is None:
            raise errors.not_found("position does not exist")
        if qty is not None and percentage is not None:
            raise errors.validation("only one of qty or percentage may be given")
        if percentage is not None:
            if not 0 < percentage <= HUNDRED:
                raise errors.validation("percentage must be in (0, 100]")
            qty = (abs(pos.qty) * percentage / HUNDRED).quantize(NANO, rounding=ROUND_DOWN)
        if qty is None:
            qty = abs(pos.qty)
        if qty <= 0:
            raise errors.validation("qty to close must be positive")
        body = OrderBody(
            symbol=asset.symbol,
            qty=qty,
            side="sell" if pos.qty > 0 else "buy",
            type="market",
            time_in_force="gtc" if asset.is_crypto else "day",
        )
        return self.submit(body, closing=True)

    def close_all_positions(self, cancel_orders: bool) -> list[dict[str, Any]]:
        if cancel_orders:
            self.cancel_all()
        out: list[dict[str, Any]] = []
        for symbol in sorted(self.account.positions):
            try:
                order = self.close_position(symbol)
                out.append({"symbol": symbol, "status": 200, "order_id": order.id, "body": order.to_json()})
            except errors.ApiError as exc:
                out.append({"symbol": symbol, "status": exc.status, "body": exc.body()})
        return out

    # ---- matching ------------------------------------------------------------------------

    def _activate(self, order: SimOrder) -> None:
        order.active = True
        if order.status == "held" and order.role == "take_profit":
            self._set_status(order, "new")
            self._emit("new", order)
        if order.type == "trailing_stop":
            self._update_trail(order, self._touch.get(order.symbol))
        self._resting.setdefault(order.symbol, []).append(order)
        self._work(order, self._touch.get(order.symbol), arriving=True)

    def _match_symbol(self, symbol: str) -> None:
        touch = self._touch.get(symbol)
        for order in list(self._resting[symbol]):
            if order.active and not order.terminal:
                self._work(order, touch, arriving=False)

    def _work(self, order: SimOrder, touch: Touch | None, arriving: bool) -> None:
        """One matching step of one order against the current touch."""
        if not self._trades_now(order):
            return
        if order.waits_for_trigger():
            if order.type == "trailing_stop":
                self._update_trail(order, touch)
            if not self._stop_reached(order, touch):
                return
            self._on_triggered(order)
            if order.terminal:
                return
            arriving = True  # ioc / fok apply from the moment the stop turns the order live
        can_qty, px = self._fillable(order, touch)
        if arriving and order.time_in_force == "fok":
            want = order.remaining_qty
            if want is None or can_qty < want or can_qty == 0:
                self._cancel(order)
                return
        if can_qty > 0 and px is not None and touch is not None:
            self._fill(order, can_qty, px, touch)
        if arriving and order.time_in_force == "ioc" and not order.terminal:
            self._cancel(order)

    def _fillable(self, order: SimOrder, touch: Touch | None) -> tuple[Decimal, Decimal | None]:
        if touch is None:
            return ZERO, None
        if order.side == "buy":
            px, avail = touch.ask_px, touch.ask_avail
            if order.acts_as_limit() and order.limit_price is not None and px > order.limit_price:
                return ZERO, None
        else:
            px, avail = touch.bid_px, touch.bid_avail
            if order.acts_as_limit() and order.limit_price is not None and px < order.limit_price:
                return ZERO, None
        if px <= 0 or avail <= 0:
            return ZERO, None
        if order.notional is not None:
            want = ((order.notional - order.filled_notional) / px).quantize(NANO, rounding=ROUND_DOWN)
        else:
            want = order.remaining_qty or ZERO
        return min(want, avail), px

    def _stop_reached(self, order: SimOrder, touch: Touch | None) -> bool:
        stop = order.stop_price
        if stop is None:
            return False
        last = self._last_trade.get(order.symbol)
        if order.side == "buy":
            return bool(touch and touch.ask_px > 0 and touch.ask_px >= stop) or (
                last is not None and last >= stop
            )
        return bool(touch and touch.bid_px > 0 and touch.bid_px <= stop) or (
            last is not None and last <= stop
        )

    def _update_trail(self, order: SimOrder, touch: Touch | None) -> None:
        if touch is None:
            return
        ref = touch.bid_px if order.side == "sell" else touch.ask_px
        if ref <= 0:
            return
        if order.hwm is None or (ref > order.hwm if order.side == "sell" else ref < order.hwm):
            order.hwm = ref
        sign = -1 if order.side == "sell" else 1
        if order.trail_price is not None:
            order.stop_price = order.hwm + sign * order.trail_price
        elif order.trail_percent is not None:
            order.stop_price = quantize9(order.hwm * (1 + sign * order.trail_percent / HUNDRED))

    def _on_triggered(self, order: SimOrder) -> None:
        order.triggered = True
        if order.status == "held":
            self._set_status(order, "new")
            self._emit("new", order)
        if order.role == "stop_loss":
            for member in self._exit_siblings(order):
                self._cancel(member)

    def _fill(self, order: SimOrder, qty: Decimal, px: Decimal, touch: Touch) -> None:
        if order.side == "buy":
            touch.ask_avail -= qty
        else:
            touch.bid_avail -= qty
        order.filled_qty += qty
        order.filled_notional += qty * px
        asset = self.asset(order.symbol)
        position = self.account.apply_fill(asset, order.side, qty, px)
        if order.notional is not None:
            left = ((order.notional - order.filled_notional) / px).quantize(NANO, rounding=ROUND_DOWN)
            done = left <= 0
        else:
            done = order.filled_qty >= (order.qty or ZERO)
        now = self.now_ns()
        if done:
            order.filled_ns = now
            self._unrest(order)
            self._set_status(order, "filled")
        elif order.status in PENDING_CHANGE:  # the cancel / replace is still in flight
            order.updated_ns = now
        else:
            self._set_status(order, "partially_filled")
        self._emit("fill" if done else "partial_fill", order, qty, px, position)
        log.debug("fill %s %s %s @ %s", order.symbol, order.side, qty, px)
        if done and order.parent is None and order.order_class in ("bracket", "oto"):
            for leg in order.legs:
                if not leg.terminal:
                    self._activate(leg)
        if order.role is not None:
            for member in self._exit_siblings(order):
                if done:
                    self._cancel(member)
                elif order.role == "take_profit" and member.role == "stop_loss" and not member.filled_qty:
                    member.qty = order.remaining_qty
                    member.updated_ns = now

    # ---- helpers -------------------------------------------------------------------------

    def _group(self, order: SimOrder) -> list[SimOrder]:
        """Every other open member of the order's bracket/oco/oto group."""
        root = order.parent or order
        members = [root, *root.legs]
        return [m for m in members if m is not order and not m.terminal]

    def _exit_siblings(self, order: SimOrder) -> list[SimOrder]:
        return [m for m in self._group(order) if m.role is not None]

    def _cancel(self, order: SimOrder) -> None:
        if order.terminal:
            return
        self._unrest(order)
        order.canceled_ns = self.now_ns()
        self._set_status(order, "canceled")
        self._emit("canceled", order)

    def _unrest(self, order: SimOrder) -> None:
        book = self._resting.get(order.symbol)
        if book is not None and order in book:
            book.remove(order)
            if not book:
                del self._resting[order.symbol]

    def _set_status(self, order: SimOrder, status: str) -> None:
        order.status = status
        order.updated_ns = self.now_ns()

    def _emit(
        self,
        event: str,
        order: SimOrder,
        qty: Decimal | None = None,
        price: Decimal | None = None,
        position: Decimal | None = None,
        reason: str | None = None,
    ) -> None:
        self._event_seq += 1
        ORDER_EVENTS.labels(event).inc()
        if not self._listeners:
            return
        ts = rfc3339(self.now_ns())
        data: dict[str, Any] = {
            "event": event,
            "execution_id": str(uuid.uuid4()),
            "event_id": str(self._event_seq),
            "order": order.to_json(),
            "timestamp": ts,
            "at": ts,
        }
        if qty is not None:
            data["qty"], data["price"], data["position_qty"] = fmt(qty), fmt(price), fmt(position)
        if reason is not None:
            data["reason"] = reason
        for listener in list(self._listeners):
            try:
                listener(data)
            except Exception:
                log.exception("trade update listener failed")
