"""Structured logging (one JSON object per line) with secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import orjson

_SECRET_KEYS = re.compile(r"(secret|password|token|key_id|api[-_]?key|authorization)", re.I)
_registered_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Any log line containing this exact value gets it masked."""
    if value and len(value) >= 4:
        _registered_secrets.add(value)


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
