"""The sitting state machine, driven by a fake clock: an hour passes in microseconds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sitwatch.clock import FakeClock
from sitwatch.device.tracker import ButtonResult, SeatLog, SittingTracker, State
from sitwatch.drill import CIRCUIT
from sitwatch.protocol import Event, EventType
from sitwatch.settings import TrackerSettings

MIN = 60.0


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [str(e.type) for e in self.events]

    def of(self, kind: EventType) -> list[Event]:
        return [e for e in self.events if e.type == kind]


def make(clock: FakeClock, **settings: object) -> tuple[SittingTracker, Recorder]:
    rec = Recorder()
    tracker = SittingTracker(
        TrackerSettings(quiet_hours=None, **settings),  # type: ignore[arg-type]
        clock,
        rec,
        device_id="desk-1",
        boot_id="boot0001",
    )
    return tracker, rec


def run(tracker: SittingTracker, clock: FakeClock, seconds: float, step: float = 1.0) -> None:
    """Let time pass, ticking like the agent's loop would (every ``step`` seconds)."""
    end = clock.monotonic() + seconds
    while clock.monotonic() + step <= end:
        clock.advance(step)
        tracker.tick()
    clock.advance(end - clock.monotonic())
    tracker.tick()


def test_prompt_fires_exactly_at_the_limit(clock: FakeClock) -> None:
    tracker, rec = make(clock)
    start = clock.monotonic()
    tracker.seat_changed(True)
    clock.advance(30 * MIN - 0.5)
    tracker.tick()
    assert rec.of(EventType.PROMPT) == []
    clock.advance(3)  # the agent woke late: the prompt is still stamped at the limit
    tracker.tick()
    [prompt] = rec.of(EventType.PROMPT)
    assert prompt.mono == pytest.approx(start + 30 * MIN)
    assert prompt.data == {"level": 1, "seated_s": 1800.0, "quiet": False}
    assert tracker.state is State.PROMPTING
    assert tracker.next_deadline() == pytest.approx(start + 45 * MIN)


def test_twenty_second_lift_does_not_reset_the_session(clock: FakeClock) -> None:
    tracker, rec = make(clock)
    tracker.seat_changed(True)
    run(tracker, clock, 20 * MIN)
    tracker.seat_changed(False)
    run(tracker, clock, 20)
    tracker.seat_changed(True)
    run(tracker, clock, 10 * MIN)
    assert rec.types() == ["seated", "prompt"]


def test_three_minute_stand_up_ends_the_session_and_is_a_break(clock: FakeClock) -> None:
    tracker, rec = make(clock)
    tracker.seat_changed(True)
    run(tracker, clock, 25 * MIN)
    left = clock.monotonic()
    tracker.seat_changed(False)
    run(tracker, clock, 3 * MIN)
    assert rec.types() == ["seated", "stood_up", "break"]
    stood = rec.of(EventType.STOOD_UP)[0]
    assert stood.mono == pytest.approx(left)  # stamped when the user left, not at grace end
    assert stood.data["session_s"] == pytest.approx(25 * MIN)
    tracker.seat_changed(True)
    run(tracker, clock, 29 * MIN)
    assert rec.of(EventType.PROMPT) == []  # the stretch restarted after the break
    run(tracker, clock, 1 * MIN)
    assert len(rec.of(EventType.PROMPT)) == 1


def test_a_stand_shorter_than_a_break_does_not_restart_the_stretch(clock: FakeClock) -> None:
    tracker, rec = make(clock)
    tracker.seat_changed(True)
    run(tracker, clock, 20 * MIN)
    tracker.seat_changed(False)
    run(tracker, clock, 90)  # past the grace period, short of the 2 min break
    tracker.seat_changed(True)
    assert rec.types() == ["seated", "stood_up", "seated"]
    assert rec.events[-1].data["away_s"] == pytest.approx(90)
    run(tracker, clock, 10 * MIN)
    [prompt] = rec.of(EventType.PROMPT)
    assert prompt.data["seated_s"] == pytest.approx(30 * MIN, abs=1)


