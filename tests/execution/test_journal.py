"""The durable order journal: restarts continue from it exactly; a venue that lost its state is
reconciled with an alarm; a journal that cannot be written halts sending."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import orjson
import pytest

from common import wire
from common.fixed import to_fixed
from services.execution.orders.journal import (
    JOURNAL_FILE,
    SUBMIT_LOG_SUFFIX,
    JournalError,
    SqliteJournal,
    encode_submit,
    read_submit_log,
)
from tests.execution.test_service import make_settings
from tests.kit.execution import running_execution
from tests.kit.tiny_venue import TinyVenue
from tests.kit.waiting import until

pytestmark = pytest.mark.timeout(60)


def _update(seq: int, coid: str, status: str = "new") -> wire.OrderUpdate:
    return wire.OrderUpdate(
        seq=seq, client_order_id=coid, venue_order_id=f"v-{coid}", strategy="s", symbol="AAPL", side="buy",
        status=status, event="new", qty=to_fixed(1), filled_qty=0, filled_avg_px=0, limit_px=to_fixed(10),
        reason="", venue_ns=1, recv_ns=2,
    )  # fmt: skip


def test_journal_keeps_submits_events_and_identity_across_opens(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    j = SqliteJournal(path)
    j.record_submit("zt-a.1", 1, {"symbol": "AAPL", "side": "buy", "qty": "1", "client_order_id": "zt-a.1"})
    j.record_event(_update(1, "zt-a.1"))
    j.record_base(0, [], new_epoch=False)
    first = (j.journal_id, j.incarnation, j.boots)
    del j  # no close: as after a SIGKILL
    again = SqliteJournal(path)
    rec = again.load()
    assert (again.journal_id, again.incarnation, again.boots) == (first[0], first[1], first[2] + 1)
    assert [e.seq for e in rec.events] == [1] and rec.events[0].client_order_id == "zt-a.1"
    assert list(rec.submits) == ["zt-a.1"] and rec.base_seq == 0
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_full_disk_fails_the_submit_and_recovers_with_the_events_kept(tmp_path: Path) -> None:
    j = SqliteJournal(tmp_path / JOURNAL_FILE)
    j._db.close()  # type: ignore[union-attr]  # every write now fails like a disk that went away
    j._db = None
    os.close(j._log_fd)  # the submit log too
    with pytest.raises(JournalError):
        j.record_submit("zt-a.1", 1, {})
    j.record_event(_update(1, "zt-a.1"))  # kept in memory, in order
    assert not j.ok and j.error and j.write_errors >= 1
    assert j.check()  # reopens: the backlog is written
    assert [e.seq for e in j.events_after(0, 10)] == [1]


def test_restart_continues_the_sequence_remembers_closed_orders_and_resolves_an_unknown_submit(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        venue = TinyVenue()
        await venue.start()
        settings = make_settings(tmp_path / "run", venue)
        try:
            async with running_execution(settings, venue) as h:
                assert (await h.order("zt-a.1", qty="10")).accepted
                await until(lambda: h.svc.tracker.orders["zt-a.1"].status == "new")
                await venue.fill("zt-a.1", "10", "99")
                await until(lambda: h.svc.tracker.orders["zt-a.1"].status == "filled")
                assert (await h.order("zt-a.2", qty="5")).accepted
                await until(lambda: h.svc.tracker.orders["zt-a.2"].status == "new")
                seq, incarnation = h.svc.events.last_seq, h.svc.incarnation()
                # a submit journaled whose POST reached the venue, then the process died (no event)
                h.svc.journal.record_submit(
                    "zt-a.3", 1, {"symbol": "AAPL", "side": "buy", "qty": "2", "client_order_id": "zt-a.3"}
                )
                venue.place("zt-a.3", "2")
                # and one journaled whose POST never left
                h.svc.journal.record_submit(
                    "zt-a.4", 1, {"symbol": "AAPL", "side": "buy", "qty": "3", "client_order_id": "zt-a.4"}
                )
            await venue.fill("zt-a.2", "5", "98", push=False)  # filled while execution was down
            async with running_execution(settings, venue) as h2:
                svc = h2.svc
                assert svc.incarnation() == incarnation and svc.journal.boots == 2
                assert svc.tracker.orders["zt-a.1"].status == "filled"  # a closed order remembered
                assert svc.tracker.orders["zt-a.2"].status == "filled"  # its fill found by lookup
                assert svc.tracker.orders["zt-a.3"].status == "new"  # unknown submit: adopted by lookup
                await until(lambda: svc.tracker.orders["zt-a.4"].status == "submit_failed", timeout_s=10)
                assert svc.tracker.positions.qty("AAPL") == to_fixed(15)
                assert svc.events.last_seq > seq  # continued, not restarted
                replay = await h2.rpc.request(wire.Replay(after_seq=0))
                seqs = [e.seq for e in wire.decode_list(replay.data)]
                assert seqs == list(range(1, svc.events.last_seq + 1))
                assert len(venue.posts) == 2  # nothing sent twice
                orders = orjson.loads((await h2.rpc.request(wire.Control(cmd="orders"))).data)
                assert {o["client_order_id"] for o in orders} == {"zt-a.1", "zt-a.2", "zt-a.3", "zt-a.4"}
        finally:
            await venue.stop()

    asyncio.run(main())


def test_a_venue_that_lost_its_state_is_reconciled_with_an_alarm(tmp_path: Path) -> None:
    async def main() -> None:
        venue = TinyVenue()
        await venue.start()
        try:
            async with running_execution(make_settings(tmp_path / "run", venue), venue) as h:
                assert (await h.order("zt-b.1", qty="10")).accepted
                await until(lambda: h.svc.tracker.orders["zt-b.1"].status == "new")
                await venue.fill("zt-b.1", "4", "99")
                await until(lambda: h.svc.tracker.positions.qty("AAPL") == to_fixed(4))
                epoch = h.svc.incarnation()
                venue.stream_open = False
                await venue.drop_streams()
                await until(lambda: not h.svc.stream.connected)
                venue.orders.clear()  # the venue restarted without its state
                venue.positions.clear()
                venue.stream_open = True
                await until(lambda: h.svc.tracker.orders["zt-b.1"].status == "venue_lost")
                await until(lambda: h.svc.tracker.positions.qty("AAPL") == 0)
                assert h.svc.incarnation() != epoch  # risk re-snapshots the re-based book
                alarms = h.svc.status()["reconcile_alarms"]
                assert any("venue lost 1 open orders" in a for a in alarms)
                assert any("re-based" in a for a in alarms)
                assert "venue_lost" in h.statuses("zt-b.1")  # published: risk releases its pending
        finally:
            await venue.stop()

    asyncio.run(main())


def test_an_unwritable_journal_refuses_orders_and_says_so(tmp_path: Path) -> None:
    async def main() -> None:
        venue = TinyVenue()
        await venue.start()
        try:
            async with running_execution(make_settings(tmp_path / "run", venue), venue) as h:
                h.svc.journal._db.close()  # type: ignore[union-attr]  # the disk is gone
                os.close(h.svc.journal._log_fd)  # the submit log's too
                ack = await h.order("zt-c.1")
                if ack.accepted:  # the health check had not run yet: the write-ahead refuses the POST
                    await until(lambda: h.svc.tracker.orders["zt-c.1"].status == "submit_failed")
                assert "journal_failed" in h.svc.tracker.orders["zt-c.1"].reason
                assert h.svc.heartbeat_state() == "journal_failed"
                ack = await h.order("zt-c.2")
                assert not ack.accepted and ack.detail.startswith("journal_failed")
                assert h.svc.status()["journal"]["ok"] is False
                assert not venue.posts
        finally:
            await venue.stop()

    asyncio.run(main())


def test_a_full_tmpfs_run_folder_is_detected(tmp_path: Path) -> None:
    """A real full disk: a 6 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    import subprocess

    folder = tmp_path / "small"
    folder.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(folder)], check=False
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        j = SqliteJournal(folder / JOURNAL_FILE)
        assert j.check()
        (folder / "filler").write_bytes(b"\0" * (5 * 1024 * 1024))  # leaves < MIN_FREE_BYTES
        assert not j.check() and "disk almost full" in j.error
        with pytest.raises(JournalError):
            j.record_submit("zt-d.1", 1, {})
        (folder / "filler").unlink()
        assert j.check() and j.ok
        j.close()
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


