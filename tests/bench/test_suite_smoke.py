"""`python -m bench.suite --quick` end to end: every section present with the right shape.

A whole-system run (four services and three venues, ~60-90 s on 2 shared cores): it checks the
harness works and what it writes, never how fast anything was.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bench.contenders import NICE_ALLOWED, PINNED_NICE
from bench.suite import QUICK
from tests.kit.system import ROOT, clean_env

CONTENDERS = ("zerotick", "naive_bot", "minimal_client", "pipeline_floor")
PERCENTILES = ("n", "p50", "p90", "p99", "p99.9", "max")


def _stats_ok(st: dict[str, object], n: int | None = None) -> None:
    assert set(PERCENTILES) <= set(st), st
    if n is not None:
        assert st["n"] == n, st
    if st["n"]:
        vals = [st[k] for k in ("p50", "p90", "p99", "p99.9", "max")]
        assert all(isinstance(v, float | int) and v > 0 for v in vals), st
        assert vals == sorted(vals), st


@pytest.mark.timeout(300)
def test_quick_suite_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    env = clean_env(PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.suite", "--quick", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"written: {out}" in proc.stdout
    res = orjson.loads(out.read_bytes())

    assert set(res) >= {"meta", "calibration", "wire_to_wire", "risk_check", "wake_cost", "risk_rtt", "md_throughput",
                        "book", "journal_start", "memory", "startup"}  # fmt: skip
    meta = res["meta"]
    assert meta["quick"] is True and meta["idle_poll"] is False
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    assert meta["code"]["commit"] == head and isinstance(meta["code"]["modified"], bool)
    usable = sorted(os.sched_getaffinity(0))
    pinned = [usable[-1]] if len(usable) >= 2 else None  # --pin auto
    assert meta["pinned_cpus"] == pinned
    # what each running service reported in its status: host.cpu_affinity and host.nice in force
    assert meta["pinned"] == {
        "zerotick_services": {
            svc: {"cpus": pinned or usable, "nice": PINNED_NICE[svc] if pinned and NICE_ALLOWED else 0}
            for svc in PINNED_NICE
        },
        "naive_bot": {"naive_bot": pinned or usable},
        "minimal_client": {"minimal_client": usable},
        "pipeline_floor": {
            "pipeline_floor": usable,  # the launcher; its four roles pin themselves
            **{f"pipeline_floor.{svc}": pinned or usable for svc in PINNED_NICE},
        },
    }
    assert {"steal_pct", "busy_pct"} <= set(meta["cpu"])
    assert meta["host"]["cpus"] >= 1 and meta["host"]["cpu_model"]

    for when in ("start", "end"):
        _stats_ok(res["calibration"][when])

    w2w = res["wire_to_wire"]
    assert list(w2w) == [str(load) for load in QUICK.loads]
    probes = QUICK.rounds * QUICK.probes_per_round
    for level in w2w.values():
        assert {"steal_pct", "busy_pct"} <= set(level["host"])
        for name in CONTENDERS:
            r = level[name]
            _stats_ok(r["latency_us"])
            assert r["latency_us"]["n"] + r["missing"] == probes
            assert r["background_msgs_per_s_generated"] > 0
            assert r["venue_cpu_pct"] > 0  # the venue's own CPU while it served this contender
            assert "zt_sim_md_disconnects_total" in r["drops"]
        assert {"zt_zmq_gaps_total", "zt_zmq_dropped_total"} <= set(level["zerotick"]["drops"])
        # what explains a probe without an order: only the counts this load added
        assert all(isinstance(n, float) and n != 0 for n in level["zerotick"]["no_order_causes"].values())
        # where zerotick's time went during this load's probes: every stage of the order path
        stages = level["zerotick"]["stage_mean_us"]
        assert {"signal.md_to_signal", "risk.signal_to_risk", "execution.risk_to_exec",
                "execution.exec_submit", "execution.tick_to_order"} <= set(stages), stages  # fmt: skip
        assert all(v > 0 for v in stages.values()), stages

    assert set(res["risk_check"]) == {"RiskState.check(intent)", "check_order (dispatcher)",
                                      "check_order (entry point)"}  # fmt: skip
    for st in res["risk_check"].values():
        _stats_ok(st)
    # each piece of the order path timed warm and right after a sleep, where the services run
    wake = res["wake_cost"]
    assert wake["cpus"] == meta["pinned_cpus"] and wake["samples"] == 20
    assert set(wake["pieces"]) == {
        "empty", "clock read (vDSO)", "system call (getpid)", "poll, one descriptor, no wait",
        "OrderRequest decode", "RiskState.check", "submit record: encode + write", "stat of the trading-state file",
    }  # fmt: skip
    for piece in wake["pieces"].values():
        assert piece["warm_ns"] > 0 and piece["woken_ns"] > 0
        assert piece["ratio"] == round(piece["woken_ns"] / piece["warm_ns"], 1)
    _stats_ok(res["risk_rtt"]["approved_us"])
    _stats_ok(res["risk_rtt"]["rejected_us"])

    for section in ("md_throughput", "book"):
        assert isinstance(res[section]["available"], bool)
        assert "error" not in res[section], res[section]
    journal = res["journal_start"]
    assert journal["available"] and "error" not in journal, journal
    # a start from the snapshot reads the kept orders' updates, not the history (counts, not times)
    assert journal["result"]["events_read_whole"] == journal["result"]["events"]
    assert (
        journal["result"]["events_read_from_snapshot"]
        == journal["result"]["orders_rebuilt_from_snapshot"]
        == 1000
    )

    assert set(res["memory"]) == set(CONTENDERS)
    assert set(res["memory"]["zerotick"]) == {"sim", "market_data", "signal", "risk", "execution"}
    for procs in res["memory"].values():
        for m in procs.values():
            assert m["rss_mib"] > 0 and isinstance(m["numba"], bool)
    assert res["memory"]["zerotick"]["risk"]["numba"] is True  # the pre-trade check is numba

    st = res["startup"]
    assert st["up_to_all_ready_s"] > 0
    assert set(st["per_service_ready_s"]) == {"sim", "market_data", "signal", "risk", "execution"}
    assert isinstance(st["numba_cache_warm"], bool)

    assert "wire to wire" in proc.stdout