def test_reprompts_escalate_to_the_cap_while_seated(clock: FakeClock) -> None:
    tracker, rec = make(clock, reprompt_s=10 * MIN, max_level=3)
    tracker.seat_changed(True)
    run(tracker, clock, 30 * MIN + 45 * MIN, step=7)
    prompts = rec.of(EventType.PROMPT)
    assert [p.data["level"] for p in prompts] == [1, 2, 3, 3, 3]
    gaps = [b.mono - a.mono for a, b in zip(prompts, prompts[1:], strict=False)]
    assert gaps == pytest.approx([10 * MIN] * 4)


def test_standing_up_answers_the_prompt(clock: FakeClock) -> None:
    tracker, rec = make(clock)
    tracker.seat_changed(True)
    run(tracker, clock, 31 * MIN)
    tracker.seat_changed(False)
    run(tracker, clock, 3 * MIN)
    assert rec.types() == ["seated", "prompt", "stood_up", "prompt_ack", "break"]
    ack = rec.of(EventType.PROMPT_ACK)[0]
    assert ack.data == {"how": "stood_up", "response_s": pytest.approx(60)}


def test_quiet_hours_mark_prompts_quiet_but_time_still_counts() -> None:
    clock = FakeClock(wall_time=datetime(2026, 3, 2, 22, 10, tzinfo=UTC))
    rec = Recorder()
    settings = TrackerSettings.parse(
        {"timezone": "Europe/Berlin", "quiet_hours": {"start": "23:00", "end": "07:00"}}
    )
    tracker = SittingTracker(settings, clock, rec, device_id="d", boot_id="boot0001")
    tracker.seat_changed(True)  # 23:10 in Berlin
    run(tracker, clock, 31 * MIN)
    [prompt] = rec.of(EventType.PROMPT)
    assert prompt.data["quiet"] is True
    assert prompt.data["seated_s"] == pytest.approx(30 * MIN)


def test_snooze_delays_the_prompt_and_is_capped(clock: FakeClock) -> None:
    tracker, rec = make(clock, snooze_s=10 * MIN, max_snoozes=2, reprompt_s=15 * MIN)
    tracker.seat_changed(True)
    run(tracker, clock, 30 * MIN)
    assert tracker.button_held() is ButtonResult.SNOOZED
    assert tracker.state is State.SNOOZED
    run(tracker, clock, 10 * MIN - 1)
    assert len(rec.of(EventType.PROMPT)) == 1
    run(tracker, clock, 1)
    assert len(rec.of(EventType.PROMPT)) == 2  # back when the snooze ends
    assert tracker.button_held() is ButtonResult.SNOOZED
    run(tracker, clock, 10 * MIN)
    assert tracker.button_held() is ButtonResult.SNOOZE_REFUSED
    assert [s.data["count"] for s in rec.of(EventType.SNOOZE)] == [1, 2]
    assert rec.of(EventType.BREAK) == []  # a snooze while seated is never a break


def test_press_in_the_first_seconds_of_a_prompt_is_ignored(clock: FakeClock) -> None:
    tracker, rec = make(clock, press_ignore_s=2)
    tracker.seat_changed(True)
    run(tracker, clock, 30 * MIN)
    clock.advance(1)
    assert tracker.button_pressed() is ButtonResult.IGNORED
    clock.advance(1.5)
    assert tracker.button_pressed() is ButtonResult.DRILL_STARTED


def test_guided_drill_runs_every_step_to_completion(clock: FakeClock) -> None:
    tracker, rec = make(clock, drill_step_s=30)
    tracker.seat_changed(True)
    run(tracker, clock, 30 * MIN + 5)
    assert tracker.button_pressed() is ButtonResult.DRILL_STARTED
    assert tracker.state is State.IN_DRILL
    tracker.seat_changed(False)  # the user leaves the chair for the circuit
    run(tracker, clock, 30 * len(CIRCUIT))
    steps = rec.of(EventType.DRILL_STEP)
    assert [s.data["step"] for s in steps] == [step.key for step in CIRCUIT]
    assert [s.data["seated"] for s in steps] == [False] * len(CIRCUIT)
    done = rec.of(EventType.DRILL_COMPLETED)
    assert done[0].data == {"guided": True, "verified": True}
    [ack] = rec.of(EventType.PROMPT_ACK)  # the stand-up for the circuit does not answer it
    assert ack.data["how"] == "drill"
    assert ack.data["response_s"] == pytest.approx(5)  # from the prompt to the press
    assert ack.mono == done[0].mono  # sent as the circuit ends, just before it
    assert rec.types().index("prompt_ack") == rec.types().index("drill_completed") - 1
    assert rec.of(EventType.BREAK)  # three minutes off the seat is a break too
    assert tracker.state is State.EMPTY


