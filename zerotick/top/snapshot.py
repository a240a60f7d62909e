"""One scrape of the running system: every service's /metrics and control-socket status, and
execution's orders and positions. Every request has a timeout and runs in parallel, so a dead or
hung service costs one timeout per scrape and shows as down; nothing here raises."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from common.clock import wall_ns
from common.config import SERVICES, Settings
from common.enums import ControlCmd
from zerotick.control import ControlError, send_control
from zerotick.top.promtext import Metrics, parse

T = TypeVar("T")

# orders asked of execution per scrape: its open orders and this many of the latest
RECENT_ORDERS = 50
MAX_METRICS_BYTES = 4 << 20


@dataclass(frozen=True)
class Probe:
    """What one service answered (None and an error text where it did not)."""

    service: str
    metrics: Metrics | None = None
    metrics_error: str = ""
    status: dict[str, Any] | None = None
    status_error: str = ""


@dataclass(frozen=True)
class Snapshot:
    taken_s: float  # monotonic clock: windows are differences of these
    wall_ns: int
    probes: dict[str, Probe] = field(default_factory=dict)
    orders: list[dict[str, Any]] | None = None
    orders_error: str = ""
    positions: dict[str, dict[str, str]] | None = None
    positions_error: str = ""


def metrics_url(settings: Settings, service: str) -> str | None:
    """Where ``service`` serves /metrics; None when metrics are off."""
    port = settings.metrics.port(service)
    if not port:
        return None
    host = settings.metrics.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/metrics"


def fetch_metrics(url: str, timeout_s: float) -> Metrics:
    """Raises OSError or ValueError when the endpoint does not answer with readable metrics."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout_s) as resp:
        body = resp.read(MAX_METRICS_BYTES + 1)
    if len(body) > MAX_METRICS_BYTES:
        raise ValueError(f"metrics larger than {MAX_METRICS_BYTES} bytes")
    return parse(body.decode("utf-8", errors="replace"))


def _attempt(fn: Callable[[], T]) -> tuple[T | None, str]:
    try:
        return fn(), ""
    except (OSError, ValueError, ControlError, urllib.error.URLError) as exc:
        return None, str(exc) or type(exc).__name__
    except Exception as exc:  # a scrape must never take the dashboard down
        return None, f"{type(exc).__name__}: {exc}"


class Collector:
    """Takes snapshots; one thread per request, each bounded by ``timeout_s``."""

    def __init__(self, settings: Settings, timeout_s: float = 0.5) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=2 * len(SERVICES) + 2, thread_name_prefix="zt-top")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _control(self, service: str, cmd: str, args: dict[str, str] | None = None) -> Any:
        return send_control(self.settings, service, cmd, args, timeout_ms=int(self.timeout_s * 1000))

    def _metrics(self, service: str) -> Metrics:
        url = metrics_url(self.settings, service)
        if url is None:
            raise ValueError("metrics off (metrics.base_port = 0)")
        return fetch_metrics(url, self.timeout_s)

    def take(self) -> Snapshot:
        taken_s, now_ns = time.monotonic(), wall_ns()
        submit = self._pool.submit
        metrics = {s: submit(_attempt, lambda s=s: self._metrics(s)) for s in SERVICES}
        status = {s: submit(_attempt, lambda s=s: self._control(s, ControlCmd.STATUS)) for s in SERVICES}
        orders = submit(
            _attempt, lambda: self._control("execution", ControlCmd.ORDERS, {"limit": str(RECENT_ORDERS)})
        )
        positions = submit(_attempt, lambda: self._control("execution", ControlCmd.POSITIONS))
        probes = {}
        for s in SERVICES:
            m, m_err = metrics[s].result()
            st, st_err = status[s].result()
            probes[s] = Probe(
                s, m, m_err, st if isinstance(st, dict) else None, st_err or ("" if st else "no status")
            )
        order_docs, orders_err = orders.result()
        pos_doc, pos_err = positions.result()
        return Snapshot(
            taken_s=taken_s,
            wall_ns=now_ns,
            probes=probes,
            orders=order_docs if isinstance(order_docs, list) else None,
            orders_error=orders_err,
            positions=_positions(pos_doc),
            positions_error=pos_err,
        )


def _positions(doc: Any) -> dict[str, dict[str, str]] | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("positions"), dict):
        return None
    return {str(k): v for k, v in doc["positions"].items() if isinstance(v, dict)}
