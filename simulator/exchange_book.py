"""The venue's order book: orders, market state (touches, last trades, session), matching.

Market state
    ``on_quote`` sets the touch of a symbol (bid/ask price and size). The touch sizes are the
    liquidity available to the simulator's own orders until the next quote: every fill takes its
    quantity out of it, so two orders arriving between quotes cannot both take the full size.
    ``on_trade`` records the last trade price (used to trigger stops and as a mark when no quote
    was seen). Nothing else is done per quote unless orders rest on that symbol.

Matching (all fills are at the touch price, never better or worse)
    * market: buy at the ask, sell at the bid, up to the touch size; the rest stays working and
      fills on later quotes (partial fills). A market order (or notional order) for a symbol with
      no quote yet is rejected with 422 (42210000) rather than held; symbols with synthetic data
      get their opening quote before the ready line, so this concerns quiet stocks and replays.
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

Order classes
    bracket / oto: the exit legs are ``held`` and inactive until the entry fills completely. Then
    the take-profit becomes ``new`` (working) and the stop-loss stays ``held`` but watches its stop;
    when it triggers it becomes ``new`` and the take-profit is canceled. A partial take-profit
    fill shrinks the stop-loss to the take-profit's remaining qty; a completed exit cancels the
    other leg; canceling any member cancels the rest of the group. oco: the limit (take-profit)
    order and the stop leg are both working at once, with the same one-cancels-other rules.

Session
    While the stock session is closed (``set_session_open(False)``), stock orders without
    extended_hours do not match; ``match_all`` matches every resting order again at the open.

Every status change is reported through the events sink (simulator/exchange_events.py). The book
owns the orders (by id and client_order_id, the ``seq`` counter), the resting books, the touches,
last trades and the session flag; it never schedules anything (simulator/exchange_lifecycle.py).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Mapping
from decimal import ROUND_DOWN, Decimal

from simulator import errors
from simulator.accounts import Account
from simulator.exchange_assets import Asset, AssetBook
from simulator.exchange_events import OrderEvents
from simulator.orders import NANO, ZERO, SimOrder, quantize9

log = logging.getLogger("simulator.exchange")

HUNDRED = Decimal(100)
PENDING_CHANGE = frozenset({"pending_cancel", "pending_replace"})


class Touch:
    __slots__ = ("ask_avail", "ask_px", "ask_sz", "bid_avail", "bid_px", "bid_sz", "ts_ns")

    def __init__(self) -> None:
        self.bid_px = self.ask_px = self.bid_sz = self.ask_sz = self.bid_avail = self.ask_avail = ZERO
        self.ts_ns = 0

    def mid(self) -> Decimal | None:
        if self.bid_px > 0 and self.ask_px > 0:
            return (self.bid_px + self.ask_px) / 2
        return self.bid_px or self.ask_px or None


class OrderBook:
    """Orders, resting books, touches and the session flag; matches orders and reports changes."""

    def __init__(
        self, now_ns: Callable[[], int], assets: AssetBook, account: Account, events: OrderEvents
    ) -> None:
        self._now_ns = now_ns
        self._assets = assets
        self._account = account
        self._events = events
        self._session_open = True
        self._touch: dict[str, Touch] = {}
        self._last_trade: dict[str, Decimal] = {}
        self._orders: dict[str, SimOrder] = {}
        self._by_coid: dict[str, SimOrder] = {}
        self._resting: dict[str, list[SimOrder]] = {}
        self._seq = 0

    def reset(self) -> None:
        """No orders, no used client_order_ids; touches get their full size back."""
        self._orders = {}
        self._by_coid = {}
        self._resting = {}
        self._seq = 0
        for touch in self._touch.values():
            touch.bid_avail, touch.ask_avail = touch.bid_sz, touch.ask_sz

    # ---- state for the state file --------------------------------------------------------

    @property
    def seq(self) -> int:
        """The ``seq`` of the last order created."""
        return self._seq

    def orders(self) -> Collection[SimOrder]:
        """Every order, open and closed, legs included, in creation order (a live view)."""
        return self._orders.values()

    def resting(self) -> Mapping[str, list[SimOrder]]:
        """The orders working per symbol, in arrival order (a live view: do not change it)."""
        return self._resting

    def load(self, orders: list[SimOrder], resting: dict[str, list[SimOrder]], seq: int) -> None:
        """Take over restored orders and resting books; new orders continue after ``seq``."""
        self._orders = {order.id: order for order in orders}
        self._by_coid = {order.client_order_id: order for order in orders}
        self._resting = resting
        self._seq = seq

    # ---- session -------------------------------------------------------------------------

    @property
    def session_open(self) -> bool:
        return self._session_open

    def set_session_open(self, is_open: bool) -> None:
        self._session_open = is_open

    def trades_now(self, order: SimOrder) -> bool:
        """Stock orders without extended_hours pause while the session is closed."""
        return self._session_open or order.extended_hours or order.asset_class == "crypto"

    def match_all(self) -> None:
        """Match every resting order against its touch (the session opened)."""
        for symbol in list(self._resting):
            if symbol in self._resting:
                self._match_symbol(symbol)

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

    # ---- orders --------------------------------------------------------------------------

    def asset(self, key: str) -> Asset:
        asset = self._assets.find(key)
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

    def find_order(self, order_id: str) -> SimOrder | None:
        return self._orders.get(order_id)

    def get_order_by_client_id(self, client_order_id: str) -> SimOrder:
        order = self._by_coid.get(client_order_id)
        if order is None:
            raise errors.not_found("order not found")
        return order

    def new_order(
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
        """Create and register an order (not yet working: see ``activate``)."""
        if coid in self._by_coid:
            raise errors.validation("client_order_id must be unique")
        self._seq += 1
        now = self._now_ns()
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

    def add_leg(
        self,
        root: SimOrder,
        role: str,
        side: str,
        type_: str,
        limit_price: Decimal | None,
        stop_price: Decimal | None,
    ) -> None:
        """An exit leg of ``root``: ``held`` and inactive until its entry fills."""
        asset = self.asset(root.symbol)
        leg = self.new_order(
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

    # ---- matching ------------------------------------------------------------------------

    def activate(self, order: SimOrder) -> None:
        """The order starts working: it rests on its symbol and is matched at once."""
        order.active = True
        if order.status == "held" and order.role == "take_profit":
            self.set_status(order, "new")
            self._events.emit("new", order)
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
        if not self.trades_now(order):
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
                self.cancel(order)
                return
        if can_qty > 0 and px is not None and touch is not None:
            self._fill(order, can_qty, px, touch)
        if arriving and order.time_in_force == "ioc" and not order.terminal:
            self.cancel(order)

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
            self.set_status(order, "new")
            self._events.emit("new", order)
        if order.role == "stop_loss":
            for member in self._exit_siblings(order):
                self.cancel(member)

    def _fill(self, order: SimOrder, qty: Decimal, px: Decimal, touch: Touch) -> None:
        if order.side == "buy":
            touch.ask_avail -= qty
        else:
            touch.bid_avail -= qty
        order.filled_qty += qty
        order.filled_notional += qty * px
        asset = self.asset(order.symbol)
        position = self._account.apply_fill(asset, order.side, qty, px)
        if order.notional is not None:
            left = ((order.notional - order.filled_notional) / px).quantize(NANO, rounding=ROUND_DOWN)
            done = left <= 0
        else:
            done = order.filled_qty >= (order.qty or ZERO)
        now = self._now_ns()
        if done:
            order.filled_ns = now
            self.withdraw(order)
            self.set_status(order, "filled")
        elif order.status in PENDING_CHANGE:  # the cancel / replace is still in flight
            order.updated_ns = now
        else:
            self.set_status(order, "partially_filled")
        self._events.emit("fill" if done else "partial_fill", order, qty, px, position)
        log.debug("fill %s %s %s @ %s", order.symbol, order.side, qty, px)
        if done and order.parent is None and order.order_class in ("bracket", "oto"):
            for leg in order.legs:
                if not leg.terminal:
                    self.activate(leg)
        if order.role is not None:
            for member in self._exit_siblings(order):
                if done:
                    self.cancel(member)
                elif order.role == "take_profit" and member.role == "stop_loss" and not member.filled_qty:
                    member.qty = order.remaining_qty
                    member.updated_ns = now

    # ---- groups and status -------------------------------------------------------------------------

    def group(self, order: SimOrder) -> list[SimOrder]:
        """Every other open member of the order's bracket/oco/oto group."""
        root = order.parent or order
        members = [root, *root.legs]
        return [m for m in members if m is not order and not m.terminal]

    def _exit_siblings(self, order: SimOrder) -> list[SimOrder]:
        return [m for m in self.group(order) if m.role is not None]

    def cancel(self, order: SimOrder) -> None:
        """Cancel one order now (no-op if final); its group is the caller's business."""
        if order.terminal:
            return
        self.withdraw(order)
        order.canceled_ns = self._now_ns()
        self.set_status(order, "canceled")
        self._events.emit("canceled", order)

    def withdraw(self, order: SimOrder) -> None:
        """Take the order off its symbol's resting book (it stops matching)."""
        book = self._resting.get(order.symbol)
        if book is not None and order in book:
            book.remove(order)
            if not book:
                del self._resting[order.symbol]

    def set_status(self, order: SimOrder, status: str) -> None:
        order.status = status
        order.updated_ns = self._now_ns()