def test_a_drill_done_seated_is_not_verified_and_leaves_the_prompt_open(
    clock: FakeClock,
) -> None:
    tracker, rec = make(clock, drill_step_s=30, reprompt_s=5 * MIN)
    tracker.seat_changed(True)
    run(tracker, clock, 30 * MIN + 5)
    assert tracker.button_pressed() is ButtonResult.DRILL_STARTED  # and stays on the chair
    run(tracker, clock, 30 * len(CIRCUIT))
    [done] = rec.of(EventType.DRILL_COMPLETED)
    assert done.data == {"guided": True, "verified": False}
    steps = rec.of(EventType.DRILL_STEP)
    # The first step (bands on) may be done seated; every later one says the seat is taken.
    assert [s.data["seated"] for s in steps] == [False] + [True] * (len(CIRCUIT) - 1)
    assert rec.of(EventType.PROMPT_ACK) == []
    assert tracker.state is State.PROMPTING
    run(tracker, clock, 2 * MIN)  # the re-prompt comes 5 min after the press, as it would
    assert [p.data["level"] for p in rec.of(EventType.PROMPT)] == [1, 2]
    tracker.seat_changed(False)  # the later stand-up answers it
    run(tracker, clock, 2 * MIN)
    [ack] = rec.of(EventType.PROMPT_ACK)
    assert ack.data["how"] == "stood_up"
    assert ack.data["response_s"] == pytest.approx(5 * MIN + 5)


def test_a_drill_seated_then_left_early_is_answered_by_the_stand_up(clock: FakeClock) -> None:
    tracker, rec = make(clock, drill_step_s=30)
    tracker.seat_changed(True)
    run(tracker, clock, 30 * MIN + 5)
    tracker.button_pressed()
    run(tracker, clock, 110)  # most of the three minutes on the chair
    tracker.seat_changed(False)
    run(tracker, clock, 70)  # the session ends (a 60 s lift) before the circuit does
    [done] = rec.of(EventType.DRILL_COMPLETED)
    assert done.data["verified"] is False
    [ack] = rec.of(EventType.PROMPT_ACK)
    assert ack.data == {"how": "stood_up", "response_s": pytest.approx(115)}
    assert ack.mono == done.mono


def test_a_short_sit_during_the_drill_still_counts(clock: FakeClock) -> None:
    tracker, rec = make(clock, drill_step_s=30)
    tracker.seat_changed(True)
    run(tracker, clock, 30 * MIN + 5)
    tracker.button_pressed()
    run(tracker, clock, 2)
    tracker.seat_changed(False)
    run(tracker, clock, 150)
    tracker.seat_changed(True)  # done with the band walks, sits down before the step ends
    run(tracker, clock, 28)
    [done] = rec.of(EventType.DRILL_COMPLETED)
    assert done.data["verified"] is True  # 30 s of 180 s seated: at most 20 % may be
    assert [a.data["how"] for a in rec.of(EventType.PROMPT_ACK)] == ["drill"]


def test_pressing_through_the_drill_on_the_chair_does_not_count(clock: FakeClock) -> None:
    tracker, rec = make(clock)
    tracker.seat_changed(True)
    run(tracker, clock, 30 * MIN + 3)
    tracker.button_pressed()
    for _ in CIRCUIT:
        run(tracker, clock, 1)
        tracker.button_pressed()
    assert rec.of(EventType.DRILL_COMPLETED)[0].data["verified"] is False
    assert rec.of(EventType.PROMPT_ACK) == []


def test_press_during_drill_skips_to_next_step(clock: FakeClock) -> None:
    tracker, rec = make(clock)
    tracker.seat_changed(True)
    run(tracker, clock, 30 * MIN + 3)
    tracker.button_pressed()
    for _ in CIRCUIT:
        assert tracker.button_pressed() is ButtonResult.DRILL_NEXT
    assert len(rec.of(EventType.DRILL_COMPLETED)) == 1
    assert tracker.state is not State.IN_DRILL


def test_press_outside_a_prompt_logs_a_drill_done_on_ones_own(clock: FakeClock) -> None:
    tracker, rec = make(clock)
    assert tracker.button_pressed() is ButtonResult.DRILL_LOGGED
    assert rec.of(EventType.DRILL_COMPLETED)[0].data == {"guided": False, "verified": True}


