"""Helpers for the dashboard tests: an app on a real SQLite file, users, a logged-in client,
and two data sets inserted straight through the models.

``seed_small`` is tiny and its figures are worked out by hand in tests/test_stats.py;
``seed_personal`` is one person with two desks (tests/test_personal.py);
``seed_week`` is one working week of two desks whose insights (tests/test_insights.py) are
worked out by hand; ``demo_events`` is weeks of plausible office days for the browser test.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from sitwatch.server import fleet_days, seat
from sitwatch.server.config import (
    BrokerConfig,
    DatabaseConfig,
    GoalsConfig,
    PrivacyConfig,
    ServerConfig,
)
from sitwatch.server.db import create_schema, make_engine
from sitwatch.server.models import DailyRollup, Device, Drill, Event, SittingSession, empty_figures
from sitwatch.server.users import create_user
from sitwatch.server.web.app import create_app

# A Wednesday afternoon. Days start at 04:00 UTC, so "today" is 2026-11-25, the week began
# on Monday 2026-11-23.
NOW = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
TODAY = date(2026, 11, 25)
PASSWORD = "correct horse battery staple"
CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def make_engine_for(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'sitwatch.db'}")
    create_schema(engine)
    return engine


@contextmanager
def seeded_engine(
    dialect: str,
    tmp_path: Path,
    with_user: bool = False,
    seed: Callable[[Engine], None] | None = None,
) -> Iterator[Engine]:
    """``seed`` (default ``seed_small``) on a fresh SQLite file or PostgreSQL schema
    (``server_helpers.postgres_schema``), for tests that check the same figures on both."""
    if dialect == "sqlite":
        engine = make_engine_for(tmp_path)
        _seed(engine, with_user, seed or seed_small)
        yield engine
        engine.dispose()
        return
    from server_helpers import postgres_schema

    with postgres_schema() as url:
        engine = make_engine(url)
        create_schema(engine)
        _seed(engine, with_user, seed or seed_small)
        yield engine
        engine.dispose()


def _seed(engine: Engine, with_user: bool, seed: Callable[[Engine], None]) -> None:
    if with_user:
        add_user(engine)
    seed(engine)


def make_app(
    engine: Engine,
    now: datetime = NOW,
    mqtt_host: str = "127.0.0.1",
    mqtt_port: int = 1883,
    goals: GoalsConfig | None = None,
    privacy: PrivacyConfig | None = None,
    **extra: Any,
) -> Flask:
    config = ServerConfig(
        database=DatabaseConfig(url=str(engine.url)),
        mqtt=BrokerConfig(host=mqtt_host, port=mqtt_port),
        goals=goals or GoalsConfig(),
        privacy=privacy or PrivacyConfig(),
        timezone="UTC",
        day_start_hour=4,
        offline_after_s=900,
    )
    test_config = {"TESTING": True, "SECRET_KEY": "test-secret", "SITWATCH_NOW": lambda: now}
    test_config.update(extra)
    return create_app(config, engine=engine, test_config=test_config)


def add_user(
    engine: Engine, username: str = "alice", password: str = PASSWORD, role: str = "admin"
) -> None:
    """As ``sitwatch-server create-user`` does; an admin unless told otherwise, as the
    dashboard tests look at every desk."""
    with Session(engine) as session:
        create_user(session, username, password, role)
        session.commit()


def csrf_from(html: str) -> str:
    found = CSRF_INPUT.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def login(client: FlaskClient, username: str = "alice", password: str = PASSWORD) -> Any:
    page = client.get("/login")
    token = csrf_from(page.get_data(as_text=True))
    return client.post(
        "/login", data={"csrf_token": token, "username": username, "password": password}
    )


# --- rows -------------------------------------------------------------------------------------


def _id() -> str:
    return uuid.uuid4().hex


def add_device(
    session: Session, device_id: str, name: str, *, online: bool = True, last_seen: datetime = NOW
) -> None:
    session.add(
        Device(
            id=device_id,
            name=name,
            online=online,
            first_seen_at=last_seen - timedelta(days=60),
            last_seen_at=last_seen,
        )
    )


def add_event(session: Session, device_id: str, kind: str, ts: datetime, **data: Any) -> None:
    """A stored event; a seated or stood_up one also sets its desk's seat state, as ingest
    does (server/seat.py)."""
    session.add(
        Event(
            event_id=_id(),
            device_id=device_id,
            boot_id="boot0001",
            seq=None,
            type=kind,
            ts=ts,
            mono=0.0,
            clock_synced=True,
            data=data,
            received_at=ts,
        )
    )
    if kind in seat.SEAT_TYPES:
        session.flush()
        seat.refresh(session.connection(), [device_id])


def add_session(session: Session, device_id: str, start: datetime, minutes: float) -> None:
    """A finished stretch: its seated and stood_up events and the derived session row."""
    end = start + timedelta(minutes=minutes)
    add_event(session, device_id, "seated", start)
    add_event(session, device_id, "stood_up", end, session_s=minutes * 60)
    session.add(
        SittingSession(
            event_id=_id(),
            device_id=device_id,
            started_at=start,
            ended_at=end,
            duration_s=minutes * 60,
        )
    )


def add_drill(session: Session, device_id: str, ts: datetime, verified: bool | None = None) -> None:
    """A guided drill's drill_completed and its row; ``verified`` None: sent by a desk that
    did not check the seat (it counts)."""
    said = {} if verified is None else {"verified": verified}
    add_event(session, device_id, "drill_completed", ts, guided=True, **said)
    session.add(
        Drill(
            event_id=_id(), device_id=device_id, ts=ts, guided=True, verified=verified is not False
        )
    )


def add_rollup(session: Session, device_id: str, day: date, **figures: float) -> None:
    """A stored rollup row, and the fleet's row of its day counted again, as ingest does
    (server/fleet_days.py)."""
    session.add(DailyRollup(device_id=device_id, day=day, **{**empty_figures(), **figures}))
    session.flush()
    fleet_days.refresh(session.connection(), [day])


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


# --- the hand-computed set ------------------------------------------------------------------


def seed_small(engine: Engine) -> None:
    """Three devices around NOW (Wed 2026-11-25 15:30 UTC); the expected figures are in
    tests/test_stats.py. desk-a is online and seated since 14:50; desk-b's last event is
    "seated" but it was last heard 2 h ago, so it is offline and not seated; desk-c is online
    and idle."""
    d = TODAY
    with Session(engine) as s:
        add_device(s, "desk-a", "Desk A", last_seen=NOW - timedelta(seconds=60))
        add_device(s, "desk-b", "Desk B", last_seen=NOW - timedelta(hours=2))
        add_device(s, "desk-c", "Desk C", last_seen=NOW - timedelta(seconds=30))
        s.flush()
        # desk-a today: three finished stretches (40 + 70 + 25 = 135 min) and one open.
        add_session(s, "desk-a", at(d, 9), 40)
        add_session(s, "desk-a", at(d, 10), 70)
        add_session(s, "desk-a", at(d, 13), 25)
        add_event(s, "desk-a", "seated", at(d, 14, 50))
        add_event(s, "desk-a", "prompt", at(d, 10, 30), level=1, seated_s=1800, quiet=False)
        add_event(s, "desk-a", "prompt_ack", at(d, 10, 31), how="drill", response_s=60)
        add_event(s, "desk-a", "prompt_ack", at(d, 13, 26), how="button", response_s=5)
        add_event(s, "desk-a", "prompt", at(d, 15, 20), level=1, seated_s=1800, quiet=False)
        # Before 04:00: counts to yesterday, not today.
        add_event(s, "desk-a", "prompt", at(d, 3, 30), level=2, seated_s=2700, quiet=False)
        add_event(s, "desk-a", "prompt_ack", at(d, 3, 31), how="drill", response_s=30)
        add_drill(s, "desk-a", at(d, 10, 31))
        add_drill(s, "desk-a", at(d, 13, 27))
        # desk-b today: one stretch, then seated again at 12:00, then silence.
        add_session(s, "desk-b", at(d, 11), 30)
        add_event(s, "desk-b", "seated", at(d, 12))
        add_event(s, "desk-b", "prompt", at(d, 12, 30), level=1, seated_s=1800, quiet=False)
        add_drill(s, "desk-b", at(d, 11, 31))

        add_rollup(s, "desk-a", d, seated_s=8100, sessions=3, longest_s=4200, breaks=2,
                   prompts=2, prompts_answered=2, prompts_answered_by_drill=1,
                   drills=2)  # fmt: skip
        add_rollup(s, "desk-b", d, seated_s=1800, sessions=1, longest_s=1800, drills=1, prompts=1)
        add_rollup(s, "desk-b", d - timedelta(days=1), seated_s=9000, sessions=3,
                   longest_s=5400, breaks=2, drills=1)  # fmt: skip
        # desk-a's history: drill days 11-10..11-15 (a run of 6), 11-17..11-19 (3),
        # a gap on 11-20, then 11-21..11-25 (5, the current run).
        history = {
            date(2026, 11, 24): (20000, 5, 3600, 1),
            date(2026, 11, 23): (18000, 4, 5000, 1),
            date(2026, 11, 22): (3600, 1, 3600, 1),
            date(2026, 11, 21): (3000, 1, 3000, 2),
            date(2026, 11, 20): (25000, 4, 7200, 0),
            date(2026, 11, 19): (15000, 4, 4000, 1),
            date(2026, 11, 18): (14000, 4, 3900, 1),
            date(2026, 11, 17): (13000, 3, 3800, 1),
            **{date(2026, 11, n): (10000, 3, 3500, 1) for n in range(10, 16)},
        }
        for day, (seated, sessions, longest, drills) in history.items():
            add_rollup(s, "desk-a", day, seated_s=seated, sessions=sessions, longest_s=longest,
                       breaks=sessions - 1, drills=drills)  # fmt: skip
        s.commit()


# --- one person's desks for the personal page, worked out in tests/test_personal.py --------


def seed_personal(engine: Engine) -> None:
    """bob (member) has desk-a and desk-b; alice (admin) has desk-c; NOW is Wednesday
    2026-11-25 15:30 UTC, days start 04:00 UTC.

    bob today: desk-a 09:00-09:40, 10:00-11:10, 13:00-13:25 and seated since 14:50; desk-b
    11:05-11:30, which overlaps desk-a's: 40 + 90 + 25 + 40 = 195 min (11700 s), longest
    90 min, stand-ups in hours 09, 11 and 13. Last Wednesday: 09:00-10:00 and 14:00-16:00,
    of which 60 + 90 = 150 min (9000 s) by 15:30. Monday 45 min, Tuesday 30 min; last
    Monday 60 min. This week so far 270 min against 210 (16200 s against 12600 s).
    alice today: desk-c 08:00-13:00 (300 min)."""
    with Session(engine) as s:
        add_device(s, "desk-a", "Desk A", last_seen=at(TODAY, 15, 29))
        add_device(s, "desk-b", "Desk B", last_seen=at(TODAY, 15, 29))
        add_device(s, "desk-c", "Desk C", last_seen=at(TODAY, 15, 29))
        s.flush()
        add_session(s, "desk-a", at(TODAY, 9), 40)
        add_session(s, "desk-a", at(TODAY, 10), 70)
        add_session(s, "desk-a", at(TODAY, 13), 25)
        add_event(s, "desk-a", "seated", at(TODAY, 14, 50))
        add_session(s, "desk-b", at(TODAY, 11, 5), 25)
        add_session(s, "desk-a", at(TODAY - timedelta(days=7), 9), 60)
        add_session(s, "desk-b", at(TODAY - timedelta(days=7), 14), 120)
        add_session(s, "desk-a", at(TODAY - timedelta(days=2), 9), 45)
        add_session(s, "desk-a", at(TODAY - timedelta(days=1), 9), 30)
        add_session(s, "desk-a", at(TODAY - timedelta(days=9), 9), 60)
        add_session(s, "desk-c", at(TODAY, 8), 300)
        s.commit()
    add_user(engine, "alice")
    add_user(engine, "bob", role="member")
    add_user(engine, "carol", role="member")
    from sitwatch.server.members import link_desk

    with Session(engine) as session:
        link_desk(session, "bob", "desk-a")
        link_desk(session, "bob", "desk-b")
        link_desk(session, "alice", "desk-c")
        session.commit()


# --- a working week for the insights, worked out by hand in tests/test_insights.py --------

# Monday 2026-11-16 to Sunday 2026-11-22; "now" is Friday afternoon (days start 04:00 UTC).
WEEK_FIRST = date(2026, 11, 16)
WEEK_LAST = date(2026, 11, 22)
WEEK_NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
WEEK_TODAY = date(2026, 11, 20)
HOSTILE_STEP = "<script>alert(1)</script>"


def prompt(s: Session, device_id: str, ts: datetime, level: int = 1, quiet: bool = False) -> None:
    add_event(s, device_id, "prompt", ts, level=level, seated_s=1800, quiet=quiet)


def ack(s: Session, device_id: str, ts: datetime, how: str, response_s: float) -> None:
    add_event(s, device_id, "prompt_ack", ts, how=how, response_s=response_s)


def guided_drill(
    s: Session, device_id: str, start: datetime, step_s: float = 30, verified: bool | None = None
) -> None:
    """drill_started, one drill_step per circuit step, drill_completed (as the tracker)."""
    from sitwatch.drill import CIRCUIT

    add_event(s, device_id, "drill_started", start, guided=True)
    for index, step in enumerate(CIRCUIT):
        add_event(s, device_id, "drill_step", start + timedelta(seconds=index * step_s),
                  index=index, step=step.key)  # fmt: skip
    add_drill(s, device_id, start + timedelta(seconds=len(CIRCUIT) * step_s), verified)


def seed_week(engine: Engine) -> None:
    """Two desks, Monday 16 to Friday 20 November 2026 (times UTC), events as the tracker
    sends them plus the derived session and drill rows (``seed_week_rows``); rollups,
    nudges and daily insight rows rebuilt by ingest's own ``rebuild_all_rollups``. What
    each day holds is spelled out next to the expected figures in tests/test_insights.py."""
    from sitwatch.calendar import Calendar
    from sitwatch.server.ingest.derive import rebuild_all_rollups

    seed_week_rows(engine)
    with engine.begin() as connection:
        rebuild_all_rollups(connection, Calendar("UTC", 4))


def seed_week_rows(engine: Engine) -> None:
    """seed_week's events, sessions and drills, without anything derived from them."""
    mon, tue, wed, thu, fri = (WEEK_FIRST + timedelta(days=n) for n in range(5))
    with Session(engine) as s:
        add_device(s, "desk-a", "Desk A", last_seen=WEEK_NOW)
        add_device(s, "desk-b", "Desk B", last_seen=WEEK_NOW)
        s.flush()
        # desk-a, Monday: prompt 08:30 answered by the drill at 08:32, stood 08:34.
        add_session(s, "desk-a", at(mon, 8), 34)
        prompt(s, "desk-a", at(mon, 8, 30))
        ack(s, "desk-a", at(mon, 8, 32), "drill", 120)
        guided_drill(s, "desk-a", at(mon, 8, 32))  # completed 08:35
        # A nudge escalating four times, stood up 70 min after the first prompt.
        add_session(s, "desk-a", at(mon, 9), 100)
        for level, minute in enumerate((30, 45, 60, 75), start=1):
            prompt(s, "desk-a", at(mon, 9) + timedelta(minutes=minute), min(level, 3))
        ack(s, "desk-a", at(mon, 10, 40), "stood_up", 4200)
        add_session(s, "desk-a", at(mon, 11), 10)
        # A silent prompt at 13:30, an audible one at 13:45, stood 13:49, drill at 14:10.
        add_session(s, "desk-a", at(mon, 13), 49)
        prompt(s, "desk-a", at(mon, 13, 30), quiet=True)
        prompt(s, "desk-a", at(mon, 13, 45), 2)
        ack(s, "desk-a", at(mon, 13, 49), "stood_up", 1140)
        add_drill(s, "desk-a", at(mon, 14, 10))
        # desk-a, Tuesday: 7 h seated (over budget), three nudges each answered after 90 min.
        add_session(s, "desk-a", at(tue, 8), 120)
        prompt(s, "desk-a", at(tue, 8, 30))
        prompt(s, "desk-a", at(tue, 8, 45), 2)
        ack(s, "desk-a", at(tue, 10), "stood_up", 5400)
        add_session(s, "desk-a", at(tue, 10, 5), 120)
        prompt(s, "desk-a", at(tue, 10, 35))
        ack(s, "desk-a", at(tue, 12, 5), "stood_up", 5400)
        add_session(s, "desk-a", at(tue, 13), 120)
        prompt(s, "desk-a", at(tue, 13, 30))
        ack(s, "desk-a", at(tue, 15), "stood_up", 5400)
        add_session(s, "desk-a", at(tue, 15, 10), 60)
        add_drill(s, "desk-a", at(tue, 16, 20))
        # desk-a, Thursday: short bouts (one exactly 15 min), a drill, and a late night
        # 23:30-01:10 with a silent prompt at midnight (all of it counts to Thursday).
        add_session(s, "desk-a", at(thu, 9), 20)
        add_session(s, "desk-a", at(thu, 9, 30), 15)
        add_session(s, "desk-a", at(thu, 10), 14)
        add_drill(s, "desk-a", at(thu, 10, 20))
        add_session(s, "desk-a", at(thu, 23, 30), 100)
        prompt(s, "desk-a", at(fri, 0), quiet=True)
        ack(s, "desk-a", at(fri, 1, 10), "stood_up", 4200)
        # desk-a, Friday: stood 10 min after the prompt, no drill yet; seated again since
        # 14:00 (a stretch in progress, not a bout).
        add_session(s, "desk-a", at(fri, 8), 40)
        prompt(s, "desk-a", at(fri, 8, 30))
        ack(s, "desk-a", at(fri, 8, 40), "stood_up", 600)
        add_event(s, "desk-a", "seated", at(fri, 14))

        # desk-b, Monday: exactly 30 min, then the guided circuit.
        add_session(s, "desk-b", at(mon, 9), 30)
        guided_drill(s, "desk-b", at(mon, 9, 35))
        # desk-b, Tuesday: stood a minute after the prompt, drill 10 min later.
        add_session(s, "desk-b", at(tue, 10), 31)
        prompt(s, "desk-b", at(tue, 10, 30))
        ack(s, "desk-b", at(tue, 10, 31), "stood_up", 60)
        add_drill(s, "desk-b", at(tue, 10, 40))
        # desk-b, Wednesday: no sitting, one drill step with a name no circuit has.
        add_event(s, "desk-b", "drill_step", at(wed, 17), index=0, step=HOSTILE_STEP)
        # desk-b, Thursday: a prompt at 09:30 answered with the circuit from 09:31, done on
        # the chair (not verified: it answers nothing and counts nowhere); stood up at 09:34.
        add_session(s, "desk-b", at(thu, 9), 34)
        prompt(s, "desk-b", at(thu, 9, 30))
        guided_drill(s, "desk-b", at(thu, 9, 31), verified=False)  # completed 09:34
        ack(s, "desk-b", at(thu, 9, 34), "stood_up", 240)
        # desk-b, Friday: a drill at 09:25; then a prompt at 10:30 answered by a drill
        # done seated, a new nudge at 11:05 and the stand-up only at 11:40 (from a desk
        # that did not check the seat yet: its drill counts, as it did then).
        add_session(s, "desk-b", at(fri, 9), 20)
        add_drill(s, "desk-b", at(fri, 9, 25))
        add_session(s, "desk-b", at(fri, 10), 100)
        prompt(s, "desk-b", at(fri, 10, 30))
        ack(s, "desk-b", at(fri, 10, 31), "drill", 60)
        add_drill(s, "desk-b", at(fri, 10, 34))
        prompt(s, "desk-b", at(fri, 11, 5), 2)
        ack(s, "desk-b", at(fri, 11, 40), "stood_up", 2100)
        s.commit()


