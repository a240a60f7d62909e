"""Order placement never doubles an order: lookups instead of blind retries (tiny in-test venue)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from services.execution.orders.journal import JournalError, SqliteJournal
from services.execution.orders.submitter import OrderSubmitter, SubmitOutcome
from services.execution.venue.ratelimit import TokenBucket
from services.execution.venue.rest_client import AlpacaRest, RestStatusError
from tests.kit.tiny_venue import KEY, SECRET, Fault, TinyVenue

BODY = {"symbol": "AAPL", "qty": "1.5", "side": "buy", "type": "limit", "time_in_force": "day"}


def run_submit(
    faults: list[Fault], coid: str = "zt-t.1", body: dict[str, str] | None = None, burst: int = 50,
    timeout_s: float = 5.0, rate_per_min: int = 6000, extra: Callable[[TinyVenue, AlpacaRest], Awaitable[None]] | None = None,
) -> tuple[SubmitOutcome, TinyVenue, SqliteJournal]:  # fmt: skip
    async def scenario() -> tuple[SubmitOutcome, TinyVenue, SqliteJournal]:
        venue = TinyVenue(faults=list(faults))
        await venue.start()
        rest = AlpacaRest(
            venue.url, KEY, SECRET, TokenBucket(rate_per_min, burst), timeout_s=timeout_s, max_wait_s=0.01
        )
        journal = SqliteJournal(Path(tempfile.mkdtemp()) / "j.sqlite")
        try:
            if extra is not None:
                await extra(venue, rest)
            sub = OrderSubmitter(rest, journal, max_posts=3, backoff_s=0.001)
            out = await sub.submit(coid, {**(body or BODY), "client_order_id": coid})
        finally:
            await rest.close()
            await venue.stop()
        return out, venue, journal

    return asyncio.run(scenario())


def test_clean_submit_sends_decimal_strings_and_auth_headers() -> None:
    out, venue, journal = run_submit([])
    assert out.kind == "placed" and not out.adopted and out.posts == 1
    assert venue.posts[0]["qty"] == "1.5" and len(venue.orders) == 1 and venue.lookups == 0
    assert [s[0] for s in journal.submits] == ["zt-t.1"]  # written ahead of the send


def test_lost_reply_is_adopted_by_lookup_not_resent() -> None:
    out, venue, _ = run_submit([Fault(504, after_apply=True)])
    assert out.kind == "placed" and out.adopted
    assert len(venue.posts) == 1 and len(venue.orders) == 1 and venue.lookups == 1
    assert out.order is not None and out.order["client_order_id"] == "zt-t.1"


def test_timeout_after_the_venue_placed_it_is_adopted() -> None:
    out, venue, _ = run_submit([Fault(0, after_apply=True)], timeout_s=0.3)
    assert out.kind == "placed" and out.adopted and len(venue.posts) == 1 and len(venue.orders) == 1


def test_500_and_429_before_placing_lead_to_lookup_then_one_resubmit_with_same_id() -> None:
    for status in (500, 429):
        out, venue, journal = run_submit([Fault(status, after_apply=False)])
        assert out.kind == "placed" and out.posts == 2, status
        assert venue.lookups == 1 and len(venue.orders) == 1
        assert {p["client_order_id"] for p in venue.posts} == {"zt-t.1"}
        assert [s[1] for s in journal.submits] == [1, 2]


def test_duplicate_client_order_id_422_is_looked_up_and_adopted() -> None:
    async def place_first(venue: TinyVenue, rest: AlpacaRest) -> None:
        await rest.submit_order({**BODY, "client_order_id": "zt-t.1"})

    out, venue, _ = run_submit([], extra=place_first)
    assert out.kind == "placed" and out.adopted and len(venue.orders) == 1 and venue.lookups == 1


def test_business_rejection_is_final_without_lookup() -> None:
    out, venue, _ = run_submit([], body={**BODY, "symbol": "REJECTME"})
    assert out.kind == "rejected" and "insufficient buying power" in out.reason
    assert venue.lookups == 0 and len(venue.posts) == 1


def test_persistent_5xx_gives_up_after_bounded_posts_as_unknown_not_rejected() -> None:
    # each 503 may have been a POST that still lands: giving up is "unknown" (resolved by lookups
    # after the in-flight window), never a final "rejected" the caller would release
    out, venue, _ = run_submit([Fault(503, after_apply=False)] * 10)
    assert out.kind == "unknown" and out.posts == 3 and out.last_post_ns > 0
    assert len(venue.posts) == 3 and venue.lookups == 3 and not venue.orders


def test_refusal_after_a_doubtful_post_is_unknown_not_rejected() -> None:
    # POST 1 times out, lookup says 404 (still in flight), POST 2 is refused for buying power that
    # POST 1 may have consumed: the order may exist, so the outcome is not a rejection
    out, _, _ = run_submit([Fault(504, after_apply=False), Fault(403, after_apply=False)])
    assert out.kind == "unknown" and out.posts == 2 and "may still land" in out.reason


def test_unreadable_2xx_reply_is_looked_up_not_rejected() -> None:
    async def garble(venue: TinyVenue, rest: AlpacaRest) -> None:
        async def respond_garbage() -> None:
            venue.garble_next = True

        venue.post_hook = respond_garbage

    out, venue, _ = run_submit([], extra=garble)
    assert out.kind == "placed" and out.adopted and len(venue.posts) == 1 and venue.lookups == 1


def test_empty_bucket_means_not_sent() -> None:
    async def drain(venue: TinyVenue, rest: AlpacaRest) -> None:
        while rest.bucket.try_take():
            pass

    out, venue, _ = run_submit([], rate_per_min=60, extra=drain)
    assert out.kind == "rejected" and out.reason.startswith("rate_limited") and not venue.posts


def test_error_bodies_echoing_our_headers_never_carry_the_keys() -> None:
    async def scenario() -> str:
        venue = TinyVenue(echo_headers=True)
        await venue.start()
        rest = AlpacaRest(venue.url, KEY, SECRET, TokenBucket(600, 5))
        try:
            await rest.get_order_by_client_id("x")
        except RestStatusError as exc:
            return str(exc)
        finally:
            await rest.close()
            await venue.stop()
        return ""

    text = asyncio.run(scenario())
    assert "404" in text and "APCA-API-SECRET-KEY" in text  # the proxy-like page was read
    assert SECRET not in text and KEY not in text


def test_bad_keys_give_a_clear_error_without_the_secret() -> None:
    async def scenario() -> str:
        venue = TinyVenue()
        await venue.start()
        rest = AlpacaRest(venue.url, KEY, "wrong-secret-value", TokenBucket(600, 5))
        try:
            await rest.submit_order({**BODY, "client_order_id": "x"})
        except RestStatusError as exc:
            return str(exc)
        finally:
            await rest.close()
            await venue.stop()
        return ""

    text = asyncio.run(scenario())
    assert "401" in text and "not authorized" in text and "wrong-secret-value" not in text


# ---- start: the first POST journaled and written before it returns --------------------------


class FailingJournal(SqliteJournal):
    def record_submit(self, client_order_id: str, attempt: int, body: dict[str, Any]) -> None:
        raise JournalError("disk full")


def run_start(
    may_send: Callable[[], str] = lambda: "", journal_cls: type[SqliteJournal] = SqliteJournal, warm: bool = True,
    faults: list[Fault] | None = None,
) -> tuple[bool, list[str], SubmitOutcome | None, TinyVenue, SqliteJournal]:  # fmt: skip
    """(whether start wrote at once, what had happened when it returned, the outcome, venue, journal)."""

    async def scenario() -> tuple[bool, list[str], SubmitOutcome | None, TinyVenue, SqliteJournal]:
        venue = TinyVenue(faults=list(faults or []))
        await venue.start()
        rest = AlpacaRest(venue.url, KEY, SECRET, TokenBucket(6000, 50), timeout_s=5.0, max_wait_s=0.01)
        journal = journal_cls(Path(tempfile.mkdtemp()) / "j.sqlite")
        seen: list[str] = []
        try:
            await rest.open()
            if warm:  # a kept-alive connection to write on, as after execution's start-up reconcile
                await rest.list_orders()
            sub = OrderSubmitter(rest, journal, max_posts=3, backoff_s=0.001)
            body = {**BODY, "client_order_id": "zt-t.1"}

            def written() -> None:  # the journal is read at the moment of the write
                seen.append("written after " + ",".join(s[0] for s in journal.submits))

            first = sub.start("zt-t.1", body, on_send=written, may_send=may_send)
            seen += [f"journaled {s[0]}" for s in journal.submits]
            out = await sub.submit("zt-t.1", body, first=first) if first is not None else None
        finally:
            await rest.close()
            await venue.stop()
        return first is not None, seen, out, venue, journal

    return asyncio.run(scenario())


def test_start_journals_and_writes_the_first_post_before_it_returns() -> None:
    wrote, seen, out, venue, journal = run_start()
    assert wrote and seen == ["written after zt-t.1", "journaled zt-t.1"]  # journal first, both done
    assert out is not None and out.kind == "placed" and out.posts == 1 and out.last_post_ns > 0
    assert [p["client_order_id"] for p in venue.posts] == ["zt-t.1"] and len(journal.submits) == 1


def test_start_without_an_idle_connection_does_nothing_and_leaves_it_to_submit() -> None:
    wrote, seen, out, venue, journal = run_start(warm=False)
    assert not wrote and seen == [] and out is None and venue.posts == [] and journal.submits == []


def test_start_with_the_gate_closed_sends_nothing_and_the_outcome_is_rejected() -> None:
    wrote, seen, out, venue, _ = run_start(may_send=lambda: "halted: trading state HALTED")
    assert wrote and seen == ["journaled zt-t.1"]  # journaled, never written
    assert out is not None and out.kind == "rejected" and out.posts == 0 and "halted" in out.reason
    assert venue.posts == []


def test_start_with_the_journal_failing_sends_nothing() -> None:
    wrote, seen, out, venue, _ = run_start(journal_cls=FailingJournal)
    assert wrote and seen == [] and venue.posts == []
    assert out is not None and out.kind == "rejected" and out.reason.startswith("journal_failed")


def test_start_then_a_lost_reply_is_looked_up_not_resent() -> None:
    wrote, seen, out, venue, _ = run_start(faults=[Fault(504, after_apply=True)])
    assert wrote and seen[0] == "written after zt-t.1"
    assert out is not None and out.kind == "placed" and out.adopted and out.posts == 1
    assert len(venue.posts) == 1 and len(venue.orders) == 1 and venue.lookups == 1
