"""The per-order state machine: forward-only status, sticky terminals, exactly one fill per cum increase."""

from __future__ import annotations

from typing import Any

import pytest

from common.fixed import to_fixed
from services.execution.orders.order_state import (
    SUBMIT_FAILED,
    OrderParseError,
    TrackedOrder,
    VenueOrder,
    derive_fill_px,
    parse_ts_ns,
)

OID = "0d9d1f0e-6a4f-4f7b-9b8c-1a2b3c4d5e6f"
NEW_OID = "7e1f4a2b-1111-4c2d-9e8f-0a1b2c3d4e5f"


def doc(status: str, filled: str = "0", avg: str | None = None, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": OID,
        "client_order_id": "zt-run.1",
        "symbol": "AAPL",
        "side": "buy",
        "status": status,
        "qty": "100",
        "filled_qty": filled,
        "filled_avg_price": avg,
        "limit_price": "190.5",
        "updated_at": "2024-01-02T15:00:00.000000123Z",
    }
    d.update(extra)
    return d


def snap(status: str, filled: str = "0", avg: str | None = None, **extra: Any) -> VenueOrder:
    return VenueOrder.from_json(doc(status, filled, avg, **extra))


def order() -> TrackedOrder:
    return TrackedOrder(
        client_order_id="zt-run.1", symbol="AAPL", side="buy", qty=to_fixed(100), strategy="s1"
    )


def test_partial_fills_then_fill_produce_one_fill_per_increase_with_exact_prices() -> None:
    o = order()
    assert o.apply(snap("new")).fill is None
    t1 = o.apply(snap("partially_filled", "10", "100"))
    assert t1.fill is not None and (t1.fill.qty, t1.fill.px) == (to_fixed(10), to_fixed(100))
    # 30 at avg 100.5 after 10 at 100 -> the 20 increment traded at (100.5*30 - 100*10)/20 = 100.75
    t2 = o.apply(snap("partially_filled", "30", "100.5"))
    assert t2.fill is not None and (t2.fill.qty, t2.fill.px) == (to_fixed(20), to_fixed("100.75"))
    t3 = o.apply(snap("filled", "100", "101"))
    # (101*100 - 100.5*30) / 70 = 101.2142857142857142... -> rounded half-even at 1e-9
    assert t3.fill is not None and t3.fill.qty == to_fixed(70)
    assert t3.fill.px == to_fixed("101.214285714")
    assert o.status == "filled" and o.filled_qty == to_fixed(100) and o.terminal


def test_duplicate_update_yields_no_second_fill() -> None:
    o = order()
    o.apply(snap("new"))
    first = o.apply(
        snap("partially_filled", "40", "99.5"), "partial_fill", to_fixed(40), to_fixed("99.5"), "x1"
    )
    again = o.apply(
        snap("partially_filled", "40", "99.5"), "partial_fill", to_fixed(40), to_fixed("99.5"), "x1"
    )
    assert first.fill is not None and first.fill.exec_id == "x1"
    assert again.fill is None and not again.changed


def test_fill_before_new_keeps_filled() -> None:
    o = order()
    t = o.apply(snap("filled", "100", "190"), "fill")
    assert t.fill is not None and t.fill.qty == to_fixed(100)
    late_new = o.apply(snap("new"), "new")
    assert o.status == "filled" and late_new.fill is None and not late_new.changed


def test_partial_fill_after_fill_changes_nothing() -> None:
    o = order()
    o.apply(snap("new"))
    o.apply(snap("filled", "100", "190"), "fill")
    late = o.apply(snap("partially_filled", "50", "189"), "partial_fill", to_fixed(50), to_fixed(189))
    assert late.fill is None and o.filled_qty == to_fixed(100) and o.status == "filled"


def test_skipped_partial_is_not_lost() -> None:
    o = order()
    o.apply(snap("partially_filled", "10", "100"), "partial_fill", to_fixed(10), to_fixed(100))
    # the 20 @ 101 partial was never seen; the next event is the final 70 @ 102 with cumulative fields
    t = o.apply(snap("filled", "100", "101.5"), "fill", to_fixed(70), to_fixed(102))
    assert t.fill is not None and t.fill.qty == to_fixed(90)
    # (101.5*100 - 100*10) / 90 = 101.666...: derived from cumulative, not the single execution's price
    assert t.fill.px == derive_fill_px(to_fixed(10), to_fixed(100), to_fixed(100), to_fixed("101.5"))
    assert t.fill.px == to_fixed("101.666666667")


def test_reject_is_terminal() -> None:
    o = order()
    o.apply(snap("pending_new"))
    assert o.apply(snap("rejected"), "rejected").changed
    assert not o.apply(snap("new"), "new").changed
    assert o.status == "rejected" and o.open_qty == 0


def test_replace_old_order_terminal_new_order_tracked_by_its_own_id() -> None:
    old = order()
    old.apply(snap("new"))
    old.apply(snap("pending_replace"), "pending_replace")
    t = old.apply(snap("replaced", replaced_by=NEW_OID), "replaced")
    assert t.changed and old.status == "replaced" and old.replaced_by == NEW_OID and old.terminal
    new = TrackedOrder(client_order_id="zt-run.1-r", symbol="AAPL", side="buy", qty=to_fixed(50))
    new_doc = doc("new", id=NEW_OID, client_order_id="zt-run.1-r", qty="50", replaces=OID)
    new.apply(VenueOrder.from_json(new_doc), "new")
    assert new.status == "new" and new.replaces == OID and new.venue_order_id == NEW_OID
    with pytest.raises(ValueError):
        old.apply(VenueOrder.from_json(new_doc))


