"""The simulated venue: orders in, fills and trade_updates events out, one account.

``Exchange`` is the facade rest.py, feed.py, control.py, state_file.py and the tests use. It owns
the account, its configuration and the request log, and composes parts that each own their state
and talk to each other only through public methods:
    simulator/exchange_events.py     OrderEvents: listeners, held events, event ids, state version
    simulator/exchange_book.py       OrderBook: orders, market state (touches, last trades, session
                                     flag), matching of resting and triggered orders, bracket / oco /
                                     oto groups; reports every change to the events
    simulator/exchange_lifecycle.py  Lifecycle: session open/close, acknowledgement delays, pending_*
                                     steps, asynchronous rejections, cancel / replace (uses the book
                                     and the events)
    simulator/exchange_checks.py     PreTradeChecks: order shape, pricing, buying power, shorting
                                     (reads the account, its configuration and the book)
    simulator/accounts.py            Account: cash and positions
    simulator/exchange_account.py    the account document (equity, market values) and its defaults
Each module's docstring describes its part of the model. Every fill is at the touch price, never
better or worse; rejections are synchronous (HTTP 4xx, no order created) unless armed as
asynchronous (``arm_rejections``).

All money and quantities are Decimal; the only rounding is that of notional fills (down to 1e-9,
see simulator/exchange_book.py) and of pro-rata cost basis (simulator/accounts.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from common.config import SimConfig
from simulator import errors
from simulator.accounts import Account
from simulator.exchange_account import DEFAULT_ACCOUNT_CONFIG, account_json
from simulator.exchange_assets import Asset, AssetBook
from simulator.exchange_book import HUNDRED, OrderBook, Touch
from simulator.exchange_checks import PreTradeChecks
from simulator.exchange_events import EventListener, OrderEvents
from simulator.exchange_lifecycle import Lifecycle, Scheduler, loop_schedule
from simulator.models import AccountConfigPatch, OrderBody, ReplaceBody
from simulator.orders import NANO, SimOrder

__all__ = ["DEFAULT_ACCOUNT_CONFIG", "EventListener", "Exchange", "Scheduler", "Touch", "VenueState"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


@dataclass(slots=True)
class VenueState:
    """The venue's orders and counters as the state file keeps them (the account aside)."""

    orders: Collection[SimOrder]  # every order, in creation order
    resting: Mapping[str, list[SimOrder]]  # per symbol, in arrival order
    queued: list[SimOrder]  # accepted while the session is closed, in arrival order
    seq: int  # of the last order created
    event_seq: int  # event_id of the last event
    session_open: bool


