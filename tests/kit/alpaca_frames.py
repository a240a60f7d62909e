"""Alpaca-shaped msgpack frames, built the way the venue sends them (t as msgpack Timestamp ext -1)."""

from __future__ import annotations

from typing import Any

import msgpack

T_NS = 1_700_000_000_123_456_789


def ts(ns: int = T_NS) -> msgpack.Timestamp:
    return msgpack.Timestamp.from_unix_nano(ns)


def frame(*msgs: Any) -> bytes:
    return msgpack.packb(list(msgs), datetime=False)


def stock_quote(sym: str = "AAPL", bp: float = 190.12, ap: float = 190.14, t: int = T_NS) -> dict[str, Any]:
    return {
        "T": "q",
        "S": sym,
        "bx": "V",
        "bp": bp,
        "bs": 3,
        "ax": "Q",
        "ap": ap,
        "as": 2,
        "c": ["R"],
        "t": ts(t),
        "z": "C",
    }


def stock_trade(sym: str = "AAPL") -> dict[str, Any]:
    return {
        "T": "t",
        "S": sym,
        "i": 52983525029461,
        "x": "V",
        "p": 190.13,
        "s": 100,
        "c": ["@"],
        "t": ts(),
        "z": "C",
    }


def stock_bar(
    sym: str = "AAPL", kind: str = "b", vw: float | None = 190.2, n: int | None = 42
) -> dict[str, Any]:
    return {
        "T": kind,
        "S": sym,
        "o": 190.0,
        "h": 190.5,
        "l": 189.75,
        "c": 190.25,
        "v": 12345,
        "t": ts(),
        "n": n,
        "vw": vw,
    }


def crypto_quote(sym: str = "BTC/USD") -> dict[str, Any]:
    return {"T": "q", "S": sym, "bp": 67000.5, "bs": 0.12345678, "ap": 67001.25, "as": 1.5, "t": ts()}


def crypto_trade(sym: str = "BTC/USD") -> dict[str, Any]:
    return {"T": "t", "S": sym, "p": 67000.75, "s": 0.000123, "t": ts(), "i": 987654, "tks": "B"}


def orderbook(
    sym: str = "BTC/USD",
    bids: list[tuple[float, float]] = (),  # type: ignore[assignment]
    asks: list[tuple[float, float]] = (),  # type: ignore[assignment]
    reset: bool = False,
    t: int = T_NS,
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "T": "o",
        "S": sym,
        "t": ts(t),
        "b": [{"p": p, "s": s} for p, s in bids],
        "a": [{"p": p, "s": s} for p, s in asks],
    }
    if reset:
        msg["r"] = True
    return msg
