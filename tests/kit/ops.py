"""What the operations tests read: the metrics contract, the alert rules, the dashboards' queries."""

from __future__ import annotations

import re
from pathlib import Path

from zerotick.dashboards import DASHBOARDS

ROOT = Path(__file__).resolve().parents[2]
METRICS_DOC = ROOT / "docs" / "metrics.md"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
PROMETHEUS_OWN = frozenset({"up"})

_TABLE_NAMES = re.compile(r"`(zt_[a-z0-9_]+)`")
_ALERT = re.compile(r"^\s*- alert: (\w+)\s*$")
_EXPR_BLOCK = re.compile(r"^(\s*)expr: \|\s*$")


def contract_names() -> set[str]:
    """Every metric name in the first column of a table of docs/metrics.md."""
    names: set[str] = set()
    for line in METRICS_DOC.read_text().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(_TABLE_NAMES.findall(first_cell))
    return names


def alert_exprs(text: str | None = None) -> dict[str, str]:
    """alert name → expr, read from alerts.yml: our rules write every expr as a `|` block, which
    this reads as YAML does (the lines indented deeper than ``expr:``)."""
    lines = (ALERTS.read_text() if text is None else text).splitlines()
    out: dict[str, str] = {}
    name = ""
    i = 0
    while i < len(lines):
        if m := _ALERT.match(lines[i]):
            name = m.group(1)
        elif (m := _EXPR_BLOCK.match(lines[i])) and name:
            indent = len(m.group(1))
            body = []
            i += 1
            while i < len(lines) and (
                not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
            ):
                body.append(lines[i].strip())
                i += 1
            out[name] = " ".join(b for b in body if b)
            continue
        i += 1
    return out


def panel_exprs() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) for every query of every dashboard."""
    return [
        (name, panel.title, target.expr)
        for name, dashboard in DASHBOARDS.items()
        for panel in dashboard.panels()
        for target in panel.targets
    ]
