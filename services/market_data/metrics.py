"""market_data's own Prometheus metrics (shared ones live in common/metrics.py)."""

from __future__ import annotations

from prometheus_client import Counter
from prometheus_client import Enum as PromEnum

from common.enums import FeedState, RangeReason
from common.metrics import AgeGauge

FRAMES = Counter("zt_md_frames_total", "WebSocket frames received from the venue", ["feed"])
MESSAGES = Counter("zt_md_messages_total", "Venue messages normalized, by type", ["feed", "type"])
MALFORMED = Counter("zt_md_malformed_total", "Frames or messages that could not be used", ["feed", "what"])
REJECTED = Counter(
    "zt_md_rejected_total", "Venue messages rejected for a value out of range, by reason", ["feed", "reason"]
)
BOOK_LEVELS_DROPPED = Counter(
    "zt_md_book_levels_dropped_total",
    "L2 book levels dropped because a side held market_data.book_capacity levels",
    ["feed"],
)
FEED_STATE = PromEnum(
    "zt_md_feed_state",
    "Feed state (one series per state, 1 = current)",
    ["feed"],
    states=list(FeedState.values()),
)
LAST_QUOTE_AGE = AgeGauge(
    "zt_md_last_quote_age_seconds",
    "Now minus the exchange time of the last quote published, per configured symbol",
    "symbol",
)


def declare_feed_series(feed: str) -> None:
    """Every rejection reason's series exists from the start (0) for ``feed``."""
    for reason in RangeReason:
        REJECTED.labels(feed, reason)