# ---- the submit log: the write-ahead before each POST ---------------------------------------------


def _log_bytes(j: SqliteJournal) -> bytes:
    return j.submit_log_path.read_bytes()


def test_a_submit_is_in_the_log_at_once_and_in_the_table_after_one_loop_turn(tmp_path: Path) -> None:
    async def main() -> None:
        j = SqliteJournal(tmp_path / JOURNAL_FILE)
        j.record_submit("zt-a.1", 1, {"symbol": "AAPL", "qty": "1"})
        records, used = read_submit_log(_log_bytes(j))
        assert [(c, a, b) for c, a, _, b in records] == [("zt-a.1", 1, {"symbol": "AAPL", "qty": "1"})]
        assert used == len(_log_bytes(j))
        table = sqlite3.connect(j.path).execute("SELECT coid FROM submits").fetchall()
        assert table == []  # not yet: the POST goes first
        await asyncio.sleep(0)
        assert sqlite3.connect(j.path).execute("SELECT coid, attempt FROM submits").fetchall() == [
            ("zt-a.1", 1)
        ]
        assert _log_bytes(j) == b""
        assert oct(os.stat(j.submit_log_path).st_mode & 0o777) == "0o600"
        j.close()

    asyncio.run(main())


def test_a_crash_before_the_move_leaves_the_submit_in_the_log_and_the_next_open_takes_it(
    tmp_path: Path,
) -> None:
    crashed = SqliteJournal(tmp_path / JOURNAL_FILE)
    crashed.record_submit("zt-a.1", 1, {"qty": "1"})  # no loop: nothing moves it; the process "dies"
    crashed.record_submit("zt-a.1", 2, {"qty": "1"})
    assert len(read_submit_log(_log_bytes(crashed))[0]) == 2
    j = SqliteJournal(tmp_path / JOURNAL_FILE)
    rec = j.load()
    assert rec.submits["zt-a.1"].attempt == 2 and rec.submits["zt-a.1"].body == {"qty": "1"}
    assert [(c, a) for c, a, _ in j.submits] == [("zt-a.1", 1), ("zt-a.1", 2)]
    assert _log_bytes(j) == b""
    # opened again: nothing doubled
    assert [(c, a) for c, a, _ in SqliteJournal(tmp_path / JOURNAL_FILE).submits] == [
        ("zt-a.1", 1),
        ("zt-a.1", 2),
    ]


