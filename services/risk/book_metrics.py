"""Positions, P&L and equity as risk shows them on /metrics, computed exactly from the position
books (``common.positions``) and rendered as floats only in the gauges.

Books: ``all`` is the account's (risk's own book: execution's snapshot plus every fill since);
each configured strategy has its own book: execution's book of the fills carrying its name (its
snapshot, when risk starts and after execution restarts) plus every fill since, so a restarted risk
shows the same books (unconfigured strategies, and orders zerotick adopted, share ``other``).
Marks: the mid of the latest quote. A position without a quote is valued at its entry price and
shows no unrealized P&L. Model equity: the account's cash (from the venue's latest account
snapshot) plus every position at its mark; venue equity: that snapshot's own figure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from common import wire
from common.fixed import SCALE, to_float
from common.metric_labels import ALL, LabelFold
from common.positions import PositionBook
from services.risk.metrics import EQUITY, PNL_REALIZED, PNL_UNREALIZED, POSITION_QTY, POSITION_VALUE

Mid = Callable[[str], Fraction | None]  # symbol -> mid of its latest quote in price nanos, None: no quote
SeriesKey = tuple[str, str]  # (symbol label, strategy label)


class StrategyBooks:
    """One exact position book per configured strategy, plus ``other``."""

    def __init__(self, fold: LabelFold) -> None:
        self._fold = fold
        self.books: dict[str, PositionBook] = {}

    def load(self, strategies: list[wire.StrategyPositions]) -> None:
        """Execution's per-strategy positions at its snapshot replace ours."""
        self.books = {}
        for sp in strategies:
            book = self._book(sp.strategy)
            for p in sp.positions:  # strategies folded into one label add up
                book.get(p.symbol).add_from_venue(p.qty, p.avg_px, p.realized_pnl)

    def on_fill(self, fill: wire.Fill) -> None:
        self._book(fill.strategy).apply_fill(fill.symbol, fill.side, fill.qty, fill.px)

    def _book(self, strategy: str) -> PositionBook:
        label = self._fold(strategy)
        book = self.books.get(label)
        if book is None:
            book = self.books[label] = PositionBook()
        return book


@dataclass
class BookFigures:
    """Exact figures: quantities in nanos, money in nanos (rounded half-even from exact rationals)."""

    position_qty: dict[SeriesKey, int] = field(default_factory=dict)
    realized: dict[SeriesKey, int] = field(default_factory=dict)
    unrealized: dict[SeriesKey, int] = field(default_factory=dict)
    position_value: dict[str, int] = field(default_factory=dict)  # the account's, by symbol label
    model_equity: int | None = None  # None until the venue's cash is known


def _nanos(x: Fraction) -> int:
    """Money in nanos * nanos (qty * px) -> money nanos, half-even."""
    return round(x / SCALE)


def book_figures(
    account: PositionBook,
    strategies: Mapping[str, PositionBook],
    mid: Mid,
    fold_symbol: LabelFold,
    cash: int | None,
) -> BookFigures:
    qty: defaultdict[SeriesKey, int] = defaultdict(int)
    realized: defaultdict[SeriesKey, Fraction] = defaultdict(Fraction)
    unrealized: defaultdict[SeriesKey, Fraction] = defaultdict(Fraction)
    value: defaultdict[str, Fraction] = defaultdict(Fraction)
    for symbol in fold_symbol.configured:  # the account's series exist from the start
        value[symbol] = Fraction(0)
        key = (symbol, ALL)
        qty[key], realized[key], unrealized[key] = 0, Fraction(0), Fraction(0)
    for strategy, book in ((ALL, account), *strategies.items()):
        for pos in book.all():
            key = (fold_symbol(pos.symbol), strategy)
            m = mid(pos.symbol)
            qty[key] += pos.qty
            realized[key] += pos.realized
            unrealized[key] += m * pos.qty - pos.cost if m is not None and pos.qty else Fraction(0)
            if strategy == ALL:
                value[key[0]] += m * pos.qty if m is not None else pos.cost
    figures = BookFigures(
        position_qty=dict(qty),
        realized={k: _nanos(v) for k, v in realized.items()},
        unrealized={k: _nanos(v) for k, v in unrealized.items()},
        position_value={k: _nanos(v) for k, v in value.items()},
    )
    if cash is not None:
        figures.model_equity = cash + _nanos(sum(value.values(), Fraction(0)))
    return figures


class BookGauges:
    """Sets the gauges from figures; a series once shown keeps being set (to 0 when it is gone)."""

    def __init__(self) -> None:
        self._shown: set[SeriesKey] = set()

    def show(self, figures: BookFigures, venue_equity: int | None) -> None:
        keys = self._shown | figures.position_qty.keys()
        for symbol, strategy in keys:
            key = (symbol, strategy)
            POSITION_QTY.labels(symbol, strategy).set(to_float(figures.position_qty.get(key, 0)))
            PNL_REALIZED.labels(symbol, strategy).set(to_float(figures.realized.get(key, 0)))
            PNL_UNREALIZED.labels(symbol, strategy).set(to_float(figures.unrealized.get(key, 0)))
        self._shown = keys
        for symbol, nanos in figures.position_value.items():
            POSITION_VALUE.labels(symbol).set(to_float(nanos))
        if figures.model_equity is not None:
            EQUITY.labels("model").set(to_float(figures.model_equity))
        if venue_equity is not None:
            EQUITY.labels("venue").set(to_float(venue_equity))