def test_a_drill_logged_with_the_button_counts_after_time_off_the_seat(clock: FakeClock) -> None:
    tracker, rec = make(clock, drill_step_s=30)  # a circuit of 3 min
    tracker.seat_changed(True)
    run(tracker, clock, 10 * MIN)
    tracker.seat_changed(False)
    run(tracker, clock, 2 * MIN)  # too short for the circuit
    tracker.button_pressed()
    run(tracker, clock, 30)
    tracker.seat_changed(True)  # back at the desk 30 s after 2.5 min away
    run(tracker, clock, 5)
    tracker.button_pressed()
    tracker.seat_changed(False)
    run(tracker, clock, 3 * MIN)
    tracker.button_pressed()
    verified = [e.data["verified"] for e in rec.of(EventType.DRILL_COMPLETED)]
    assert verified == [False, True, True]
    assert rec.of(EventType.PROMPT_ACK) == []


def test_pause_silences_prompts_for_an_hour(clock: FakeClock) -> None:
    tracker, rec = make(clock)
    start = clock.monotonic()
    tracker.seat_changed(True)
    tracker.button_long_held()
    run(tracker, clock, 59 * MIN)
    assert rec.of(EventType.PROMPT) == []
    run(tracker, clock, 2 * MIN)
    [prompt] = rec.of(EventType.PROMPT)
    assert prompt.mono == pytest.approx(start + 60 * MIN)  # when the pause ended
    assert prompt.data["seated_s"] == pytest.approx(60 * MIN)


def test_resume_ends_a_pause_and_a_due_prompt_comes_at_once(clock: FakeClock) -> None:
    tracker, rec = make(clock)
    tracker.seat_changed(True)
    tracker.pause(8 * 3600)
    run(tracker, clock, 40 * MIN)
    assert tracker.state is State.PAUSED and rec.of(EventType.PROMPT) == []
    resumed_at = clock.monotonic()
    assert tracker.resume() is True
    assert tracker.state is not State.PAUSED
    assert [e.data for e in rec.of(EventType.PAUSE)] == [{"pause_s": 8 * 3600}, {"pause_s": 0}]
    run(tracker, clock, 1)
    [prompt] = rec.of(EventType.PROMPT)
    assert prompt.mono == pytest.approx(resumed_at)  # the limit passed during the pause
    assert tracker.resume() is False  # nothing to end: no event
    assert len(rec.of(EventType.PAUSE)) == 2


def test_a_late_resume_keeps_a_pause_that_began_after_it_was_sent(clock: FakeClock) -> None:
    tracker, rec = make(clock)
    tracker.seat_changed(True)
    tracker.button_long_held()  # paused 10 min ago, after the resume below was sent
    run(tracker, clock, 10 * MIN)
    assert tracker.resume(issued_ago_s=15 * MIN) is False
    assert tracker.state is State.PAUSED
    assert len(rec.of(EventType.PAUSE)) == 1
    assert tracker.resume(issued_ago_s=5 * MIN) is True  # sent after the pause began
    assert tracker.state is not State.PAUSED


def test_durations_ignore_wall_clock_jumps(clock: FakeClock) -> None:
    tracker, rec = make(clock)
    clock.synced = False
    tracker.seat_changed(True)
    run(tracker, clock, 10 * MIN)
    clock.step_wall(-5 * 3600)  # NTP corrects a stale clock backwards
    clock.synced = True
    run(tracker, clock, 10 * MIN)
    clock.step_wall(+9 * 3600)
    run(tracker, clock, 10 * MIN)
    [prompt] = rec.of(EventType.PROMPT)
    assert prompt.data["seated_s"] == pytest.approx(30 * MIN)
    assert rec.events[0].clock_synced is False and prompt.clock_synced is True


def test_new_settings_apply_live(clock: FakeClock) -> None:
    tracker, rec = make(clock)
    tracker.seat_changed(True)
    run(tracker, clock, 15 * MIN)
    tracker.apply_settings(TrackerSettings(sitting_limit_s=20 * MIN, quiet_hours=None))
    run(tracker, clock, 5 * MIN)
    assert len(rec.of(EventType.PROMPT)) == 1


