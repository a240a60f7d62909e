"""The four ledgers of the chaos tests, read each its own way: the venue (alpaca-py and its POST
log), execution (`zerotick ctl execution orders|positions|status`), risk (`zerotick ctl risk
status`) and execution's SQLite journal read directly."""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import requests
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from common import fixed, wire
from common.enums import OrderSide
from services.execution.orders.journal import JOURNAL_FILE, SUBMIT_LOG_SUFFIX, read_submit_log
from tests.kit.system import zerotick

SIM_KEY, SIM_SECRET = "zerotick-sim-key", "zerotick-sim-secret"
PAGE = 500


def client(port: int) -> TradingClient:
    return TradingClient(SIM_KEY, SIM_SECRET, paper=True, url_override=f"http://127.0.0.1:{port}")


def sim_post(port: int, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = requests.post(
        f"http://127.0.0.1:{port}{path}",
        json=body or {},
        headers={"APCA-API-KEY-ID": SIM_KEY, "APCA-API-SECRET-KEY": SIM_SECRET},
        timeout=10,
    )
    assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
    return dict(r.json())


def venue_orders(c: TradingClient) -> list[Any]:
    """Every order the venue holds, oldest first, paged by creation time."""
    out: list[Any] = []
    after = None
    while True:
        page = list(
            c.get_orders(
                GetOrdersRequest(status=QueryOrderStatus.ALL, limit=PAGE, direction="asc", after=after)
            )
        )
        out += page
        if len(page) < PAGE:
            return out
        after = page[-1].created_at


def venue_positions(c: TradingClient) -> dict[str, Decimal]:
    return {p.symbol: Decimal(p.qty) for p in c.get_all_positions() if Decimal(p.qty) != 0}


def order_posts(port: int) -> Counter[str]:
    """How many POST /v2/orders each client_order_id reached the venue with (its request log)."""
    r = requests.get(
        f"http://127.0.0.1:{port}/sim/orders/log",
        headers={"APCA-API-KEY-ID": SIM_KEY, "APCA-API-SECRET-KEY": SIM_SECRET},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return Counter(
        e["client_order_id"]
        for e in r.json()
        if e["method"] == "POST" and e["path"] == "/v2/orders" and e["client_order_id"]
    )


def ctl(config: Path, env: dict[str, str], service: str, cmd: str, *args: str) -> Any:
    out = zerotick("ctl", service, cmd, *args, "--config", str(config), "--timeout-ms", "5000", env=env)
    assert out.returncode == 0, f"ctl {service} {cmd}: {out.stdout}{out.stderr}"
    return orjson.loads(out.stdout)


def nonzero(positions: dict[str, Any]) -> dict[str, Decimal]:
    qty = {s: Decimal(p["qty"]) for s, p in positions.items()}
    return {s: q for s, q in qty.items() if q != 0}


def execution_orders(config: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {o["client_order_id"]: o for o in ctl(config, env, "execution", "orders")}


def execution_positions(config: Path, env: dict[str, str]) -> dict[str, Decimal]:
    return nonzero(ctl(config, env, "execution", "positions")["positions"])


def risk_status(config: Path, env: dict[str, str]) -> dict[str, Any]:
    return dict(ctl(config, env, "risk", "status"))


@dataclass(slots=True)
class JournalView:
    """What the journal file itself says, read with sqlite3 (a reader beside the live writer: WAL)."""

    submitted: set[str] = field(default_factory=set)
    submit_rows: int = 0
    events: int = 0
    fills: list[wire.Fill] = field(default_factory=list)
    base: dict[str, int] = field(default_factory=dict)
    base_seq: int = 0
    statuses: dict[str, list[str]] = field(
        default_factory=dict
    )  # client_order_id -> every status, in seq order

    def positions(self) -> dict[str, Decimal]:
        """Base positions plus every journaled fill: the book execution rebuilds on a restart."""
        qty = dict(self.base)
        for f in self.fills:
            if f.seq <= self.base_seq:
                continue  # already in the base
            qty[f.symbol] = qty.get(f.symbol, 0) + (f.qty if f.side == OrderSide.BUY else -f.qty)
        return {s: fixed.to_decimal(q) for s, q in qty.items() if q != 0}


def read_journal(run_dir: Path) -> JournalView:
    import msgspec

    view = JournalView()
    db = sqlite3.connect(f"file:{run_dir / JOURNAL_FILE}?mode=ro", uri=True)
    try:
        in_table = list(db.execute("SELECT coid, attempt FROM submits"))
        # a submit is in the log first and moves into the table right after its POST: a SIGKILL in
        # between leaves it only in the log, which the next open moves over
        log_path = run_dir / f"{JOURNAL_FILE}{SUBMIT_LOG_SUFFIX}"
        logged, _ = read_submit_log(log_path.read_bytes()) if log_path.exists() else ([], 0)
        for coid, _attempt in dict.fromkeys([*in_table, *((c, a) for c, a, _, _ in logged)]):
            view.submitted.add(coid)
            view.submit_rows += 1
        for (blob,) in db.execute("SELECT ev FROM events ORDER BY seq"):
            ev = wire.decode(blob)
            view.events += 1
            if isinstance(ev, wire.Fill):
                view.fills.append(ev)
            elif isinstance(ev, wire.OrderUpdate):
                view.statuses.setdefault(ev.client_order_id, []).append(ev.status)
        row = db.execute("SELECT as_of_seq, positions FROM base WHERE id = 1").fetchone()
        if row is not None:
            view.base_seq = int(row[0])
            for p in msgspec.msgpack.decode(row[1], type=list[wire.Position]):
                view.base[p.symbol] = p.qty
    finally:
        db.close()
    return view
