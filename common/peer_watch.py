"""Which peer services are alive, from their heartbeats (``sys.hb.<service>``):
``zt_peer_alive{service,peer}`` is 1 while the peer's heartbeats arrive, 0 once none came for
``zmq.peer_dead_after_ms``. The peer is named by the topic the heartbeat came on, and only the
configured services are peers: a frame's content never creates a label."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from common import topics, wire
from common.clock import mono_ns
from common.metrics import PEER_ALIVE


class PeerWatch:
    def __init__(self, service: str, peers: Iterable[str], dead_after_ms: int) -> None:
        self.service = service
        self.peers = tuple(p for p in peers if p != service)
        self._by_topic = {topics.heartbeat(p): p for p in self.peers}
        self._dead_after_ns = dead_after_ms * 1_000_000
        self.last_seen_ns: dict[str, int] = {}
        self._gauges = {p: PEER_ALIVE.labels(service, p) for p in self.peers}

    def on_heartbeats(self, topic: bytes, msgs: list[Any]) -> None:
        peer = self._by_topic.get(topic)
        if peer is not None and any(isinstance(m, wire.Heartbeat) and m.service == peer for m in msgs):
            self.last_seen_ns[peer] = mono_ns()

    def alive(self, peer: str, now_ns: int | None = None) -> bool:
        seen = self.last_seen_ns.get(peer, 0)
        now = mono_ns() if now_ns is None else now_ns
        return seen > 0 and now - seen < self._dead_after_ns

    def refresh(self) -> None:
        now = mono_ns()
        for peer, gauge in self._gauges.items():
            gauge.set(1 if self.alive(peer, now) else 0)