# --- weeks of plausible office days from the real tracker, for the browser test ------------


def demo_events(device_ids: list[str], now: datetime, days: int = 35, seed: int = 3) -> list[Any]:
    """Protocol events the real SittingTracker emits over ``days`` working days before
    ``now``'s day (sitwatch.device.history) plus today up to ``now``: what devices would have
    sent."""
    from sitwatch.clock import FakeClock
    from sitwatch.device.history import desk_day, history
    from sitwatch.device.tracker import SittingTracker
    from sitwatch.protocol import new_id
    from sitwatch.settings import TrackerSettings

    today = (now - timedelta(hours=4)).date()
    events: list[Any] = []
    for index, device_id in enumerate(device_ids):
        events += history(device_id, days, end=today, seed=seed)
        rng = random.Random(f"{device_id}:{seed}:today")
        start = at(today, 8, 20) + timedelta(minutes=25 * index + rng.uniform(0, 20))
        todays: list[Any] = []
        clock = FakeClock(mono=1000.0, wall_time=start)
        tracker = SittingTracker(
            TrackerSettings(), clock, todays.append, device_id=device_id, boot_id=new_id()
        )
        desk_day(tracker, clock, rng, now - timedelta(minutes=30))
        events += [e for e in todays if e.ts <= now]  # the rest has not happened yet
    return events


