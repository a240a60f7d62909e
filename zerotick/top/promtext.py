"""One service's Prometheus exposition text, parsed into samples that can be looked up by name and labels.

Lookups are tolerant: a metric the service does not (yet) export gives None or an empty result, never
an error, so the dashboard shows "–" for it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Metrics:
    """Samples by sample name (``zt_x_total``, ``zt_h_seconds_bucket``...), each series by its labels."""

    samples: Mapping[str, Mapping[Labels, float]] = field(default_factory=dict)

    def series(self, name: str, **match: str) -> list[tuple[dict[str, str], float]]:
        """Every series of ``name`` whose labels include ``match``."""
        out = []
        for labels, value in self.samples.get(name, {}).items():
            d = dict(labels)
            if all(d.get(k) == v for k, v in match.items()):
                out.append((d, value))
        return out

    def has(self, name: str) -> bool:
        return name in self.samples

    def total(self, name: str, **match: str) -> float | None:
        """The sum over the matching series; None when the metric is not exported at all."""
        if name not in self.samples:
            return None
        return sum(v for _, v in self.series(name, **match))

    def by_label(self, name: str, label: str, **match: str) -> dict[str, float]:
        """Matching series summed per value of ``label``."""
        out: dict[str, float] = {}
        for labels, value in self.series(name, **match):
            key = labels.get(label, "")
            out[key] = out.get(key, 0.0) + value
        return out

    def buckets(self, name: str, **match: str) -> dict[float, float]:
        """A histogram's cumulative bucket counts by upper bound (+Inf included), summed over the
        matching series. ``name`` is the histogram's name without ``_bucket``."""
        out: dict[float, float] = {}
        for labels, value in self.series(name + "_bucket", **match):
            try:
                le = float(labels.get("le", ""))
            except ValueError:
                continue
            out[le] = out.get(le, 0.0) + value
        return out

    def enum_state(self, name: str, **match: str) -> str | None:
        """The current state of a Prometheus enum (the series whose value is 1; the state is the label
        named like the metric). None when the metric is absent or is not an enum."""
        for labels, value in self.series(name, **match):
            if value == 1 and name in labels:
                return labels[name]
        return None


def parse(text: str) -> Metrics:
    """Raises ValueError on text that is not Prometheus exposition format."""
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_created") or math.isnan(s.value):
                continue
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = float(s.value)
    return Metrics(samples)
