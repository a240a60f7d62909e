"""PromQL helpers for the dashboards and a small extractor of the metric names an expression reads.

The extractor is regex based and knows exactly enough PromQL for our own expressions: it drops
string literals, label matchers and grouping clauses, then keeps identifiers that are neither
functions, aggregation operators nor keywords.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

QUANTILES = (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999))

_KEYWORDS = frozenset(
    """
    sum min max avg group stddev stdvar count count_values bottomk topk quantile
    by without on ignoring group_left group_right bool and or unless offset
    abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week
    days_in_month delta deriv exp floor histogram_quantile holt_winters hour idelta increase irate
    label_join label_replace ln log2 log10 minute month predict_linear rate resets round scalar sgn
    sort sort_desc sqrt time timestamp vector year avg_over_time min_over_time max_over_time
    sum_over_time count_over_time quantile_over_time stddev_over_time stdvar_over_time
    last_over_time present_over_time inf nan
    """.split()
)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGES = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)")
_HISTOGRAM_SERIES = re.compile(r"_(?:bucket|sum|count)$")


def series_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects, as exported series (``x_bucket`` stays ``x_bucket``)."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGES.sub(" ", text)
    return {m for m in _IDENT.findall(text) if m.lower() not in _KEYWORDS}


def metric_names(expr: str) -> set[str]:
    """The metric families ``expr`` reads: histogram series folded into their family name."""
    return {_HISTOGRAM_SERIES.sub("", name) for name in series_names(expr)}


def quantile(q: float, metric: str, by: Iterable[str] = (), selector: str = "", window: str = "1m") -> str:
    """``histogram_quantile`` of a histogram family, kept per ``by`` labels."""
    labels = ", ".join(("le", *by))
    return f"histogram_quantile({q}, sum by ({labels}) (rate({metric}_bucket{selector}[{window}])))"


def enum_code(metric: str, by: str, states: Iterable[str]) -> str:
    """One number per ``by`` value for a Prometheus enum: the index of its current state in
    ``states`` (the first state is 0, so it needs no term), for state-timeline value mappings."""
    terms = [f'{i} * sum by ({by}) ({metric}{{{metric}="{state}"}})' for i, state in enumerate(states) if i]
    return " + ".join(terms)
