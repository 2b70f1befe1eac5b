"""Figures that depend on the order of a desk's events follow the outbox's ``seq`` within a
boot, ties in time included, and never the order rows were stored in: ingest inserts a
batch sorted by event id, which is random. Each desk below is stored with row ids in the
opposite order to ``seq``. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from web_fixtures import add_device, seeded_engine

from sitwatch.calendar import Calendar
from sitwatch.server.ingest.derive import rebuild_all_rollups
from sitwatch.server.models import Device, Drill, Event
from sitwatch.server.queries import insights, pauses, stats
from sitwatch.server.queries.insights import Funnel
from sitwatch.server.queries.scope import ALL_DESKS

CAL = Calendar("UTC", 4)
DAY = date(2026, 11, 17)
MIN = 60


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hour, minute, second, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with seeded_engine(request.param, tmp_path, seed=lambda engine: None) as engine:
        yield engine


@dataclass
class DeskLog:
    """One desk's events in the order its outbox numbered them (``seq`` from 1)."""

    device_id: str = "desk-1"
    boot_id: str = "boot-a"
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, ts: datetime, **data: Any) -> DeskLog:
        self.events.append({"type": kind, "ts": ts, "boot_id": self.boot_id, "data": data})
        return self

    def restart(self, boot_id: str) -> DeskLog:
        """The agent starts again: a new boot, the same outbox (seq goes on)."""
        self.boot_id = boot_id
        return self

    def prompt(self, ts: datetime, level: int = 1) -> DeskLog:
        return self.add("prompt", ts, level=level, seated_s=1800.0, quiet=False)

    def stand(
        self, ts: datetime, session_s: float = 600.0, answers: float | None = None
    ) -> DeskLog:
        """A stood_up, and the prompt_ack the tracker sends with it at the same instant
        when a prompt was open (``answers``: seconds since that prompt)."""
        self.add("stood_up", ts, session_s=session_s)
        if answers is not None:
            self.add("prompt_ack", ts, how="stood_up", response_s=answers)
        return self

    def store(self, engine: Engine) -> None:
        """Row ids count down while seq counts up: id order contradicts seq everywhere."""
        with Session(engine) as s:
            add_device(s, self.device_id, self.device_id, last_seen=at(23, 0))
            s.flush()
            for seq, e in enumerate(self.events, start=1):
                event_id = uuid.uuid4().hex
                s.add(
                    Event(
                        id=10_000 - seq,
                        event_id=event_id,
                        device_id=self.device_id,
                        boot_id=e["boot_id"],
                        seq=seq,
                        type=e["type"],
                        ts=e["ts"],
                        mono=float(seq),
                        clock_synced=True,
                        data=e["data"],
                        received_at=e["ts"],
                    )
                )
                if e["type"] == "drill_completed":
                    s.add(
                        Drill(
                            id=10_000 - seq,
                            event_id=event_id,  # as ingest derives it
                            device_id=self.device_id,
                            ts=e["ts"],
                            guided=True,
                        )
                    )
            s.commit()
        with engine.begin() as connection:  # the nudges and rollups, as ingest derives them
            rebuild_all_rollups(connection, CAL)


def funnel(engine: Engine) -> Funnel:
    with Session(engine) as s:
        found = insights.insights(
            s, ALL_DESKS, CAL, DAY - timedelta(days=3), DAY + timedelta(days=3)
        )
    assert [d.funnel for d in found.days if d.day != DAY] == [Funnel()] * 6
    return found.funnel


# --- the nudge funnel -------------------------------------------------------------------------


def test_a_reprompt_and_the_stand_up_in_the_same_millisecond(empty_database: Engine) -> None:
    """The re-prompt came first (seq): the stand-up answers the nudge, and the next prompt
    begins a new nudge. Taken the other way round, the re-prompt opened a nudge of its own
    that swallowed the next one."""
    desk = DeskLog().add("seated", at(9, 0)).prompt(at(9, 30)).prompt(at(9, 45), 2)
    desk.stand(at(9, 45), session_s=45 * MIN, answers=15 * MIN)
    desk.add("seated", at(10, 0)).prompt(at(10, 30)).stand(at(10, 33), 33 * MIN, 3 * MIN)
    desk.store(empty_database)
    # Two nudges: stood after 15 min (too late) and after 3 min; the median is 9 min.
    assert funnel(empty_database) == Funnel(2, 1, 0, 9 * MIN)


