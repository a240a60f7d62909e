"""What the operations tests read: the metrics contract, the alert rules, the dashboards' queries."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from zerotick.dashboards import DASHBOARDS

ROOT = Path(__file__).resolve().parents[2]
METRICS_DOC = ROOT / "docs" / "metrics.md"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
PROMETHEUS_OWN = frozenset({"up"})

_TABLE_NAMES = re.compile(r"`(zt_[a-z0-9_]+)`")


def contract_names() -> set[str]:
    """Every metric name in the first column of a table of docs/metrics.md."""
    names: set[str] = set()
    for line in METRICS_DOC.read_text().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(_TABLE_NAMES.findall(first_cell))
    return names


def alert_rules(text: str | None = None) -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml, as Prometheus reads it."""
    doc = yaml.safe_load(ALERTS.read_text() if text is None else text)
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def alert_exprs(text: str | None = None) -> dict[str, str]:
    """alert name → expr (whitespace folded)."""
    return {rule["alert"]: " ".join(str(rule["expr"]).split()) for rule in alert_rules(text)}


def panel_exprs() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) for every query of every dashboard."""
    return [
        (name, panel.title, target.expr)
        for name, dashboard in DASHBOARDS.items()
        for panel in dashboard.panels()
        for target in panel.targets
    ]
