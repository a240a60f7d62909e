"""A secret the venue echoes back (an auth error quoting the key) never leaves the process: not in a
FeedStatus or OrderUpdate on ZeroMQ, not in a Reply, not in a status dict, not in a metric label."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import generate_latest

from common import log, wire
from common.enums import FeedState
from common.metrics import RedactingRegistry
from services.market_data.feed import Feed
from services.market_data.normalize import Normalizer

KEY = "PKSECRETKEYID12345678"
SECRET = "sEcReT-0123456789abcdefghijklmnopqrstuv"


@pytest.fixture(autouse=True)
def secrets() -> Iterator[None]:
    log.register_secret(KEY)
    log.register_secret(SECRET)
    yield
    log.forget_secrets()


def test_a_key_echoed_by_the_venue_is_masked_in_the_published_feed_status() -> None:
    frames: list[bytes] = []
    feed = Feed(
        "stocks", "ws://venue", (KEY, SECRET), {"quotes": ["AAPL"]},
        lambda topic, msgs: frames.append(wire.encode_batch(topic, msgs)), Normalizer(8, 1, "stocks"), 0.1, 1.0,
    )  # fmt: skip
    feed.set_state(FeedState.ERROR, f"402 auth failed: key {KEY} secret {SECRET}")  # what the venue said
    assert frames and all(KEY.encode() not in f and SECRET.encode() not in f for f in frames)
    _, msgs = wire.decode_batch(frames[-1])
    assert msgs[0].detail == f"402 auth failed: key {'*' * len(KEY)} secret {'*' * len(SECRET)}"


def test_replies_and_order_updates_are_masked_and_still_decode() -> None:
    update = wire.OrderUpdate(
        seq=1, client_order_id="zt-1", venue_order_id="v", strategy="s", symbol="AAPL", side="buy",
        status="rejected", event="rejected", qty=1, filled_qty=0, filled_avg_px=0, limit_px=1,
        reason=f"403 forbidden for {KEY}", venue_ns=1, recv_ns=1,
    )  # fmt: skip
    frame = wire.encode_batch(b"ex.ou.AAPL", [update])
    assert KEY.encode() not in frame
    assert wire.decode_batch(frame)[1][0].reason == "403 forbidden for " + "*" * len(KEY)
    reply = wire.Reply(ok=False, detail=f"venue: {SECRET}", data=wire.encode_list([update]))
    body = wire.encode(reply)
    assert SECRET.encode() not in body and KEY.encode() not in body
    back = wire.decode(body)
    assert isinstance(back, wire.Reply) and back.detail == "venue: " + "*" * len(SECRET)
    assert wire.decode_list(back.data)[0].reason.endswith("*" * len(KEY))  # the nested list still decodes


def test_status_dicts_and_metric_labels_are_masked() -> None:
    status: dict[str, Any] = {"feeds": {"stocks": {"detail": f"auth {KEY}", "frames": 3}}}
    assert log.redact_obj(status) == {"feeds": {"stocks": {"detail": "auth ***", "frames": 3}}}
    registry = CollectorRegistry()
    Counter("zt_test_errors_total", "t", ["reason"], registry=registry).labels(f"bad key {KEY}").inc()
    text = generate_latest(RedactingRegistry(registry))  # type: ignore[arg-type]
    assert KEY.encode() not in text and b'reason="bad key ***"' in text
