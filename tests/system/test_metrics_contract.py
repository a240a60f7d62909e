"""The metrics contract (docs/metrics.md) against the running system: `zerotick up` on the venue,
a strategy that trades, then every service's /metrics and the venue's scraped and parsed with
prometheus_client's parser. Every name in the contract's tables is exported by the service its
section names, no `_created` series exists anywhere, and the figures move: fills, equity, quotes,
peers, the event loop."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from common.config import SERVICES
from tests.kit.system import ROOT, clean_env, free_port, free_port_block, system_up, write_toml
from tests.kit.waiting import wait_until

CONTRACT = ROOT / "docs" / "metrics.md"
SHARED_SECTION = "Shared by every service"
PROBE_ORDERS = 3
EQUITY_TOLERANCE = 0.0005  # of the equity: a few shares' spread, far less than one share's price


def contract() -> dict[str, set[str]]:
    """Section title -> the metric names in the first column of its table."""
    names: dict[str, set[str]] = {}
    section = ""
    for line in CONTRACT.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].split(" (")[0].strip()  # "Shared by every service (`common/metrics.py`)"
        elif section and line.startswith("| `"):
            first_column = line.split("|")[1]
            names.setdefault(section, set()).update(re.findall(r"`([a-z0-9_]+)`", first_column))
    return names


def expected_by_service() -> dict[str, set[str]]:
    sections = contract()
    shared = sections.pop(SHARED_SECTION)
    assert set(sections) == set(SERVICES), f"one section per service in {CONTRACT}: {sorted(sections)}"
    return {service: shared | sections[service] for service in SERVICES}


class Scrape:
    """One /metrics page, parsed."""

    def __init__(self, port: int) -> None:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        self.families = list(text_string_to_metric_families(text))
        self.samples: list[Sample] = [s for f in self.families for s in f.samples]

    @property
    def names(self) -> set[str]:
        """Every name a query can use: families (a counter also by its _total name) and samples."""
        out = {s.name for s in self.samples}
        for f in self.families:
            out.add(f.name)
            if f.type == "counter":
                out.add(f.name + "_total")
        return out

    def created(self) -> list[str]:
        return sorted({n for n in self.names if n.endswith("_created")})

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels``."""
        return sum(s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items())

    def has(self, name: str, **labels: str) -> bool:
        return any(s.name == name and labels.items() <= s.labels.items() for s in self.samples)


def _config(tmp_path: Path, sim_port: int, sim_metrics: int, metrics_base: int) -> Path:
    doc: dict[str, Any] = {
        "sim": {"port": sim_port, "metrics_port": sim_metrics, "stocks": ["AAPL", "MSFT"], "crypto": ["BTC/USD"],
                "message_rate": 40.0},
        "zmq": {"run_dir": str(tmp_path / "run")},
        "metrics": {"base_port": metrics_base},
        "market_data": {"stocks": ["AAPL", "MSFT"], "crypto": ["BTC/USD"]},
        "execution": {"account_poll_s": 1.0},
        "signal": {"strategies": [
            {"name": "probe1", "kind": "probe", "symbols": ["AAPL"], "params": {"max_orders": PROBE_ORDERS}},
        ]},
    }  # fmt: skip
    return write_toml(tmp_path / "zerotick.toml", doc)


def _scrape_all(ports: dict[str, int]) -> dict[str, Scrape]:
    return {name: Scrape(port) for name, port in ports.items()}


def _traded(scrapes: dict[str, Scrape]) -> bool:
    """The probe's fills have reached risk's books, and the account has been read since: the model's
    equity (cash + positions at the mid) agrees with the venue's to within the spread."""
    risk, ex = scrapes["risk"], scrapes["execution"]
    venue_equity = risk.value("zt_equity_usd", source="venue")
    return (
        ex.value("zt_exec_fills_total") > 0
        and risk.value("zt_position_qty", symbol="AAPL", strategy="probe1") > 0
        and risk.value("zt_position_qty", symbol="AAPL", strategy="all")
        == risk.value("zt_position_qty", symbol="AAPL", strategy="probe1")
        and venue_equity > 0
        and abs(risk.value("zt_equity_usd", source="model") - venue_equity) < EQUITY_TOLERANCE * venue_equity
        and all(s.value("zt_peer_alive") == len(SERVICES) - 1 for n, s in scrapes.items() if n in SERVICES)
    )


