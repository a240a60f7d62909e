"""market_data's own Prometheus metrics (shared ones live in common/metrics.py)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from common.enums import FeedState

FRAMES = Counter("zt_md_frames_total", "WebSocket frames received from the venue", ["feed"])
MESSAGES = Counter("zt_md_messages_total", "Venue messages normalized, by type", ["feed", "type"])
MALFORMED = Counter("zt_md_malformed_total", "Frames or messages that could not be used", ["feed", "what"])
REJECTED = Counter(
    "zt_md_rejected_total", "Venue messages rejected for a value out of range, by reason", ["feed", "reason"]
)
RECONNECTS = Counter("zt_md_reconnects_total", "Stream reconnect attempts, by cause", ["feed", "reason"])
FEED_STATE = Gauge(
    "zt_md_feed_state",
    "Feed state: 0 disconnected, 1 connecting, 2 connected, 3 subscribed, 4 stale, 5 error",
    ["feed"],
)
STATE_CODES = {
    FeedState.DISCONNECTED: 0,
    FeedState.CONNECTING: 1,
    FeedState.CONNECTED: 2,
    FeedState.SUBSCRIBED: 3,
    FeedState.STALE: 4,
    FeedState.ERROR: 5,
}
