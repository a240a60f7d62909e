"""Reading a service's /metrics tolerantly: missing metrics are None, enums give their state."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client import Enum as PromEnum

from zerotick.top.promtext import parse


def _exposition() -> str:
    r = CollectorRegistry()
    c = Counter("zt_md_messages_total", "x", ["feed", "type"], registry=r)
    c.labels("stocks", "quote").inc(7)
    c.labels("crypto", "quote").inc(3)
    c.labels("stocks", "trade").inc(2)
    e = PromEnum("zt_trading_state", "x", ["service"], states=["active", "reduce_only", "halted"], registry=r)
    e.labels("risk").state("reduce_only")
    Gauge("zt_md_feed_state", "x", ["feed"], registry=r).labels("stocks").set(3)
    return generate_latest(r).decode()


def test_totals_and_label_breakdowns() -> None:
    m = parse(_exposition())
    assert m.total("zt_md_messages_total") == 12
    assert m.total("zt_md_messages_total", feed="stocks") == 9
    assert m.by_label("zt_md_messages_total", "type") == {"quote": 10, "trade": 2}
    assert not m.has("zt_md_messages_created")  # _created series are not samples


def test_a_missing_metric_is_none_not_an_error() -> None:
    m = parse(_exposition())
    assert m.total("zt_pnl_realized_usd") is None
    assert m.by_label("zt_pnl_realized_usd", "symbol") == {}
    assert m.buckets("zt_tick_to_order_seconds") == {}
    assert m.enum_state("zt_md_feed_state") is None  # a plain gauge, not (yet) an enum


def test_enum_state_is_the_series_set_to_one() -> None:
    assert parse(_exposition()).enum_state("zt_trading_state", service="risk") == "reduce_only"


def test_text_that_is_not_an_exposition_is_refused() -> None:
    with pytest.raises(ValueError):
        parse("<html>not metrics</html>\n")