def test_a_first_prompt_and_the_stand_up_in_the_same_millisecond(empty_database: Engine) -> None:
    desk = DeskLog().add("seated", at(9, 0)).prompt(at(9, 30)).stand(at(9, 30), 30 * MIN, 0.0)
    desk.add("seated", at(10, 0)).prompt(at(10, 30)).stand(at(10, 40), 40 * MIN, 10 * MIN)
    desk.store(empty_database)
    assert funnel(empty_database) == Funnel(2, 1, 0, 5 * MIN)  # 0 and 10 min


def test_a_drill_in_the_millisecond_the_next_nudge_begins_counts_to_the_nudge_before(
    empty_database: Engine,
) -> None:
    """The guided circuit ends at the instant a re-prompt is due (reprompt_s no longer than
    the circuit): the tracker sends drill_completed, then the prompt."""
    desk = DeskLog().add("seated", at(9, 0)).prompt(at(9, 30)).stand(at(9, 32), 32 * MIN, 2 * MIN)
    desk.add("seated", at(9, 33)).add("drill_completed", at(9, 50), guided=True)
    desk.prompt(at(9, 50)).stand(at(10, 30), 57 * MIN, 40 * MIN)
    desk.store(empty_database)
    # Stood after 2 min and drilled 20 min after the prompt; the second stood after 40.
    assert funnel(empty_database) == Funnel(2, 1, 1, 21 * MIN)


def test_a_nudge_ends_when_the_agent_restarts(empty_database: Engine) -> None:
    """A restarted agent has forgotten its prompt (its next one is level 1 again): the
    nudge open at the restart ends unanswered, and only its own boot's stand-ups and
    drills count for it. A prompt after the restart begins a new nudge."""
    desk = DeskLog().add("seated", at(9, 0)).prompt(at(9, 30))
    desk.restart("boot-b").add("seated", at(9, 31)).stand(at(9, 33), 2 * MIN)
    desk.add("drill_completed", at(9, 34), guided=False)
    desk.add("seated", at(9, 40)).prompt(at(10, 10)).stand(at(10, 12), 32 * MIN, 2 * MIN)
    desk.store(empty_database)
    # 09:30: nothing in its own boot. 10:10: stood after 2 min.
    assert funnel(empty_database) == Funnel(2, 1, 0, 2 * MIN)


def test_funnel_figures_without_seq_keep_time_order(empty_database: Engine) -> None:
    """Events from a sender without an outbox (no seq) are ordered by time, as before."""
    desk = DeskLog().add("seated", at(9, 0)).prompt(at(9, 30)).prompt(at(9, 45), 2)
    desk.stand(at(9, 50), 50 * MIN, 20 * MIN).add("seated", at(10, 0)).prompt(at(10, 30))
    desk.stand(at(10, 31), 31 * MIN, 1 * MIN)
    desk.store(empty_database)
    with empty_database.begin() as connection:
        connection.execute(Event.__table__.update().values(seq=None))
    assert funnel(empty_database) == Funnel(2, 1, 0, 10.5 * MIN)  # 20 and 1 min


# --- the seat and the pause now ---------------------------------------------------------------


def test_the_latest_seat_event_is_the_last_in_seq_at_equal_times(empty_database: Engine) -> None:
    """With no grace period a stand and the next sitting down can share a millisecond."""
    DeskLog().add("seated", at(9, 0)).stand(at(9, 20), 20 * MIN).add("seated", at(9, 20)).store(
        empty_database
    )
    with Session(empty_database) as s:
        state = stats.seat_states(s, ALL_DESKS, at(9, 30), 900)["desk-1"]
    assert state.is_seated and state.seated_since == at(9, 20)


def test_the_latest_pause_event_is_the_last_in_seq_at_equal_times(empty_database: Engine) -> None:
    """A pause from the button and the dashboard's resume in the same millisecond."""
    desk = DeskLog().add("pause", at(9, 0), pause_s=3600.0).add("pause", at(9, 0), pause_s=0.0)
    desk.store(empty_database)
    with Session(empty_database) as s:
        s.get_one(Device, "desk-1").boot_id = "boot-a"
        assert pauses.paused_devices(s, ALL_DESKS, at(9, 30)) == {}
