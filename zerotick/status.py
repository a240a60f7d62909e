"""What runs, as `zerotick status` and `zerotick up` see it: per program supervisord's state, whether
it answers, its own state, and why it is not ready.

Which programs run is read from the supervisord of the run folder, never guessed from the caller's
environment (a caller without the Alpaca keys would otherwise look for a venue program that was never
started); only when nothing runs is the list derived from the settings."""

from __future__ import annotations

from typing import Any

from common.config import SERVICES, Settings
from common.enums import TradingState
from zerotick import supervisor
from zerotick.control import ControlError, send_control

# A service is ready in these states: "ok", or, for risk, a trading state (it has its positions).
READY_STATES = frozenset({"ok", *TradingState.values()})
# supervisord states after which a program does not come back by itself
DEAD_STATES = frozenset({"FATAL", "EXITED", "STOPPED", "UNKNOWN"})


def _venue_healthy(settings: Settings, timeout_ms: int) -> bool:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{settings.sim_origin()}/sim/health", timeout=timeout_ms / 1000) as resp:
            return bool(resp.status == 200)
    except (OSError, ValueError):
        return False


def _program_reason(layout: supervisor.Layout, name: str, info: dict[str, Any]) -> str:
    """supervisord's word on a program that is not running, with the last lines of its log."""
    if info["state"] in ("RUNNING", "STARTING", "NOT RUNNING"):
        return ""
    words = [info["state"]]
    if info.get("reason"):
        words.append(f"({info['reason']})")
    tail = supervisor.log_tail(layout, name, max_lines=1)
    text = " ".join(words)
    return f"{text}: {' | '.join(tail)}" if tail else text


def collect_status(settings: Settings, timeout_ms: int = 500) -> dict[str, Any]:
    layout = supervisor.Layout(settings.zmq.run_dir.resolve())
    procs = supervisor.process_info(layout)
    names = sorted(procs, key=lambda n: supervisor.PRIORITY.get(n, 99)) or supervisor.programs(settings)
    rows: dict[str, Any] = {}
    for name in names:
        info = procs.get(name, {"state": "NOT RUNNING", "pid": None, "uptime_s": 0})
        row: dict[str, Any] = {"supervisor": info["state"], "pid": info["pid"], "uptime_s": info["uptime_s"]}
        reason = _program_reason(layout, name, info)
        ready = True
        if name in SERVICES:
            try:
                row["service"] = send_control(settings, name, "status", timeout_ms=timeout_ms)
                row["rpc"] = "ok"
            except ControlError as exc:
                row["service"] = None
                row["rpc"] = "down"
                row["rpc_error"] = str(exc)
            svc = row["service"] or {}
            ready = svc.get("state") in READY_STATES
            if not reason and row["rpc"] == "down" and info["state"] == "RUNNING":
                reason = f"control socket does not answer: {row['rpc_error']}"
            elif not reason and not ready and svc:
                reason = svc.get("state_reason") or svc.get("not_ready_reason") or f"state {svc.get('state')}"
        elif name == supervisor.SIM_PROGRAM:
            row["rpc"] = "ok" if _venue_healthy(settings, timeout_ms) else "down"
            if not reason and row["rpc"] == "down" and info["state"] == "RUNNING":
                reason = f"the venue does not answer at {settings.sim_origin()}/sim/health"
        rows[name] = row
        row["up"] = row["supervisor"] == "RUNNING" and row.get("rpc", "ok") == "ok"
        row["ready"] = row["up"] and ready
        row["reason"] = reason
    return {
        "venue": _venue(settings, procs, rows),
        "trading_state": _trading_state(settings, rows),
        "supervisord_pid": supervisor.supervisord_pid(layout),
        "all_up": bool(rows) and all(r["up"] for r in rows.values()),
        "all_ready": bool(rows) and all(r["ready"] for r in rows.values()),
        "processes": rows,
    }


def _venue(settings: Settings, procs: dict[str, Any], rows: dict[str, Any]) -> str:
    """What the running system trades on: execution's own answer, else whether the embedded venue
    runs; the settings (this caller's environment) only when nothing runs."""
    answered = ((rows.get("execution") or {}).get("service") or {}).get("venue")
    if answered:
        return str(answered)
    if procs:
        return "sim" if supervisor.SIM_PROGRAM in procs else "alpaca"
    return settings.venue


def _trading_state(settings: Settings, rows: dict[str, Any]) -> dict[str, Any]:
    """Risk's answer when it gives one, else the persisted record (what a restart would come back in)."""
    from common.trading_state import StateStore

    record = StateStore(settings.zmq.run_dir).load()
    risk = (rows.get("risk") or {}).get("service") or {}
    execution = (rows.get("execution") or {}).get("service") or {}
    return {
        "state": risk.get("trading_state") or record.state.value,
        "persisted": {
            "state": record.state.value,
            "seq": record.seq,
            "source": record.source.value,
            "who": record.who,
            "reason": record.reason,
            "ts_ns": record.ts_ns,
        },
        "execution_gate": execution.get("trading_state"),
        "trip_pending": execution.get("trip_pending"),
    }