def _missing(expected: Iterable[str], scrape: Scrape) -> list[str]:
    return sorted(set(expected) - scrape.names)


@pytest.mark.timeout(240)
def test_every_service_exports_the_metrics_contract(tmp_path: Path) -> None:
    sim_port = free_port()
    sim_metrics = free_port_block(1, avoid=(sim_port,))
    base = free_port_block(len(SERVICES), avoid=(sim_port, sim_metrics))
    ports = {service: base + i for i, service in enumerate(SERVICES)} | {"sim": sim_metrics}
    config = _config(tmp_path, sim_port, sim_metrics, base)
    env = clean_env()
    expected = expected_by_service()

    with system_up(config, env, tmp_path / "run"):
        scrapes = wait_until(
            lambda: (s := _scrape_all(ports)) and _traded(s) and s,
            90,
            "fills in risk's books and the account read",
        )

    for service in SERVICES:
        assert _missing(expected[service], scrapes[service]) == [], service
    for name, scrape in scrapes.items():
        assert scrape.created() == [], name
    md, sig, risk, ex, sim = (scrapes[n] for n in (*SERVICES, "sim"))

    for service in SERVICES:
        s = scrapes[service]
        assert s.value("zt_service_up", service=service) == 1
        assert s.value("zt_service_ready", service=service) == 1
        assert s.value("zt_event_loop_lag_seconds_count", service=service) > 0
        assert s.value("zt_zmq_published_total", service=service, topic="sys.hb") > 0
    # market data flows out of market_data and into signal and risk, counted per topic family
    assert md.value("zt_md_feed_state", feed="stocks", zt_md_feed_state="subscribed") == 1
    assert md.value("zt_md_feed_state", feed="stocks") == 1  # one current state
    assert md.has("zt_md_last_quote_age_seconds", symbol="AAPL")
    assert md.value("zt_zmq_published_total", service="market_data", topic="md.q") > 0
    assert sig.value("zt_zmq_received_total", service="signal", topic="md.q") > 0
    assert risk.value("zt_zmq_received_total", service="risk", topic="md.q") > 0
    assert sig.value("zt_signal_intents_total", strategy="probe1") > 0
    # the orders and their fills
    fills = ex.value("zt_exec_fills_total", strategy="probe1", symbol="AAPL", side="buy")
    assert 0 < fills == ex.value("zt_exec_fills_total")
    assert ex.value("zt_exec_order_updates_total", status="filled") > 0
    assert ex.value("zt_exec_journal_write_seconds_count") > 0
    assert ex.value("zt_exec_order_post_seconds_count") > 0
    assert ex.has("zt_exec_open_orders")
    assert risk.value("zt_risk_check_seconds_count") > 0
    assert risk.value("zt_risk_decisions_total", reason="ok") > 0
    # positions, P&L and equity in risk
    held = risk.value("zt_position_qty", symbol="AAPL", strategy="all")
    assert 0 < held <= PROBE_ORDERS
    assert risk.value("zt_position_value_usd", symbol="AAPL") > 0
    assert risk.has("zt_pnl_unrealized_usd", symbol="AAPL", strategy="probe1")
    assert risk.has("zt_pnl_realized_usd", symbol="AAPL", strategy="all")
    assert risk.has("zt_risk_quote_age_seconds", symbol="AAPL")
    assert sim.value("zt_sim_orders_total") > 0
    print(
        f"\nMETRICS CONTRACT: {sum(len(v) for v in expected.values())} names checked; fills {fills:.0f}, "
        f"AAPL held {held:g}, equity venue {risk.value('zt_equity_usd', source='venue'):.2f} "
        f"model {risk.value('zt_equity_usd', source='model'):.2f}, md.q published "
        f"{md.value('zt_zmq_published_total', service='market_data', topic='md.q'):.0f}"
    )
