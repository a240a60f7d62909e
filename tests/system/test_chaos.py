"""Chaos under `zerotick up`: while the probe trades several orders a second, every service is
SIGKILLed in turn and supervisord restarts it; execution also while the venue holds its POST
(not yet applied) and while the venue has applied a POST whose reply is then lost. Afterwards the
journal, execution, risk and the venue (alpaca-py) agree exactly, no client_order_id reached the
venue twice, no fill is missing, and execution lists every order it ever sent."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bench.limits import OPEN_RISK
from common import fixed
from common.config import load_settings
from tests.kit import ledger
from tests.kit.system import clean_env, free_port, status_json, system_up, write_toml
from tests.kit.waiting import wait_until
from zerotick.control import send_control

SERVICES = ("market_data", "signal", "risk", "execution")
ROUNDS = 2  # each service SIGKILLed this many times, in turn
PROGRESS = 10  # orders the venue must receive between two kills
HTTP_TIMEOUT_S = 2.5  # execution's; its settle window (an unanswered POST may still land) is twice that
HOLD_MS = 2000  # the venue holds the POST execution is killed under this long (< HTTP_TIMEOUT_S)
# far beyond the settle window: the restarted execution's lookups (0.5, 1.5, 3.5, 8.5 s after it
# starts) give the order up before it lands
LATE_HOLD_MS = 20_000


def chaos_doc(run_dir: Path, sim_port: int) -> dict[str, Any]:
    # triggers that chaos would fire on purpose (a killed execution, a restarted feed) are off:
    # this test is about what survives the kills, not about halting on them
    return {
        "sim": {"port": sim_port, "metrics_port": 0, "stocks": ["AAPL", "MSFT"], "crypto": [],
                "message_rate": 12.0, "rate_limit_per_min": 1_000_000, "starting_cash": "100000000"},
        "zmq": {"run_dir": str(run_dir)},
        "metrics": {"base_port": 0},
        "market_data": {"stocks": ["AAPL", "MSFT"], "crypto": [], "subscribe_bars": False},
        "execution": {"rate_limit_per_min": 1_000_000, "rate_limit_burst": 1_000,
                      "http_timeout_s": HTTP_TIMEOUT_S},
        "risk": dict(OPEN_RISK),
        "kill_switch": {t: {"enabled": False} for t in (
            "order_rate", "reject_rate", "daily_loss", "drawdown", "latency", "stale_data",
            "trade_stream_down", "execution_unreachable")},
        "control": {"token": "chaos-token"},
        "signal": {"strategies": [
            {"name": "probe1", "kind": "probe", "symbols": ["AAPL", "MSFT"]},
            {"name": "ladder1", "kind": "ladder", "symbols": ["MSFT"], "params": {"levels": 4, "step_bps": 2}},
        ]},
    }  # fmt: skip


def _pid(config: Path, env: dict[str, str], svc: str) -> int | None:
    p = status_json(config, env)["processes"][svc]
    return int(p["pid"]) if p["pid"] and p["up"] else None


def _restarted(config: Path, env: dict[str, str], svc: str, old_pid: int) -> int:
    def check() -> int | None:
        st = status_json(config, env)
        pid = st["processes"][svc]["pid"]
        return pid if st["all_up"] and pid not in (None, old_pid) else None

    return wait_until(check, 60, f"{svc} restarted by supervisord", interval=0.3)


def _progress(port: int, n: int, what: str) -> None:
    before = sum(ledger.order_posts(port).values())
    wait_until(lambda: sum(ledger.order_posts(port).values()) >= before + n, 60, f"{n} orders after {what}")


def _held_post(config: Path, port: int, min_age_s: float) -> str | None:
    """The client_order_id of a POST execution wrote at least ``min_age_s`` ago that the venue has not
    answered yet (its request log records a POST once answered; an unheld one takes milliseconds)."""
    docs = send_control(load_settings(config), "execution", "orders", timeout_ms=2000)
    now = time.time_ns()
    answered = ledger.order_posts(port)
    for o in docs:
        if o["posted_ns"] and now - o["posted_ns"] > min_age_s * 1e9 and o["client_order_id"] not in answered:
            return str(o["client_order_id"])
    return None


def _kill_execution_under_held_post(
    port: int, config: Path, env: dict[str, str], fault: dict[str, Any]
) -> str:
    ledger.sim_post(port, "/sim/faults/rest", {"count": 1, "method": "POST", "paths": "/v2/orders", **fault})
    coid = wait_until(lambda: _held_post(config, port, 0.3), 20, "a POST held by the venue", interval=0.1)
    pid = _pid(config, env, "execution")
    assert pid
    os.kill(pid, signal.SIGKILL)
    _restarted(config, env, "execution", pid)
    return coid


def _settled(config: Path, env: dict[str, str], port: int) -> dict[str, Any] | None:
    """Everything, once every ledger shows the same positions and execution has no undecided order."""
    c = ledger.client(port)
    venue_pos = ledger.venue_positions(c)
    ex_orders = ledger.execution_orders(config, env)
    if any(o["status"] in ("pending_submit", "unknown") for o in ex_orders.values()):
        return None
    risk = ledger.risk_status(config, env)
    if ledger.nonzero(risk["positions"]) != venue_pos or ledger.execution_positions(config, env) != venue_pos:
        return None
    return {"venue_pos": venue_pos, "ex_orders": ex_orders, "risk": risk, "venue": ledger.venue_orders(c)}


@pytest.mark.timeout(420)
def test_sigkill_every_service_while_trading_and_every_ledger_agrees(tmp_path: Path) -> None:
    port = free_port()
    run_dir = tmp_path / "run"
    config = write_toml(tmp_path / "zerotick.toml", chaos_doc(run_dir, port))
    env = clean_env()
    kills: Counter[str] = Counter()
    t0 = time.monotonic()
    with system_up(config, env, run_dir):
        _progress(port, PROGRESS, "start")
        for _ in range(ROUNDS):
            for svc in SERVICES:
                pid = _pid(config, env, svc)
                assert pid, svc
                os.kill(pid, signal.SIGKILL)
                kills[svc] += 1
                _restarted(config, env, svc, pid)
                _progress(port, PROGRESS, f"{svc} restarted")
        # the venue holds the POST, then applies it: execution dies while it is outstanding
        mid_submit = _kill_execution_under_held_post(
            port, config, env, {"delay_ms": HOLD_MS, "after_apply": False}
        )
        kills["execution mid-submit"] += 1
        _progress(port, PROGRESS, "execution killed mid-submit")
        # the venue applies the POST at once and its reply is lost (504 after the hold)
        reply_lost = _kill_execution_under_held_post(
            port, config, env, {"status": 504, "delay_ms": HOLD_MS, "after_apply": True}
        )
        kills["execution reply lost"] += 1
        _progress(port, PROGRESS, "execution killed with a reply lost")
        # held beyond execution's settle window: the restarted execution gives the order up
        # (submit_failed) and the venue then applies it; the venue's word must win
        late = _kill_execution_under_held_post(
            port, config, env, {"delay_ms": LATE_HOLD_MS, "after_apply": False}
        )
        kills["execution late landing"] += 1
        wait_until(lambda: ledger.order_posts(port)[late] == 1, 60, "the late POST applied")
        _progress(port, PROGRESS, "the late POST landed")
        chaos_s = time.monotonic() - t0

        ledger.sim_post(port, "/sim/feed/pause")  # no more quotes: no more orders, no more fills
        final = wait_until(lambda: _settled(config, env, port), 60, "every ledger settled", interval=0.5)
        time.sleep(1.0)  # anything still in flight lands now
        final = wait_until(lambda: _settled(config, env, port), 60, "every ledger settled", interval=0.5)
        posts = ledger.order_posts(port)
        journal = ledger.read_journal(run_dir)
        ex_status = ledger.ctl(config, env, "execution", "status")
        st = status_json(config, env)

    venue_by_coid = {o.client_order_id: o for o in final["venue"]}
    ex_orders: dict[str, dict[str, Any]] = final["ex_orders"]
    venue_pos: dict[str, Decimal] = final["venue_pos"]

    # no client_order_id reached the venue twice; every order at the venue is one zerotick sent
    assert len(venue_by_coid) == len(final["venue"])
    assert [c for c, n in posts.items() if n > 1] == []
    assert set(venue_by_coid) == set(posts)
    # both held POSTs ended at the venue once, and execution adopted them (never re-sent)
    for coid in (mid_submit, reply_lost, late):
        assert posts[coid] == 1 and coid in venue_by_coid, coid
        assert ex_orders[coid]["venue_order_id"] == str(venue_by_coid[coid].id), ex_orders[coid]
    # execution lists every order it ever sent, with the venue's status and filled qty
    assert journal.submitted <= set(ex_orders)
    for coid, o in venue_by_coid.items():
        mine = ex_orders[coid]
        assert (mine["status"], Decimal(mine["filled_qty"])) == (o.status.value, Decimal(o.filled_qty)), coid
    # the late one was given up after the settle window, then adopted when the venue applied it
    assert "submit_failed" in journal.statuses[late], journal.statuses[late]
    assert journal.statuses[late][-1] == venue_by_coid[late].status.value, journal.statuses[late]
    never_placed = {c: o["status"] for c, o in ex_orders.items() if c not in venue_by_coid}
    assert set(never_placed.values()) <= {"submit_failed"}, never_placed
    # no fill missing: the journal's fills add up to the venue's fills, order by order and per symbol
    filled_by_coid: Counter[str] = Counter()
    for f in journal.fills:
        filled_by_coid[f.client_order_id] += f.qty
    for coid, o in venue_by_coid.items():
        assert fixed.to_decimal(filled_by_coid[coid]) == Decimal(o.filled_qty), coid
    assert journal.base == {} and journal.positions() == venue_pos
    # risk, execution and the venue hold the same positions; risk's pending = the venue's open orders
    open_at_venue = [o for o in final["venue"] if o.status.value in ("new", "partially_filled", "accepted")]
    assert final["risk"]["open_orders"] == len(open_at_venue)
    assert ex_status["reconcile_alarms"] == [] and ex_status["journal"]["ok"]
    assert st["trading_state"]["state"] == "active"
    assert sum(kills.values()) == ROUNDS * len(SERVICES) + 3

    fills = len(journal.fills)
    print(
        f"\nCHAOS: {chaos_s:.0f}s of chaos; orders sent {len(posts)} (POSTs {sum(posts.values())}), "
        f"at the venue {len(venue_by_coid)} (open {len(open_at_venue)}), fills {fills}, "
        f"journal: {len(journal.submitted)} submitted orders / {journal.submit_rows} submit rows / "
        f"{journal.events} events / {fills} fills; execution lists {len(ex_orders)} orders "
        f"({len(never_placed)} never placed); late POST {journal.statuses[late]}; positions {dict(venue_pos)}; kills {dict(kills)}"
    )