def test_a_record_already_moved_when_the_crash_came_is_not_doubled(tmp_path: Path) -> None:
    j = SqliteJournal(tmp_path / JOURNAL_FILE)
    j.record_submit("zt-a.1", 1, {})
    log_then = _log_bytes(j)
    assert j.flush_submits() and _log_bytes(j) == b""
    j.submit_log_path.write_bytes(log_then)  # died between the table's commit and emptying the log
    assert [(c, a) for c, a, _ in SqliteJournal(tmp_path / JOURNAL_FILE).submits] == [("zt-a.1", 1)]


@pytest.mark.parametrize("tail", [b"\x05", b"\x30\x00\x00\x00\x00\x00\x00\x00[", b"garbage-garbage-garbage"])
def test_a_torn_tail_is_skipped_and_what_came_before_is_kept(tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / JOURNAL_FILE
    whole = encode_submit("zt-a.1", 1, 123, {"qty": "1"})
    Path(f"{path}{SUBMIT_LOG_SUFFIX}").write_bytes(whole + tail)
    records, used = read_submit_log(whole + tail)
    assert [r[0] for r in records] == ["zt-a.1"] and used == len(whole)
    assert [(c, a) for c, a, _ in SqliteJournal(path).submits] == [("zt-a.1", 1)]


def test_a_failed_move_keeps_the_submit_in_the_log_fails_the_journal_and_check_recovers(
    tmp_path: Path,
) -> None:
    j = SqliteJournal(tmp_path / JOURNAL_FILE)
    j.record_submit("zt-a.1", 1, {})
    db = j._db
    j._db = sqlite3.connect(":memory:")  # a database without the table: the move fails
    assert not j.flush_submits()
    assert not j.ok and "submit" in j.error
    assert len(read_submit_log(_log_bytes(j))[0]) == 1
    with pytest.raises(JournalError):
        j.record_submit("zt-a.2", 1, {})  # nothing more goes out while it fails
    j._db = db
    assert j.check() and j.ok
    assert [(c, a) for c, a, _ in j.submits] == [("zt-a.1", 1)] and _log_bytes(j) == b""


def test_a_removed_submit_log_fails_the_check(tmp_path: Path) -> None:
    j = SqliteJournal(tmp_path / JOURNAL_FILE)
    j.submit_log_path.unlink()
    assert not j.check()
    assert "submit log was replaced or removed" in j.error


def test_the_checkpoint_puts_the_commits_in_the_database_file_from_another_thread(tmp_path: Path) -> None:
    """checkpoint() runs in a worker thread on its own connection while the loop keeps writing:
    every commit before it is then in the database file itself (the WAL is no longer needed)."""
    path = tmp_path / JOURNAL_FILE
    j = SqliteJournal(path)

    async def scenario() -> None:
        seq = 0
        for _ in range(5):
            for _ in range(40):
                seq += 1
                j.record_event(_update(seq, f"zt-a.{seq}"))
            checkpointing = asyncio.create_task(asyncio.to_thread(j.checkpoint))
            seq += 1
            j.record_event(_update(seq, f"zt-a.{seq}"))  # written while the checkpoint runs
            j.checkpoint_done(await checkpointing)
            assert j.ok, j.error
        j.checkpoint_done(await asyncio.to_thread(j.checkpoint))

    asyncio.run(scenario())
    copy = tmp_path / "without-wal.sqlite"
    copy.write_bytes(path.read_bytes())  # the database file alone, as if the WAL were lost
    assert sqlite3.connect(copy).execute("SELECT count(*) FROM events").fetchone()[0] == 205
    j.close()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0


def test_a_failed_checkpoint_fails_the_journal_until_a_check_finds_it_well(tmp_path: Path) -> None:
    j = SqliteJournal(tmp_path / JOURNAL_FILE)
    assert j.checkpoint() == "" and j.ok
    j._ckpt_db.close()  # type: ignore[union-attr]  # the checkpointer's connection breaks
    error = j.checkpoint()
    assert error and j.ok  # a worker thread only reports it
    j.checkpoint_done(error)
    assert not j.ok and error in j.error
    assert j.check() and j.ok  # writable again
    assert j.checkpoint() == ""  # on a fresh connection