def test_cancel_rejected_returns_to_working_status() -> None:
    o = order()
    o.apply(snap("partially_filled", "10", "100"))
    o.apply(snap("pending_cancel", "10", "100"), "pending_cancel")
    assert o.status == "pending_cancel"
    o.apply(snap("partially_filled", "10", "100"), "order_cancel_rejected")
    assert o.status == "partially_filled"


def test_fill_on_a_canceled_order_still_counts() -> None:
    o = order()
    o.apply(snap("canceled", "0"), "canceled")
    t = o.apply(snap("partially_filled", "5", "100"), "partial_fill")
    assert o.status == "canceled" and t.fill is not None and t.fill.qty == to_fixed(5)


def test_own_marks_do_not_override_venue_state() -> None:
    o = order()
    o.apply(snap("new"))
    assert not o.mark("unknown")
    assert o.mark(SUBMIT_FAILED, "x") and o.terminal
    assert not o.mark("unknown")


def test_parse_errors_are_clear() -> None:
    with pytest.raises(OrderParseError, match="lacks 'status'"):
        VenueOrder.from_json({"id": OID, "client_order_id": "a"})
    with pytest.raises(OrderParseError, match="filled_qty"):
        VenueOrder.from_json(doc("new", filled="lots"))
    with pytest.raises(OrderParseError, match="timestamp"):
        parse_ts_ns("yesterday")


def test_timestamps_keep_nanoseconds() -> None:
    assert parse_ts_ns("2024-01-02T15:00:00.000000123Z") % 1_000_000_000 == 123
    assert parse_ts_ns("2024-01-02T10:00:00-05:00") == parse_ts_ns("2024-01-02T15:00:00Z")
    assert parse_ts_ns(None) == 0


def at(status: str, ts: str, filled: str = "0", avg: str | None = None) -> VenueOrder:
    return snap(status, filled, avg, updated_at=f"2024-01-02T{ts}Z")


def test_done_for_day_then_next_day_new_follows_the_venue_clock() -> None:
    o = order()
    o.apply(at("new", "15:00:00"))
    assert o.apply(at("done_for_day", "20:00:00"), "done_for_day").changed and o.status == "done_for_day"
    assert o.apply(at("new", "23:30:00"), "new").changed and o.status == "new"  # the next session


def test_missed_cancel_rejected_event_is_repaired_by_a_newer_snapshot() -> None:
    o = order()
    o.apply(at("new", "15:00:00"))
    o.apply(at("pending_cancel", "15:00:01"), "pending_cancel")
    # order_cancel_rejected was lost with the stream; the reconcile snapshot is newer and says new
    assert o.apply(at("new", "15:00:02"), "reconciled").changed and o.status == "new"
    # a stale snapshot (read before an update we already applied) never moves the status back
    assert not o.apply(at("pending_cancel", "15:00:01"), "reconciled").changed and o.status == "new"


def test_venue_state_replaces_our_submit_failed_belief() -> None:
    # we gave up on a POST whose outcome was unknown, then it landed at the venue after all
    o = order()
    assert o.mark(SUBMIT_FAILED, "not found at the venue")
    assert o.apply(snap("new"), "new").changed and o.status == "new" and not o.terminal
    t = o.apply(snap("filled", "100", "190"), "fill", to_fixed(100), to_fixed(190))
    assert t.fill is not None and o.status == "filled"


def test_filled_qty_rising_without_an_average_is_refused_without_changing_state() -> None:
    o = order()
    o.apply(snap("partially_filled", "10", "100"), "partial_fill", to_fixed(10), to_fixed(100))
    with pytest.raises(OrderParseError, match="filled_avg_price"):
        o.apply(snap("partially_filled", "30", None), "partial_fill")
    assert o.filled_qty == to_fixed(10) and o.status == "partially_filled"
    # the next readable snapshot still carries the increase: nothing lost
    t = o.apply(snap("partially_filled", "30", "100.5"), "reconciled")
    assert t.fill is not None and (t.fill.qty, t.fill.px) == (to_fixed(20), to_fixed("100.75"))


def test_order_without_symbol_or_ids_is_a_clear_error() -> None:
    with pytest.raises(OrderParseError, match="symbol"):
        VenueOrder.from_json(doc("new", symbol=None))
    with pytest.raises(OrderParseError, match="empty"):
        VenueOrder.from_json(doc("new", client_order_id=""))


@pytest.mark.parametrize(
    "field,value",
    [("qty", "1e30"), ("qty", "-5"), ("filled_qty", "1e999999999"), ("filled_avg_price", "NaN"),
     ("limit_price", 2**64 - 1), ("updated_at", "2600-01-01T00:00:00Z"), ("updated_at", "1677-01-01T00:00:00Z")],
)  # fmt: skip
def test_out_of_range_venue_numbers_are_parse_errors(field: str, value: object) -> None:
    from services.execution.orders.order_state import OrderParseError, VenueOrder

    doc = {"id": "v1", "client_order_id": "zt-1", "status": "new", "side": "buy", "symbol": "AAPL",
           "qty": "1", "filled_qty": "0", field: value}  # fmt: skip
    with pytest.raises(OrderParseError, match=r"out of range|not a number"):
        VenueOrder.from_json(doc)
