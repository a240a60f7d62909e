"""Fixed-point money and quantities: integers scaled by 10**9, exact, no float drift.

Prices and quantities cross the wire and live in positions as ``int`` nanos. Decimal is used at
the edges (REST JSON strings, config). Floats are only ever produced for display or for numba
limit comparisons, never accumulated.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

SCALE = 1_000_000_000
_Q = Decimal(1).scaleb(-9)


def to_fixed(value: str | int | float | Decimal) -> int:
    """Parse a price or quantity into nanos. Floats go through repr, so 0.1 -> 100000000."""
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    try:
        d = (
            value
            if isinstance(value, Decimal)
            else Decimal(repr(value) if isinstance(value, float) else str(value))
        )
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return int((d * SCALE).to_integral_value(rounding=ROUND_HALF_EVEN))


def to_fixed_exact(value: str | int | float | Decimal) -> int:
    """Like :func:`to_fixed`, but a value with more than 9 decimals is refused instead of rounded
    (for configuration: ``1e-10`` must not quietly become 0)."""
    nanos = to_fixed(value)
    given = (
        value
        if isinstance(value, Decimal)
        else Decimal(repr(value) if isinstance(value, float) else str(value))
    )
    if Decimal(nanos) != given * SCALE:
        raise ValueError(f"{value!r} is not exact to 9 decimal places: it would become {to_str(nanos)}")
    return nanos


def to_decimal(nanos: int) -> Decimal:
    return (Decimal(nanos) / SCALE).quantize(_Q).normalize() if nanos else Decimal(0)


def to_str(nanos: int) -> str:
    """Plain decimal string, no exponent, no trailing zeros (Alpaca style): integer arithmetic only."""
    whole, frac = divmod(-nanos if nanos < 0 else nanos, SCALE)
    sign = "-" if nanos < 0 else ""
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:09d}".rstrip("0")


def to_float(nanos: int) -> float:
    return nanos / SCALE


def mul(price_nanos: int, qty_nanos: int) -> int:
    """Notional in nanos of price*qty, rounded half-even. Exact for Python ints."""
    q, r = divmod(price_nanos * qty_nanos, SCALE)
    if 2 * r > SCALE or (2 * r == SCALE and q % 2):
        q += 1
    return q
