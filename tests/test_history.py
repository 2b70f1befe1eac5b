"""The generated history (demo and benchmarks): realistic, valid on the wire, repeatable."""

from __future__ import annotations

from datetime import date

from sitwatch import protocol
from sitwatch.history import count_types, history
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
