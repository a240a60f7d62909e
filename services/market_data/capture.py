"""Adapter to ``common.capture.CaptureWriter``: frames back to Alpaca-shaped dicts ("t" as RFC3339-ns)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import msgpack

from services.market_data.decode import ns_to_rfc3339


class _Writer(Protocol):
    def write_frame(self, feed: str, recv_ns: int, msgs: list[dict[str, Any]]) -> None: ...
    def close(self) -> None: ...


class FrameCapture:
    def __init__(self, path: Path) -> None:
        from common.capture import CaptureWriter  # written by another engineer; only needed with capture on

        self._writer: _Writer = CaptureWriter(path)

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
