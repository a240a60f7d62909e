"""Alpaca-shaped API errors: every error body is ``{"code": <int>, "message": <str>, ...context}``."""

from __future__ import annotations

from typing import Any

# Alpaca's 8-digit error codes, by meaning.
CODE_VALIDATION = 40010001
CODE_UNAUTHORIZED = 40110000
CODE_FORBIDDEN = 40310000
CODE_NOT_FOUND = 40410000
CODE_UNPROCESSABLE = 42210000
CODE_RATE_LIMIT = 42910000
CODE_INTERNAL = 50010000
CODE_GATEWAY_TIMEOUT = 50410000


class ApiError(Exception):
    """Raised anywhere in the trading side; the REST layer turns it into an HTTP response."""

    def __init__(self, status: int, code: int, message: str, **context: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.context = context

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.context}


def validation(message: str, **context: Any) -> ApiError:
    return ApiError(422, CODE_VALIDATION, message, **context)


def unprocessable(message: str, **context: Any) -> ApiError:
    return ApiError(422, CODE_UNPROCESSABLE, message, **context)


def forbidden(message: str, **context: Any) -> ApiError:
    return ApiError(403, CODE_FORBIDDEN, message, **context)


def not_found(message: str) -> ApiError:
    return ApiError(404, CODE_NOT_FOUND, message)


def unauthorized() -> ApiError:
    return ApiError(401, CODE_UNAUTHORIZED, "request is not authorized")


def rate_limited() -> ApiError:
    return ApiError(429, CODE_RATE_LIMIT, "rate limit exceeded")


def injected(status: int) -> ApiError:
    """The body a fault-injected reply carries."""
    if status == 429:
        return rate_limited()
    if status == 504:
        return ApiError(504, CODE_GATEWAY_TIMEOUT, "gateway timeout")
    return ApiError(status, CODE_INTERNAL, "internal server error")
