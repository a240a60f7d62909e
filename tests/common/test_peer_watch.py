"""Peer liveness from heartbeats: a peer is alive while its heartbeats arrive on its own topic;
a heartbeat on another topic, or naming another service, or from an unconfigured one, proves
nothing and creates no series."""

from __future__ import annotations

from prometheus_client import REGISTRY

from common import topics, wire
from common.clock import mono_ns
from common.peer_watch import PeerWatch


def _hb(service: str) -> wire.Heartbeat:
    return wire.Heartbeat(service=service, pid=1, seq=1, state="ok", last_event_seq=0, ts_ns=1)


def _alive(service: str, peer: str) -> float | None:
    return REGISTRY.get_sample_value("zt_peer_alive", {"service": service, "peer": peer})


def test_peers_alive_from_their_own_heartbeats_only() -> None:
    watch = PeerWatch("pwtest", ("pwtest", "risk", "execution"), dead_after_ms=2000)
    assert watch.peers == ("risk", "execution")  # never itself
    watch.refresh()
    assert (_alive("pwtest", "risk"), _alive("pwtest", "execution")) == (0.0, 0.0)

    watch.on_heartbeats(topics.heartbeat("risk"), [_hb("risk")])
    watch.on_heartbeats(topics.heartbeat("execution"), [_hb("risk")])  # names another service
    watch.on_heartbeats(topics.heartbeat("intruder"), [_hb("intruder")])  # not a configured peer
    watch.refresh()
    assert (_alive("pwtest", "risk"), _alive("pwtest", "execution")) == (1.0, 0.0)
    assert _alive("pwtest", "intruder") is None


def test_a_peer_is_dead_once_its_heartbeats_stop() -> None:
    watch = PeerWatch("pwdead", ("risk",), dead_after_ms=2000)
    watch.on_heartbeats(topics.heartbeat("risk"), [_hb("risk")])
    seen = watch.last_seen_ns["risk"]
    assert watch.alive("risk", seen + 1_999_000_000)
    assert not watch.alive("risk", seen + 2_000_000_000)
    assert watch.alive("risk", mono_ns())
