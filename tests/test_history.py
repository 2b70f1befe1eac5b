"""The generated history (demo and benchmarks): realistic, valid on the wire, repeatable."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sitwatch import protocol
from sitwatch.device.history import PEOPLE, count_types, happened_by, history
from sitwatch.protocol import Event, EventType
from sitwatch.settings import TrackerSettings


def test_two_weeks_of_history_look_like_working_days() -> None:
    events = list(history("desk-7", 14, end=date(2026, 3, 16), seed=1))
    counts = count_types(events)
    days = {e.ts.date() for e in events}
    assert len(days) == 10  # weekends off
    assert all(d.weekday() < 5 for d in days)
    assert counts["seated"] == counts["stood_up"]
    assert 4 * 10 <= counts["seated"] <= 30 * 10
    assert counts["prompt"] > 0 and counts["drill_completed"] > 0 and counts["break"] > 0
    for event in events:
        wire = event.to_json()
        assert protocol.parse_event(wire, device_id="desk-7").to_json() == wire
        assert 8 <= event.ts.hour <= 20  # within the working day


def test_history_is_repeatable_and_follows_settings() -> None:
    first = [e.data for e in history("desk-1", 5, end=date(2026, 3, 7), seed=3)]
    again = [e.data for e in history("desk-1", 5, end=date(2026, 3, 7), seed=3)]
    assert first == again
    strict = TrackerSettings(sitting_limit_s=600, quiet_hours=None, active_hours=None)
    lenient = TrackerSettings(sitting_limit_s=3600, quiet_hours=None, active_hours=None)
    many = count_types(list(history("d", 5, end=date(2026, 3, 7), settings=strict)))
    few = count_types(list(history("d", 5, end=date(2026, 3, 7), settings=lenient)))
    assert many["prompt"] > few.get("prompt", 0)


# A Wednesday afternoon, as the demo's clock might read when it seeds.
NOW = datetime(2026, 3, 18, 14, 10, tzinfo=UTC)


def seat_events(events: list[Event]) -> list[str]:
    return [str(e.type) for e in events if e.type in (EventType.SEATED, EventType.STOOD_UP)]


@pytest.mark.parametrize("person", sorted(PEOPLE))
def test_history_until_now_has_nothing_later_and_ends_off_the_seat(person: str) -> None:
    """What the demo seeds: today up to now is in it, nothing after now, and a session
    still open at now is left out (a live desk takes over on an empty seat)."""
    for seed in range(5):
        events = list(history("desk-1", 14, until=NOW, seed=seed, person=PEOPLE[person]))
        assert events
        assert max(e.ts for e in events) <= NOW
        assert seat_events(events)[-1] == "stood_up"
        drills = [e.type for e in events if e.type in ("drill_started", "drill_completed")]
        assert not drills or drills[-1] == "drill_completed"  # no drill left running
        assert min(e.ts for e in events).date() >= (NOW - timedelta(days=13)).date()


def test_history_until_now_includes_today() -> None:
    events = list(history("desk-1", 3, until=NOW, person=PEOPLE["answers"]))
    today = [e for e in events if e.ts.date() == NOW.date()]
    assert today, "the day in progress is missing"
    assert seat_events(today)[0] == "seated"


def test_happened_by_cuts_an_open_session_and_a_running_drill() -> None:
    events = list(history("desk-1", 1, end=date(2026, 3, 19), person=PEOPLE["answers"]))
    started = next(i for i, e in enumerate(events) if e.type == EventType.DRILL_STARTED)
    sat = max(i for i in range(started) if events[i].type == EventType.SEATED)
    # Just as the drill begins (the session still open), and mid-drill (stood up by then,
    # the drill still running): both are cut back to before that session began.
    for now in (events[started].ts, events[started].ts + timedelta(seconds=100)):
        cut = happened_by(events, now)
        assert cut == events[: len(cut)] and 0 < len(cut) <= sat
    assert happened_by(events, events[-1].ts) == events  # a day that is over is kept whole


def test_the_demo_people_differ() -> None:
    """One answers its nudges, one snoozes and sits long, one works odd hours."""
    days = {name: list(history("desk-1", 28, until=NOW, person=p)) for name, p in PEOPLE.items()}

    def by_drill(events: list[Event]) -> float:
        acks = [e.data["how"] for e in events if e.type == EventType.PROMPT_ACK]
        return acks.count("drill") / len(acks)

    def mean_session_min(events: list[Event]) -> float:
        sessions = [e.data["session_s"] for e in events if e.type == EventType.STOOD_UP]
        return sum(sessions) / len(sessions) / 60

    answers, snoozes, odd = days["answers"], days["snoozes"], days["odd-hours"]
    assert by_drill(answers) > 0.5 > 0.2 > by_drill(snoozes)
    assert count_types(snoozes)["snooze"] > 5 * count_types(answers).get("snooze", 1)
    assert mean_session_min(snoozes) > 2 * mean_session_min(answers)
    assert {e.ts.hour for e in answers} <= set(range(8, 21))
    assert min(e.ts.hour for e in odd) >= 13 and max(e.ts.hour for e in odd) >= 21
    assert {e.ts.weekday() for e in odd} & {5, 6}, "no weekend"
    assert {e.ts.weekday() for e in answers} <= set(range(5))