def test_events_carry_ids_boot_and_timestamps(clock: FakeClock) -> None:
    tracker, rec = make(clock)
    tracker.seat_changed(True)
    run(tracker, clock, 31 * MIN)
    ids = {e.id for e in rec.events}
    assert len(ids) == len(rec.events)
    for event in rec.events:
        assert event.boot_id == "boot0001" and event.device_id == "desk-1"
        assert event.ts.tzinfo is not None


def tracker_at(wall: datetime, **settings: object) -> tuple[SittingTracker, Recorder, FakeClock]:
    clock = FakeClock(wall_time=wall)
    rec = Recorder()
    tracker = SittingTracker(
        TrackerSettings.parse(settings), clock, rec, device_id="d", boot_id="boot0001"
    )
    return tracker, rec, clock


def test_outside_working_hours_prompts_are_silent_but_logged() -> None:
    # Saturday 10:00 UTC: the default active hours are Mon-Fri 09:00-18:00.
    tracker, rec, clock = tracker_at(datetime(2026, 3, 7, 10, 0, tzinfo=UTC), quiet_hours=None)
    tracker.seat_changed(True)
    run(tracker, clock, 31 * MIN)
    assert [p.data["quiet"] for p in rec.of(EventType.PROMPT)] == [True]
    # Monday 17:20: the first prompt (17:50) is in working hours, the re-prompt (18:05) not.
    tracker, rec, clock = tracker_at(datetime(2026, 3, 9, 17, 20, tzinfo=UTC), quiet_hours=None)
    tracker.seat_changed(True)
    run(tracker, clock, 46 * MIN)
    assert [p.data["quiet"] for p in rec.of(EventType.PROMPT)] == [False, True]


def test_custom_active_hours_per_weekday() -> None:
    hours = {"mon": "", "tue": "", "wed": "", "thu": "", "fri": "", "sat": "08:00-12:00"}
    tracker, rec, clock = tracker_at(
        datetime(2026, 3, 7, 9, 0, tzinfo=UTC), quiet_hours=None, active_hours=hours
    )
    tracker.seat_changed(True)
    run(tracker, clock, 31 * MIN)
    assert rec.of(EventType.PROMPT)[0].data["quiet"] is False


def test_quiet_hours_follow_a_dst_change() -> None:
    # Berlin springs forward on 2026-03-29 at 02:00 CET -> 03:00 CEST. Seated from 01:50
    # CET (00:50 UTC); the prompt comes 30 min later at 01:20 UTC = 03:20 CEST, after
    # quiet hours ending 03:00. A clock that ignored DST would say 02:20 and stay quiet.
    tracker, rec, clock = tracker_at(
        datetime(2026, 3, 29, 0, 50, tzinfo=UTC),
        timezone="Europe/Berlin",
        quiet_hours={"start": "22:00", "end": "03:00"},
        active_hours=None,
    )
    tracker.seat_changed(True)
    run(tracker, clock, 31 * MIN)
    [prompt] = rec.of(EventType.PROMPT)
    assert prompt.data["quiet"] is False
    assert prompt.data["seated_s"] == pytest.approx(30 * MIN)  # 30 min, not 90 or -30


def test_bad_active_hours_are_named() -> None:
    from sitwatch.settings import SettingsError

    with pytest.raises(SettingsError, match="active_hours.mon = '18:00-09:00'"):
        TrackerSettings.parse({"active_hours": {"mon": "18:00-09:00"}})


def test_seat_log_counts_empty_time_in_a_span_and_keeps_the_state_it_forgets() -> None:
    log = SeatLog()
    log.record(10.0, True)
    log.record(20.0, False)
    log.record(30.0, True)
    assert log.empty_s(0.0, 40.0) == pytest.approx(20.0)  # empty before 10 and 20..30
    assert log.empty_s(15.0, 25.0) == pytest.approx(5.0)
    log.forget_before(25.0)  # the change at 20 is still in force then: kept
    assert log.empty_s(15.0, 25.0) == pytest.approx(5.0)
    log.forget_before(35.0)  # only (30, seated) is kept: the seat was empty until then
    assert log.empty_s(25.0, 40.0) == pytest.approx(5.0)
    log.record(50.0, False)
    log.forget_before(55.0)  # only (50, empty) is kept: the seat was taken until then
    assert log.empty_s(45.0, 60.0) == pytest.approx(10.0)
