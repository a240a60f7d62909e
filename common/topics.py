"""Topic names. A topic is a byte prefix; SUB sockets filter on prefixes.

md.q.<SYM>  Quote        md.t.<SYM> Trade     md.b.<SYM> Bar     md.o.<SYM> Book
md.fs.<feed> FeedStatus
ex.ou.<SYM> OrderUpdate  ex.f.<SYM> Fill   (sequenced; gaps are replayed from execution)
rk.rd       RiskDecision rk.p.<SYM> Position   rk.ts TradingStateChanged
ac.account  Account (execution polls the venue)
sys.hb.<service> Heartbeat
"""

from __future__ import annotations

MD = b"md."
MD_QUOTE = b"md.q."
MD_TRADE = b"md.t."
MD_BAR = b"md.b."
MD_BOOK = b"md.o."
MD_FEED = b"md.fs."
EX = b"ex."
EX_UPDATE = b"ex.ou."
EX_FILL = b"ex.f."
ACCOUNT = b"ac.account"  # not under ex.: those are the sequenced order events
RK_DECISION = b"rk.rd"
RK_POSITION = b"rk.p."
RK_TRADING_STATE = b"rk.ts"
HEARTBEAT = b"sys.hb."


def sym(prefix: bytes, symbol: str) -> bytes:
    return prefix + symbol.encode()


def heartbeat(service: str) -> bytes:
    return HEARTBEAT + service.encode()
