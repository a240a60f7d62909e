"""Scraping a system that is not (fully) there: every service shows, as down or degraded, with why."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from common.config import SERVICES, Settings
from common.enums import ServiceHealth
from tests.kit.system import free_port_block
from zerotick.top import view
from zerotick.top.main import once
from zerotick.top.snapshot import Collector, metrics_url


@contextmanager
def _metrics_server(port: int, body: bytes) -> Iterator[None]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_nothing_running_shows_every_service_down_with_the_reason(tmp_path: Path) -> None:
    settings = Settings(zmq={"run_dir": tmp_path}, metrics={"base_port": free_port_block(len(SERVICES))})
    collector = Collector(settings, timeout_s=0.2)
    try:
        snap = collector.take()
    finally:
        collector.close()
    d = view.build(None, snap)
    assert [(s.name, s.health) for s in d.services] == [(s, ServiceHealth.DOWN) for s in SERVICES]
    assert all(s.reason for s in d.services)
    assert d.trading.state == "unknown"
    assert snap.orders is None and snap.orders_error


def test_a_service_whose_control_socket_is_silent_but_metrics_answer_is_degraded(tmp_path: Path) -> None:
    base = free_port_block(len(SERVICES))
    settings = Settings(zmq={"run_dir": tmp_path}, metrics={"base_port": base})
    registry = CollectorRegistry()
    Gauge("zt_service_up", "x", ["service"], registry=registry).labels("risk").set(1)
    with _metrics_server(base + SERVICES.index("risk"), generate_latest(registry)):
        text = once(settings, interval_s=0.0, timeout_s=0.2)
    assert "degraded" in text and "control socket" in text
    assert "down" in text
    assert "trading UNKNOWN" in text


def test_metrics_url_follows_the_configuration() -> None:
    s = Settings(metrics={"base_port": 9300, "host": "0.0.0.0"})
    assert metrics_url(s, "risk") == "http://127.0.0.1:9302/metrics"
    assert metrics_url(Settings(metrics={"base_port": 0}), "risk") is None
