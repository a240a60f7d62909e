"""Recording market data for replay: each received frame, back to Alpaca-shaped dicts ("t" as
RFC3339-ns strings), written with ``common.capture.CaptureWriter`` (the format the venue replays)."""

from __future__ import annotations

from pathlib import Path

import msgpack

from common.capture import CaptureWriter
from services.market_data.decode import ns_to_rfc3339


class FrameCapture:
    def __init__(self, path: Path) -> None:
        self._writer = CaptureWriter(path)

    def write(self, feed: str, recv_ns: int, frame: bytes) -> None:
        msgs = msgpack.unpackb(frame, raw=False, timestamp=2, strict_map_key=False)
        if not isinstance(msgs, list):
            return
        out = []
        for m in msgs:
            if isinstance(m, dict):
                if isinstance(m.get("t"), int):
                    m["t"] = ns_to_rfc3339(m["t"])
                out.append(m)
        self._writer.write_frame(feed, recv_ns, out)

    def close(self) -> None:
        self._writer.close()
