"""Failures of the links to the venue, classified (``common.enums.LinkFailure``) and said in one line
an operator can act on, e.g. "Alpaca rejected the API keys (HTTP 401) at https://paper-api...; check
APCA_API_KEY_ID/APCA_API_SECRET_KEY" or "cannot resolve paper-api.alpaca.markets (DNS)".

:class:`LinkHealth` is one link's record: every failure is counted by class, logged when the class
changes (and then at most once a minute with the number of repeats), and kept for ``status``. An
auth rejection is not retried in a tight loop: callers wait :data:`AUTH_RETRY_S` (the keys are read
at start, so a fix needs a restart anyway; the slow retry only covers a venue-side glitch).
"""

from __future__ import annotations

import logging
import socket
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from common.clock import mono_ns, wall_ns
from common.enums import LinkFailure
from common.log import redact
from common.metrics import LINK_FAILURES
from common.ratelog import REMINDER_S, Clock, ConditionLog

AUTH_RETRY_S = 60.0
KEY_HINT = "check APCA_API_KEY_ID/APCA_API_SECRET_KEY (sim.key_id/sim.secret_key for the simulator)"


@dataclass(frozen=True)
class Failure:
    kind: LinkFailure
    message: str  # one line, no secret
    ts_ns: int

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "message": self.message, "ts_ns": self.ts_ns}


def classify(exc: BaseException) -> LinkFailure | None:
    """The class of a network failure, or None for an exception that is not one."""
    kind = getattr(exc, "link_failure", None)
    if isinstance(kind, LinkFailure):
        return kind
    if isinstance(exc, InvalidStatus):
        return LinkFailure.AUTH_REJECTED if exc.response.status_code == 401 else LinkFailure.HTTP_ERROR
    if isinstance(exc, InvalidHandshake | InvalidURI):
        return LinkFailure.PROTOCOL_ERROR
    if isinstance(exc, ConnectionClosed):
        return LinkFailure.CONNECTION_LOST
    return classify_os_error(exc)


def classify_os_error(exc: BaseException) -> LinkFailure | None:
    if isinstance(exc, TimeoutError):
        return LinkFailure.TIMEOUT
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return LinkFailure.TLS_ERROR
    if isinstance(exc, socket.gaierror):
        return LinkFailure.DNS_FAILURE
    if isinstance(exc, ConnectionRefusedError):
        return LinkFailure.CONNECTION_REFUSED
    if isinstance(exc, OSError):
        # several addresses all refusing come back as one OSError("Multiple exceptions: ...")
        return (
            LinkFailure.CONNECTION_REFUSED
            if "Connect call failed" in str(exc)
            else LinkFailure.CONNECTION_LOST
        )
    return None


def _endpoint(url: str) -> tuple[str, str]:
    """(host, host:port) of ``url``."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or url
        port = parts.port or {"https": 443, "wss": 443, "http": 80, "ws": 80}.get(parts.scheme, 0)
    except ValueError:
        return url, url
    shown = f"[{host}]" if ":" in host else host
    return host, f"{shown}:{port}" if port else shown


def _venue_name(host: str) -> str:
    return (
        "Alpaca" if host == "alpaca.markets" or host.endswith(".alpaca.markets") else f"the venue at {host}"
    )


def describe(kind: LinkFailure, url: str, detail: str = "") -> str:
    """The one line for a failure of ``kind`` talking to ``url``; ``detail`` is what the venue or the
    operating system said (never a secret: it goes through the log redaction)."""
    host, hostport = _endpoint(url)
    origin = url.split("?", 1)[0]
    why = f": {detail}" if detail else ""
    match kind:
        case LinkFailure.AUTH_REJECTED:
            said = f" ({detail})" if detail else ""
            text = f"{_venue_name(host)} rejected the API keys{said} at {origin}; {KEY_HINT}"
        case LinkFailure.DNS_FAILURE:
            text = f"cannot resolve {host} (DNS){why}"
        case LinkFailure.CONNECTION_REFUSED:
            text = f"connection refused by {hostport} ({origin}): nothing listens there"
        case LinkFailure.CONNECTION_LOST:
            text = f"connection to {hostport} lost{why}"
        case LinkFailure.TIMEOUT:
            text = f"no answer from {hostport} in time (timeout){why}"
        case LinkFailure.TLS_ERROR:
            text = f"TLS with {hostport} failed{why}"
        case LinkFailure.HTTP_ERROR:
            text = f"{_venue_name(host)} answered {detail or 'an HTTP error'} at {origin}"
        case LinkFailure.PROTOCOL_ERROR:
            text = f"{hostport} did not answer in the expected protocol{why}"
        case _:
            text = f"{_venue_name(host)} refused the stream{why}"
    return redact(text)[:400]


def os_detail(exc: BaseException) -> str:
    """A short, secret-free description of a low-level failure."""
    if isinstance(exc, socket.gaierror):
        return exc.strerror or ""
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or type(exc).__name__)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, InvalidStatus):
        return f"HTTP {exc.response.status_code} on the WebSocket upgrade"
    return type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {str(exc)[:160]}"


class LinkHealth:
    """One link's failures: counted by class, logged on change (plus a reminder), kept for status."""

    def __init__(
        self,
        service: str,
        link: str,
        url: str,
        logger: logging.Logger,
        reminder_s: float = REMINDER_S,
        clock: Clock = mono_ns,
    ) -> None:
        self.service, self.link, self.url = service, link, url
        self.last: Failure | None = None  # the current failure; None while the link works
        self.failures = 0
        self._log = ConditionLog(logger, reminder_s, clock)

    @property
    def auth_rejected(self) -> bool:
        return self.last is not None and self.last.kind is LinkFailure.AUTH_REJECTED

    def retry_delay(self, normal_s: float) -> float:
        """How long to wait before the next attempt: long after an auth rejection."""
        return max(normal_s, AUTH_RETRY_S) if self.auth_rejected else normal_s

    def failed(self, kind: LinkFailure, detail: str = "") -> Failure:
        failure = Failure(kind, describe(kind, self.url, detail), wall_ns())
        self.last = failure
        self.failures += 1
        LINK_FAILURES.labels(self.service, self.link, kind.value).inc()
        level = logging.ERROR if kind is LinkFailure.AUTH_REJECTED else logging.WARNING
        self._log.report(kind.value, failure.message, level, link=self.link, failure=kind.value)
        return failure

    def failed_exc(self, exc: BaseException) -> Failure | None:
        """Record ``exc`` if it is a network failure (None otherwise)."""
        kind = classify(exc)
        if kind is None:
            return None
        detail = getattr(exc, "detail", None)
        return self.failed(kind, detail if isinstance(detail, str) else os_detail(exc))

    def ok(self) -> None:
        if self.last is not None:
            self._log.clear(f"{self.link} link to {_endpoint(self.url)[1]} works again", link=self.link)
            self.last = None

    def status(self) -> dict[str, Any] | None:
        return None if self.last is None else {**self.last.as_dict(), "failures": self.failures}
