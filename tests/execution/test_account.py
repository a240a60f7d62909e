"""The venue's account reply: parsed exactly, refused (never half-used) when malformed or absurd."""

from __future__ import annotations

from typing import Any

import pytest

from common.fixed import to_fixed
from services.execution.venue.account import AccountParseError, parse_account

GOOD = {
    "cash": "1000.5",
    "buying_power": "4002",
    "equity": "1000.5",
    "last_equity": "990",
    "status": "ACTIVE",
}


def test_a_good_account_is_parsed_exactly() -> None:
    a = parse_account(GOOD, 7)
    assert (a.cash, a.buying_power, a.equity, a.last_equity, a.ts_ns) == (
        to_fixed("1000.5"), to_fixed("4002"), to_fixed("1000.5"), to_fixed("990"), 7,
    )  # fmt: skip


@pytest.mark.parametrize(
    "doc",
    [
        [],
        None,
        {k: v for k, v in GOOD.items() if k != "buying_power"},
        {**GOOD, "buying_power": "lots"},
        {**GOOD, "buying_power": "NaN"},
        {**GOOD, "buying_power": True},
        {**GOOD, "equity": "1e40"},
        {**GOOD, "cash": None},
    ],
)
def test_a_malformed_or_absurd_account_is_refused(doc: Any) -> None:
    with pytest.raises(AccountParseError):
        parse_account(doc, 1)
