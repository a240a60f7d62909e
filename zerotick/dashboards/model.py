"""A small typed builder for Grafana dashboard JSON: panels in rows, the layout computed.

Every query targets the Prometheus datasource provisioned with the fixed uid ``prometheus``
(deploy/grafana/provisioning/datasources/prometheus.yml), so the JSON needs no input mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "prometheus"}
GRID_COLUMNS = 24
SCHEMA_VERSION = 39


class PanelType(StrEnum):
    TIMESERIES = "timeseries"
    STAT = "stat"
    HEATMAP = "heatmap"
    STATE_TIMELINE = "state-timeline"
    TABLE = "table"


class QueryFormat(StrEnum):
    TIME_SERIES = "time_series"
    HEATMAP = "heatmap"
    TABLE = "table"


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel; ``legend`` is Grafana's legendFormat (``{{label}}``)."""

    expr: str
    legend: str = ""
    fmt: QueryFormat = QueryFormat.TIME_SERIES
    instant: bool = False

    def to_json(self, ref_id: str) -> dict[str, Any]:
        return {
            "refId": ref_id,
            "datasource": dict(DATASOURCE),
            "expr": self.expr,
            "legendFormat": self.legend,
            "format": self.fmt.value,
            "instant": self.instant,
            "range": not self.instant,
        }


@dataclass(frozen=True)
class ValueText:
    """A value mapping: the number ``value`` is shown as ``text`` in ``color``."""

    value: int
    text: str
    color: str


@dataclass(frozen=True)
class Panel:
    title: str
    type: PanelType
    targets: tuple[Target, ...]
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = ""
    stacked: bool = False
    mappings: tuple[ValueText, ...] = ()
    thresholds: tuple[tuple[float, str], ...] = ()  # (from value, color), ascending, above a green base

    def __post_init__(self) -> None:
        if not 1 <= self.width <= GRID_COLUMNS:
            raise ValueError(f"panel {self.title!r}: width {self.width} outside 1..{GRID_COLUMNS}")
        if not self.targets:
            raise ValueError(f"panel {self.title!r} has no query")

    def to_json(self, panel_id: int, grid: dict[str, int]) -> dict[str, Any]:
        defaults: dict[str, Any] = {
            "unit": self.unit,
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": "green", "value": None}]
                + [{"color": color, "value": value} for value, color in self.thresholds],
            },
        }
        if self.mappings:
            defaults["mappings"] = [
                {
                    "type": "value",
                    "options": {str(m.value): {"text": m.text, "color": m.color, "index": i}},
                }
                for i, m in enumerate(self.mappings)
            ]
            defaults["color"] = {"mode": "thresholds"}
        if self.type is PanelType.TIMESERIES:
            defaults["custom"] = {
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": 10 if self.stacked else 0,
                "showPoints": "never",
                "stacking": {"mode": "normal" if self.stacked else "none", "group": "A"},
            }
        refs = [chr(ord("A") + i) for i in range(len(self.targets))]
        return {
            "id": panel_id,
            "type": self.type.value,
            "title": self.title,
            "description": self.description,
            "datasource": dict(DATASOURCE),
            "gridPos": grid,
            "targets": [t.to_json(r) for t, r in zip(self.targets, refs, strict=True)],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": self._options(),
        }

    def _options(self) -> dict[str, Any]:
        legend = {"displayMode": "list", "placement": "bottom", "showLegend": True}
        match self.type:
            case PanelType.TIMESERIES:
                return {"legend": legend, "tooltip": {"mode": "multi", "sort": "desc"}}
            case PanelType.STAT:
                return {
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "background",
                    "graphMode": "none",
                    "textMode": "value_and_name",
                }
            case PanelType.HEATMAP:
                return {
                    "calculate": False,
                    "yAxis": {"unit": self.unit},
                    "cellGap": 1,
                    "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                    "legend": {"show": True},
                }
            case PanelType.STATE_TIMELINE:
                return {"mergeValues": True, "showValue": "auto", "rowHeight": 0.9, "legend": legend}
            case PanelType.TABLE:
                return {"showHeader": True}


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    tags: tuple[str, ...] = ("zerotick",)
    refresh: str = "5s"
    time_from: str = "now-30m"
    links: tuple[str, ...] = ()  # uids of related dashboards

    def panels(self) -> list[Panel]:
        return [p for r in self.rows for p in r.panels]

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "editable": True,
            "graphTooltip": 1,
            "refresh": self.refresh,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "time": {"from": self.time_from, "to": "now"},
            "timezone": "utc",
            "templating": {"list": []},
            "annotations": {"list": []},
            "links": [
                {"title": uid, "type": "link", "url": f"/d/{uid}", "targetBlank": False} for uid in self.links
            ],
            "panels": layout(self.rows),
        }


def layout(rows: tuple[Row, ...]) -> list[dict[str, Any]]:
    """Rows stacked top to bottom; inside a row, panels left to right, wrapping at 24 columns.
    Ids run 1.. in reading order, rows included."""
    out: list[dict[str, Any]] = []
    y = 0
    for row in rows:
        out.append(
            {
                "id": len(out) + 1,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": y, "w": GRID_COLUMNS, "h": 1},
                "panels": [],
            }
        )
        y += 1
        x, line_height = 0, 0
        for panel in row.panels:
            if x + panel.width > GRID_COLUMNS:
                y, x, line_height = y + line_height, 0, 0
            out.append(panel.to_json(len(out) + 1, {"x": x, "y": y, "w": panel.width, "h": panel.height}))
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return out
