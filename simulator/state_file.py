"""The venue's state on disk (``sim.state_file`` / ``--state-file``): a restarted venue continues.

What is kept: every order (open and closed, legs, replace links), the resting books in arrival
order, the orders queued for the next session, positions, cash, the account configuration, the
session flag and the id counters (order seq, event_id). What is not: market state (touches come
from the market again, seeded before the ready line), the request log, armed faults and
rejections, stream connections. Delayed steps in flight (acks, cancels, replaces with
``ack_delay_ms``) are scheduled again on load, each a full delay from the restart.

Writing: the exchange bumps ``state_version`` on every change; a flusher checks it every
``state_flush_ms`` and, when it moved, serializes the whole state on the loop (orjson; closed
simple orders are serialized once and cached, see bench/venue_state_file.py) and writes
it in a thread: temp file, fsync, ``os.replace`` (atomic: a reader sees the old or the new file,
never a torn one). A SIGKILL therefore loses at most the changes of the last ``state_flush_ms``
(plus a write in progress); SIGTERM writes a last snapshot. Without a state file a venue starts
empty: same account, but no orders, and every order id it hands out is a new UUID.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from common.log import kv
from simulator.accounts import Position
from simulator.exchange import Exchange, VenueState
from simulator.metrics import STATE_WRITES
from simulator.orders import SimOrder

log = logging.getLogger("simulator.state_file")

FORMAT = 1
_LINKS = ("legs", "parent")
_DECIMALS = frozenset(
    f.name for f in dataclasses.fields(SimOrder) if "Decimal" in str(f.type) and f.name not in _LINKS
)
_PLAIN = tuple(f.name for f in dataclasses.fields(SimOrder) if f.name not in _LINKS)


class StateFileError(Exception):
    """The state file exists but cannot be used: the venue refuses to start rather than reset."""


def _order_doc(order: SimOrder) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for name in _PLAIN:
        value = getattr(order, name)
        doc[name] = str(value) if isinstance(value, Decimal) else value
    doc["parent"] = order.parent.id if order.parent is not None else None
    doc["legs"] = [leg.id for leg in order.legs]
    return doc


def _order_from(doc: dict[str, Any]) -> SimOrder:
    kwargs = {}
    for name in _PLAIN:
        value = doc[name]
        kwargs[name] = Decimal(value) if name in _DECIMALS and value is not None else value
    return SimOrder(**kwargs)


def _orders_json(state: VenueState, cache: dict[str, orjson.Fragment] | None) -> list[Any]:
    """Closed simple orders never change again: their JSON is kept in ``cache`` (pruned to the
    orders still on the books, e.g. after a /sim/account/reset)."""
    if cache is None:
        return [_order_doc(o) for o in state.orders]
    kept: dict[str, orjson.Fragment] = {}
    out: list[Any] = []
    for order in state.orders:
        oid = order.id
        frag = cache.get(oid)
        if frag is None:
            if not (order.terminal and order.parent is None and not order.legs):
                out.append(_order_doc(order))
                continue
            frag = orjson.Fragment(orjson.dumps(_order_doc(order)))
        kept[oid] = frag
        out.append(frag)
    cache.clear()
    cache.update(kept)
    return out


def snapshot(ex: Exchange, cache: dict[str, orjson.Fragment] | None = None) -> bytes:
    acct = ex.account
    state = ex.venue_state()
    return orjson.dumps(
        {
            "format": FORMAT,
            "seq": state.seq,
            "event_seq": state.event_seq,
            "session_open": state.session_open,
            "account": {
                "starting_cash": str(acct.starting_cash),
                "cash": str(acct.cash),
                "positions": {s: [str(p.qty), str(p.cost_basis)] for s, p in acct.positions.items()},
            },
            "account_config": ex.account_config,
            "orders": _orders_json(state, cache),
            "resting": {s: [o.id for o in book] for s, book in state.resting.items()},
            "queued": [o.id for o in state.queued],
        }
    )


def restore(ex: Exchange, raw: bytes) -> int:
    """Replace the exchange's account and orders with those of ``raw``; returns the order count.
    Must run on the exchange's loop (delayed steps are scheduled again)."""
    try:
        doc = orjson.loads(raw)
        if doc.get("format") != FORMAT:
            raise StateFileError(f"unknown state file format {doc.get('format')!r}")
        orders = {d["id"]: (_order_from(d), d) for d in doc["orders"]}
        for order, d in orders.values():
            order.parent = orders[d["parent"]][0] if d["parent"] else None
            order.legs = [orders[i][0] for i in d["legs"]]
        positions = {}
        for symbol, (qty, basis) in doc["account"]["positions"].items():
            positions[symbol] = Position(ex.asset(symbol), Decimal(qty), Decimal(basis))
        resting = {s: [orders[i][0] for i in ids] for s, ids in doc["resting"].items()}
        queued = [orders[i][0] for i in doc["queued"]]
        cash = Decimal(doc["account"]["cash"])
        ex.reset(Decimal(doc["account"]["starting_cash"]))
    except StateFileError:
        raise
    except Exception as exc:  # malformed JSON, missing keys, unknown symbols, bad numbers
        raise StateFileError(f"state file is not usable: {type(exc).__name__}: {exc}") from None
    ex.account.cash = cash
    ex.account.positions = positions
    ex.account_config.update(doc["account_config"])
    ex.load_venue_state(
        VenueState(
            orders=[order for order, _ in orders.values()],
            resting=resting,
            queued=queued,
            seq=int(doc["seq"]),
            event_seq=int(doc["event_seq"]),
            session_open=bool(doc["session_open"]),
        )
    )
    return len(orders)


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class StateFile:
    """Loads the state at start, writes it when it changed (at most every ``flush_s``)."""

    def __init__(self, path: Path, exchange: Exchange, flush_s: float) -> None:
        self.path = path
        self.ex = exchange
        self.flush_s = flush_s
        self.writes = 0
        self._written = -1
        self._cache: dict[str, orjson.Fragment] = {}
        self._task: asyncio.Task[None] | None = None

    def load(self) -> int:
        """Restore the saved state if the file exists; returns the orders restored (0 if none)."""
        if not self.path.exists():
            log.info("no venue state file yet: starting empty", extra=kv(path=str(self.path)))
            self._written = -1
            return 0
        count = restore(self.ex, self.path.read_bytes())
        self._written = self.ex.state_version
        log.info("venue state restored", extra=kv(path=str(self.path), orders=count))
        return count

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.flush()

    def flush(self) -> bool:
        """Write now if anything changed since the last write (on the caller's thread)."""
        version = self.ex.state_version
        if version == self._written:
            return False
        write_atomic(self.path, snapshot(self.ex, self._cache))
        STATE_WRITES.labels("ok").inc()
        self._written = version
        self.writes += 1
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            version = self.ex.state_version
            if version == self._written:
                continue
            data = snapshot(self.ex, self._cache)
            try:
                await asyncio.to_thread(write_atomic, self.path, data)
            except OSError as exc:
                STATE_WRITES.labels("error").inc()
                log.error("venue state not written", extra=kv(path=str(self.path), error=str(exc)))
                continue
            STATE_WRITES.labels("ok").inc()
            self._written = version
            self.writes += 1
