"""Grafana dashboards as code: ``python -m zerotick.dashboards`` writes deploy/grafana/dashboards/."""

from __future__ import annotations

import json
from pathlib import Path

from zerotick.dashboards.health import HEALTH
from zerotick.dashboards.latency import LATENCY
from zerotick.dashboards.model import Dashboard
from zerotick.dashboards.trading import TRADING

DASHBOARDS: dict[str, Dashboard] = {"latency": LATENCY, "trading": TRADING, "health": HEALTH}
OUTPUT_DIR = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"


def render(dashboard: Dashboard) -> str:
    """The file content: stable key order and indentation, so regenerating changes nothing."""
    return json.dumps(dashboard.to_json(), indent=2, ensure_ascii=False) + "\n"


def write_all(folder: Path = OUTPUT_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dashboard in DASHBOARDS.items():
        path = folder / f"{name}.json"
        path.write_text(render(dashboard))
        written.append(path)
    return written