class Exchange:
    def __init__(
        self, cfg: SimConfig, now_ns: Callable[[], int] = time.time_ns, schedule: Scheduler | None = None
    ) -> None:
        """``schedule`` runs the delayed steps (acks, async rejections); default: the running loop."""
        self.cfg = cfg
        self.now_ns = now_ns
        self.assets = AssetBook([*cfg.stocks, *cfg.quiet_stocks], cfg.crypto)
        self.account = Account(cfg.starting_cash)
        self.account_config = dict(DEFAULT_ACCOUNT_CONFIG)
        self._log: list[dict[str, Any]] = []
        self._events = OrderEvents(now_ns)
        self._book = OrderBook(now_ns, self.assets, self.account, self._events)
        self._lifecycle = Lifecycle(
            cfg.ack_delay_ms, now_ns, self._book, self._events, schedule or loop_schedule
        )
        self._checks = PreTradeChecks(self.account, self.account_config, self.assets, self._book)
        self.reset()

    # ---- state and request log -----------------------------------------------------------

    def reset(self, cash: Decimal | None = None) -> None:
        """Flat account with fresh cash, no orders, no used client_order_ids, empty request log.
        Market state (touches, last trades) and the venue's session and armed rejections are kept;
        delayed steps of the old orders are dropped."""
        self.account.reset(self.cfg.starting_cash if cash is None else cash)
        self.account_config.clear()
        self.account_config.update(DEFAULT_ACCOUNT_CONFIG)
        self._book.reset()
        self._lifecycle.reset()
        self._log.clear()
        self._events.changed()

    @property
    def state_version(self) -> int:
        """Moves on every change of the venue's state (the state file writes when it moved)."""
        return self._events.version

    def venue_state(self) -> VenueState:
        """Live views of the orders and counters, for the state file (valid until the next change)."""
        book = self._book
        return VenueState(
            book.orders(),
            book.resting(),
            self._lifecycle.queued(),
            book.seq,
            self._events.seq,
            book.session_open,
        )

    def load_venue_state(self, state: VenueState) -> None:
        """Take over restored orders (after ``reset``); requests in flight get their delay again."""
        self._book.load(list(state.orders), dict(state.resting), state.seq)
        self._book.set_session_open(state.session_open)
        self._events.restore_seq(state.event_seq)
        self._lifecycle.load(list(state.queued))

    def record_request(self, entry: dict[str, Any]) -> None:
        self._log.append(entry)

    def order_log(self) -> list[dict[str, Any]]:
        return list(self._log)

    # ---- trade_updates events ------------------------------------------------------------

    def add_listener(self, listener: EventListener) -> None:
        """``listener(data)`` gets the ``data`` object of every trade_updates event, in order."""
        self._events.add_listener(listener)

    def remove_listener(self, listener: EventListener) -> None:
        self._events.remove_listener(listener)

    def hold_events(self) -> None:
        """Queue events instead of dispatching them, until ``release_events``."""
        self._events.hold()

    def release_events(self) -> None:
        self._events.release()

    def accepted_view(self, order: SimOrder) -> dict[str, Any]:
        """The order as acknowledged during the current hold (else as it is now)."""
        return self._events.accepted_view(order)

    # ---- market data in ------------------------------------------------------------------

    def on_quote(
        self, symbol: str, bid_px: Decimal, bid_sz: Decimal, ask_px: Decimal, ask_sz: Decimal, ts_ns: int
    ) -> None:
        self._book.on_quote(symbol, bid_px, bid_sz, ask_px, ask_sz, ts_ns)

    def on_trade(self, symbol: str, px: Decimal, sz: Decimal, ts_ns: int) -> None:
        self._book.on_trade(symbol, px, sz, ts_ns)

    def touch(self, symbol: str) -> Touch | None:
        return self._book.touch(symbol)

    def mark(self, symbol: str) -> Decimal | None:
        return self._book.mark(symbol)

    # ---- session, delays and injected rejections -----------------------------------------

    @property
    def session_open(self) -> bool:
        return self._book.session_open

    def close_session(self) -> list[SimOrder]:
        """End the trading day: expire every open day order; returns them (none if already closed)."""
        return self._lifecycle.close_session()

    def open_session(self) -> list[SimOrder]:
        """Start a trading day: resting stock orders match again, then queued orders go live."""
        return self._lifecycle.open_session()

    def arm_rejections(self, count: int, reason: str) -> None:
        """The next ``count`` accepted submissions are rejected asynchronously (0 disarms)."""
        self._lifecycle.arm_rejections(count, reason)

    @property
    def rejections_armed(self) -> int:
        return self._lifecycle.rejections_armed

    @property
    def scheduler(self) -> Scheduler:
        """Runs the delayed steps; tests may swap it to decide when a delay is over."""
        return self._lifecycle.scheduler

    @scheduler.setter
    def scheduler(self, scheduler: Scheduler) -> None:
        self._lifecycle.scheduler = scheduler

    # ---- queries -------------------------------------------------------------------------

    def asset(self, key: str) -> Asset:
        return self._book.asset(key)

    def get_order(self, order_id: str) -> SimOrder:
        return self._book.get_order(order_id)

    def get_order_by_client_id(self, client_order_id: str) -> SimOrder:
        return self._book.get_order_by_client_id(client_order_id)

    def buying_power(self) -> Decimal:
        return self._checks.buying_power()

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
        for order in self._book.orders():
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

    def account_json(self) -> dict[str, Any]:
        return account_json(self.account, self.account_config, self.mark, self.buying_power(), self.now_ns())

    def patch_config(self, patch: AccountConfigPatch) -> dict[str, Any]:
        for key, value in patch.model_dump(exclude_none=True).items():
            self.account_config[key] = value
        self._events.changed()
        return dict(self.account_config)

    # ---- order entry ---------------------------------------------------------------------

    def submit(self, body: OrderBody, closing: bool = False) -> SimOrder:
        """Validate, place and match at once. ``closing`` = a position close (no BP check)."""
        asset = self._checks.check_order(body, closing)
        order_class = body.order_class or "simple"
        coid = body.client_order_id or str(uuid.uuid4())
        limit_price = body.limit_price
        if order_class == "oco" and limit_price is None and body.take_profit is not None:
            limit_price = body.take_profit.limit_price
        touch = self._book.touch(asset.symbol)
        root = self._book.new_order(
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
                self._book.add_leg(
                    root, "take_profit", exit_side, "limit", body.take_profit.limit_price, None
                )
            if body.stop_loss:
                sl_type = "stop_limit" if body.stop_loss.limit_price else "stop"
                self._book.add_leg(
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
            self._book.add_leg(
                root, "stop_loss", body.side, sl_type, body.stop_loss.limit_price, body.stop_loss.stop_price
            )
        self._lifecycle.admit(root)
        return root

    def cancel(self, order_id: str) -> SimOrder:
        return self._lifecycle.cancel(order_id)

    def cancel_all(self) -> list[dict[str, Any]]:
        return self._lifecycle.cancel_all()

    def replace(self, order_id: str, body: ReplaceBody) -> SimOrder:
        return self._lifecycle.replace(order_id, body)

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
                body = self.accepted_view(order)
                out.append({"symbol": symbol, "status": 200, "order_id": order.id, "body": body})
            except errors.ApiError as exc:
                out.append({"symbol": symbol, "status": exc.status, "body": exc.body()})
        return out
