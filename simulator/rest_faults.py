"""Fault injection for the trading REST API, on the next N matching calls:

* ``status``: answer with this error status instead of the real reply; with ``after_apply`` the
  request takes effect first (the order is placed but the reply is lost), else it never does.
* ``delay_ms``: hold the call this long. With a ``status`` the error comes after the delay. Without
  one the real reply comes after the delay, and ``after_apply`` says when the request takes effect:
  at once (true: placed now, the reply is late) or only after the delay (false: the venue got it
  late, as when a request sits in a proxy). The request takes effect even if the client gave up.
* ``path_prefix`` / ``method``: only calls on paths starting with the prefix / with that method.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RestFault:
    status: int | None  # None: the real reply (only with a delay)
    remaining: int
    after_apply: bool
    path_prefix: str | None
    delay_ms: float = 0.0
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.path_prefix and not path.startswith(self.path_prefix):
            return False
        return self.method is None or method.upper() == self.method


class RestFaults:
    def __init__(self) -> None:
        self._fault: RestFault | None = None

    def arm(
        self,
        status: int | None,
        count: int,
        after_apply: bool = False,
        path_prefix: str | None = None,
        delay_ms: float = 0.0,
        method: str | None = None,
    ) -> None:
        if status is None and delay_ms <= 0:
            raise ValueError("a REST fault needs an error status, a delay, or both")
        self._fault = RestFault(
            status, count, after_apply, path_prefix, delay_ms, method.upper() if method else None
        )

    def clear(self) -> None:
        self._fault = None

    def take(self, path: str, method: str = "GET") -> RestFault | None:
        """The fault to apply to this call, if any; consumes one of the armed count."""
        fault = self._fault
        if fault is None or not fault.matches(method, path):
            return None
        fault.remaining -= 1
        if fault.remaining <= 0:
            self._fault = None
        return fault

    @property
    def pending(self) -> int:
        return self._fault.remaining if self._fault else 0