class FormReader(HTMLParser):
    """The values a browser would submit from the form whose class is ``form_class``: text
    and hidden inputs, ticked boxes, each select's chosen option (else its first)."""

    def __init__(self, form_class: str) -> None:
        super().__init__()
        self.form_class, self.inside = form_class, False
        self.values: dict[str, str] = {}
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.inside = self.form_class in attr.get("class", "").split()
        elif not self.inside:
            return
        elif tag == "select":
            self._select = attr.get("name")
        elif tag == "option" and self._select is not None:
            if "selected" in attr or self._select not in self.values:
                self.values[self._select] = attr.get("value", "")
        elif tag == "input" and "name" in attr:
            kind = attr.get("type", "text")
            if kind in ("text", "hidden") or (kind == "checkbox" and "checked" in attr):
                self.values[attr["name"]] = attr.get("value", "on")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "form":
            self.inside = False


def shown_settings(page: str) -> dict[str, str]:
    """The values the settings form in ``page`` holds, as a browser would submit them."""
    reader = FormReader("settings-form")
    reader.feed(page)
    return reader.values


def settings_form(client: FlaskClient, device_id: str, **changes: str | None) -> dict[str, str]:
    """The settings form of ``device_id`` as its page shows it (values, ticked boxes, chosen
    options, the CSRF token), with ``changes`` as a person would type them; a change to None
    leaves that field out (an unticked box). Weekday fields are spelled ``work_mon_start``
    here for ``work_mon-start``."""
    page = client.get(f"/devices/{device_id}/settings").get_data(as_text=True)
    form: dict[str, str | None] = {
        **shown_settings(page),
        **{re.sub(r"^(work_\w{3})_", r"\1-", key): value for key, value in changes.items()},
    }
    return {key: value for key, value in form.items() if value is not None}
