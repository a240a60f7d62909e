"""Structured logging (one JSON object per line) with secrets redacted, and the redaction itself.

A secret registered here (the venue's keys, the sim's secret) is masked in log lines, in status
dicts (``redact_obj``), in metric label values (``common.metrics``) and in every frame encoded for
ZeroMQ (``redact_bytes``, called by ``common.wire``): the venue may echo a key back in an error
text that ends up in ``FeedStatus.detail``, ``OrderUpdate.reason`` or ``Reply.detail``."""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson

_SECRET_KEYS = re.compile(r"(secret|password|token|key_id|api[-_]?key|authorization)", re.I)
_registered_secrets: set[str] = set()
# Masked inside encoded frames by a same-length run of '*', so msgpack's length prefixes (and JSON)
# stay valid. Only secrets long enough never to occur by chance inside binary numbers.
_secret_bytes: tuple[bytes, ...] = ()
MIN_BYTES_SECRET = 8


def register_secret(value: str | None) -> None:
    """Any log line, status, metric label or ZeroMQ frame containing this exact value gets it masked."""
    global _secret_bytes
    if value and len(value) >= 4:
        _registered_secrets.add(value)
        raw = value.encode()
        if len(raw) >= MIN_BYTES_SECRET and raw not in _secret_bytes:
            _secret_bytes = (*_secret_bytes, raw)


def forget_secrets() -> None:
    """Tests only: start again with no registered secret."""
    global _secret_bytes
    _registered_secrets.clear()
    _secret_bytes = ()


def redact_bytes(frame: bytes) -> bytes:
    """``frame`` with every registered secret overwritten in place (same length)."""
    for s in _secret_bytes:
        if s in frame:
            frame = frame.replace(s, b"*" * len(s))
    return frame


def redact_obj(obj: Any) -> Any:
    """Registered secrets masked in every string of a JSON-like value (keys kept as they are)."""
    if not _registered_secrets:
        return obj
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v) for v in obj]
    return obj


def redact(text: str) -> str:
    for s in _registered_secrets:
        if s in text:
            text = text.replace(s, "***")
    return text


def _scrub(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: ("***" if _SECRET_KEYS.search(str(k)) else _scrub(v)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_scrub(v) for v in obj]
    if isinstance(obj, str):
        return redact(obj)
    return obj


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if fields:
            doc.update(_scrub(fields))
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    """One readable line: ``2025-01-02T03:04:05.678Z INFO risk zerotick.ops: risk reject symbol=AAPL ...``"""

    converter = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in _scrub(fields).items())
        return redact(text)


def setup_logging(service: str, level: str = "INFO", json_format: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if json_format else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("websockets", "aiohttp.access", "asyncio", "numba"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def kv(**fields: Any) -> dict[str, Any]:
    """``log.info("order sent", extra=kv(coid=..., qty=...))``"""
    return {"fields": fields}
