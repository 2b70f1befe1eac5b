"""The outbox: events survive a restart, leave only when acknowledged, and the bound drops
heartbeats, never events that matter."""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.events import make_event

from sitwatch.device.outbox import Outbox
from sitwatch.protocol import EventType, ProtocolError


@pytest.fixture
def outbox(tmp_path: Path):
    with Outbox(tmp_path / "outbox.db") as box:
        yield box


def test_events_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path)
    added = [box.add(make_event(EventType.STOOD_UP, mono=1000 + i)) for i in range(5)]
    box.close()

    reopened = Outbox(path)
    due = reopened.due(now_mono=0, resend_after_s=30)
    reopened.close()

    assert [event.id for event in due] == [event.id for event in added]
    assert due == added  # every field round-trips, seq included


def test_seq_increases_across_restarts_even_when_emptied(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path)
    first = [box.add(make_event()) for _ in range(3)]
    box.confirm(event.id for event in first)
    box.close()

    box = Outbox(path)
    later = box.add(make_event())
    box.close()

    seqs = [event.seq for event in first]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert later.seq is not None and later.seq > max(seqs)  # type: ignore[operator]


def test_due_is_in_seq_order_and_respects_limit(outbox: Outbox) -> None:
    added = [outbox.add(make_event(mono=i)) for i in range(10)]
    assert [e.id for e in outbox.due(0, 30, limit=4)] == [e.id for e in added[:4]]
    assert [e.seq for e in outbox.due(0, 30)] == sorted(e.seq for e in added)  # type: ignore


def test_sent_events_are_due_again_only_after_the_resend_timeout(outbox: Outbox, clock) -> None:
    first, second = outbox.add(make_event()), outbox.add(make_event())
    outbox.mark_sent([first.id], clock.monotonic())

    assert [e.id for e in outbox.due(clock.monotonic(), 30)] == [second.id]
    assert outbox.in_flight(clock.monotonic(), 30) == 1
    clock.advance(30)
    assert [e.id for e in outbox.due(clock.monotonic(), 30)] == [second.id]
    clock.advance(0.5)
    assert [e.id for e in outbox.due(clock.monotonic(), 30)] == [first.id, second.id]
    assert outbox.in_flight(clock.monotonic(), 30) == 0


def test_after_a_restart_everything_counts_as_never_sent(tmp_path: Path, clock) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path)
    event = box.add(make_event())
    box.mark_sent([event.id], clock.monotonic())
    assert box.due(clock.monotonic(), 30) == []
    box.close()

    with Outbox(path) as box:
        assert [e.id for e in box.due(clock.monotonic(), 30)] == [event.id]


def test_forget_sent_makes_the_backlog_due_at_once(outbox: Outbox, clock) -> None:
    event = outbox.add(make_event())
    outbox.mark_sent([event.id], clock.monotonic())
    outbox.forget_sent()
    assert [e.id for e in outbox.due(clock.monotonic(), 30)] == [event.id]


def test_confirm_removes_only_named_events_and_ignores_repeats(outbox: Outbox) -> None:
    a, b, c = (outbox.add(make_event()) for _ in range(3))

    assert outbox.confirm([a.id, c.id, "unknown-id-0000"]) == 2
    assert outbox.confirm([a.id]) == 0  # a duplicate ack
    assert len(outbox) == 1
    assert [e.id for e in outbox.due(0, 30)] == [b.id]


def test_adding_the_same_event_twice_keeps_one(outbox: Outbox) -> None:
    event = make_event()
    first, again = outbox.add(event), outbox.add(event)
    assert first.seq == again.seq
    assert len(outbox) == 1


def test_an_event_the_server_would_reject_is_refused_at_once(outbox: Outbox) -> None:
    with pytest.raises(ProtocolError, match="session_s"):
        outbox.add(replace(make_event(EventType.STOOD_UP), data={}))
    assert len(outbox) == 0


def test_restamp_replaces_an_unsynced_time(outbox: Outbox) -> None:
    event = outbox.add(make_event(clock_synced=False))
    fixed = datetime(2026, 3, 2, 10, 15, 30, 250000, tzinfo=UTC)
    outbox.restamp(event.id, fixed)
    (stored,) = outbox.due(0, 30)
    assert stored.ts == fixed and stored.clock_synced


def test_when_full_the_oldest_heartbeats_go_first(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db", max_rows=5) as box:
        beats = [box.add(make_event(EventType.HEARTBEAT)) for _ in range(3)]
        kept = [box.add(make_event(EventType.STOOD_UP)) for _ in range(3)]
        # 6 rows > 5: the oldest heartbeat went.
        assert len(box) == 5
        ids = [e.id for e in box.due(0, 30)]
        assert beats[0].id not in ids
        assert ids == [beats[1].id, beats[2].id] + [e.id for e in kept]


def test_when_full_of_important_events_none_is_dropped_and_a_warning_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Outbox(tmp_path / "outbox.db", max_rows=3) as box:
        box.add(make_event(EventType.HEARTBEAT))
        important = [box.add(make_event(EventType.DRILL_COMPLETED)) for _ in range(3)]
        with caplog.at_level(logging.WARNING, logger="sitwatch.device.outbox"):
            important.append(box.add(make_event(EventType.PROMPT)))
            important.append(box.add(make_event(EventType.HEARTBEAT)))  # itself dropped

        assert [e.id for e in box.due(0, 30)] == [e.id for e in important[:4]]
        assert len(box) == 4
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # once, not once per event
        assert "over its bound of 3" in warnings[0].getMessage()


def test_count_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path) as box:
        for _ in range(4):
            box.add(make_event())
    with Outbox(path) as box:
        assert len(box) == 4


def test_a_corrupt_file_is_moved_aside_and_a_new_outbox_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is not an sqlite database" * 100)
    with caplog.at_level(logging.ERROR, logger="sitwatch.device.outbox"), Outbox(path) as box:
        box.add(make_event())
        assert len(box) == 1
    assert "unreadable" in caplog.text
    assert list(tmp_path.glob("outbox.db.corrupt-*"))


def test_the_file_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path) as box:
        box.add(make_event())
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


@pytest.mark.timeout(30)
def test_adding_and_confirming_from_different_threads(outbox: Outbox, clock) -> None:
    added: list[str] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def producer() -> None:
        try:
            for i in range(300):
                added.append(outbox.add(make_event(mono=i)).id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            stop.set()

    def sender() -> None:
        try:
            while not stop.is_set() or len(outbox):
                batch = outbox.due(clock.monotonic(), 30, limit=50)
                outbox.mark_sent([e.id for e in batch], clock.monotonic())
                outbox.confirm(e.id for e in batch)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=producer), threading.Thread(target=sender)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not errors
    assert len(added) == 300 and len(outbox) == 0
