"""A service's health and the reason for it, judged from its status reply and its metrics."""

from __future__ import annotations

from typing import Any

from common.enums import FeedState, ServiceHealth
from zerotick.top.snapshot import Probe

# heartbeat states (the status reply's "state") that mean "running, not ready yet"
_NOT_READY = frozenset({"starting", "not_ready"})
_DEGRADED = frozenset({"degraded", "journal_failed"})


def judge(probe: Probe) -> tuple[ServiceHealth, str]:
    st = probe.status
    if st is None:
        if probe.metrics is not None:  # /metrics is served off the event loop: alive, loop not answering
            return ServiceHealth.DEGRADED, f"control socket: {probe.status_error or 'no answer'}"
        return ServiceHealth.DOWN, probe.status_error or probe.metrics_error or "no answer"
    state = str(st.get("state", ""))
    problems = _problems(st)
    if state in _NOT_READY:
        return ServiceHealth.UP, "; ".join([state.replace("_", " "), *problems])
    if state in _DEGRADED or problems:
        return ServiceHealth.DEGRADED, "; ".join(problems) or state.replace("_", " ")
    if probe.metrics is not None and probe.metrics.total("zt_service_ready") == 0:
        return ServiceHealth.UP, "reports not ready"
    return ServiceHealth.READY, ""


def _problems(st: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for name, task in _dict(st.get("tasks")).items():
        if isinstance(task, dict) and task.get("running") is False:
            out.append(f"task {name} stopped: {task.get('last_error') or 'no error'}"[:160])
    for name, feed in _dict(st.get("feeds")).items():
        if isinstance(feed, dict) and feed.get("state") != FeedState.SUBSCRIBED:
            detail = f" ({feed['detail']})" if feed.get("detail") else ""
            out.append(f"feed {name} {feed.get('state')}{detail}"[:160])
    for name, strat in _dict(st.get("strategies")).items():
        if isinstance(strat, dict) and strat.get("error"):
            out.append(f"strategy {name} disabled: {strat['error']}"[:160])
    if st.get("trade_stream_connected") is False and st.get("ready"):
        out.append("trade stream disconnected")
    journal = _dict(st.get("journal"))
    if journal.get("ok") is False:
        out.append(f"journal: {journal.get('error') or 'not writable'}"[:160])
    if st.get("trip_pending"):
        out.append("trip not confirmed by the venue")
    if st.get("reconcile_alarms"):
        out.append(f"{len(st['reconcile_alarms'])} reconcile alarm(s)")
    return out


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
