"""The suite reads the services' counters by label from a real Prometheus endpoint."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, start_http_server

from bench.contenders import counts_by_label


def test_counts_by_label_sums_one_counter_per_label_value_and_ignores_the_rest() -> None:
    registry = CollectorRegistry()
    decisions = Counter("zt_risk_decisions_total", "d", ["reason", "strategy"], registry=registry)
    other = Counter("zt_other_total", "o", ["reason"], registry=registry)
    decisions.labels("ok", "a").inc(5)
    decisions.labels("expired", "a").inc(1)
    decisions.labels("expired", "b").inc(2)
    other.labels("expired").inc(7)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        port = server.server_address[1]
        assert counts_by_label(port, "zt_risk_decisions_total", "reason") == {"ok": 5.0, "expired": 3.0}
        assert counts_by_label(port, "zt_absent_total", "reason") == {}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert counts_by_label(port, "zt_risk_decisions_total", "reason") == {}  # nobody listening
