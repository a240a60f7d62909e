from __future__ import annotations

import random
from decimal import Decimal

import pytest

from common import fixed, ids
from common.fixed import SCALE


@pytest.mark.parametrize(
    "value, nanos",
    [("190.12", 190_120_000_000), (0.1, 100_000_000), (1, 1_000_000_000), (Decimal("0.000000001"), 1),
     ("-2.5", -2_500_000_000), (65000.01, 65_000_010_000_000)],
)  # fmt: skip
def test_to_fixed(value: object, nanos: int) -> None:
    assert fixed.to_fixed(value) == nanos  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["abc", "nan", "inf", True, ""])
def test_to_fixed_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        fixed.to_fixed(bad)  # type: ignore[arg-type]


def test_to_str_and_back() -> None:
    for s in ["190.12", "0.000000001", "-3", "65000.5", "0"]:
        assert fixed.to_fixed(fixed.to_str(fixed.to_fixed(s))) == fixed.to_fixed(s)
    assert fixed.to_str(190_120_000_000) == "190.12"
    assert fixed.to_str(0) == "0"


def test_to_str_writes_what_decimal_writes() -> None:
    """The string is built with integer arithmetic; Decimal's plain format is the reference."""
    rng = random.Random(7)
    cases = [0, 1, -1, 10, 100, SCALE, -SCALE, 10 * SCALE, 123_400_000_000, -500_000_000, 2**62, -(2**62)]
    cases += [rng.randrange(-(10**20), 10**20) for _ in range(2000)]
    cases += [rng.randrange(1, 10**6) * 10 ** rng.randrange(0, 12) for _ in range(2000)]
    for nanos in cases:
        assert fixed.to_str(nanos) == format(fixed.to_decimal(nanos), "f"), nanos


def test_no_float_drift_when_accumulating() -> None:
    total = 0
    for _ in range(10_000):
        total += fixed.to_fixed("0.1")
    assert fixed.to_decimal(total) == Decimal("1000")


def test_mul_rounds_half_even() -> None:
    assert fixed.mul(fixed.to_fixed("190.12"), fixed.to_fixed("3")) == fixed.to_fixed("570.36")
    assert fixed.mul(1, 500_000_000) == 0  # 0.5 nano rounds to even (0)
    assert fixed.mul(3, 500_000_000) == 2  # 1.5 nano rounds to even (2)


def test_intent_ids_unique_and_client_order_id_deterministic() -> None:
    gen = ids.IntentIds("run1")
    seen = {gen.next() for _ in range(1000)}
    assert len(seen) == 1000
    assert ids.client_order_id("zt", "run1.a") == ids.client_order_id("zt", "run1.a") == "zt-run1.a"
    assert ids.IntentIds().run_id != ""
    with pytest.raises(ValueError):
        ids.client_order_id("zt", "x" * 200)
