"""The one policy for logging rejected messages: one line each, no traceback, repeats of the
same kind from the same source counted and summed up once per interval."""

from __future__ import annotations

import logging

import pytest

from sitwatch.clock import FakeClock
from sitwatch.mqtt import _PahoLog
from sitwatch.protocol import ProtocolError
from sitwatch.rejects import MAX_SOURCES, RejectLog, reason_of

log = logging.getLogger("test.rejects")


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


@pytest.fixture(autouse=True)
def _warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=log.name)


def test_the_first_rejection_is_logged_in_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rejects = RejectLog(log, FakeClock().monotonic)
    rejects.reject("desk-1", "rejected message on 'sitwatch/desk-1/event'", ProtocolError("bad"))
    rejects.reject("desk-1", "rejected message", OverflowError("date value\nout of range"))
    assert lines(caplog) == [
        "rejected message on 'sitwatch/desk-1/event': bad",
        "rejected message: OverflowError: date value out of range",
    ]
    assert all(record.exc_info is None for record in caplog.records)


def test_repeats_are_counted_and_summed_up_when_the_interval_is_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    rejects = RejectLog(log, clock.monotonic, interval_s=60)
    for n in range(100):
        rejects.reject("desk-1", "rejected message", ProtocolError(f"bad {n}"))
        clock.advance(0.1)
    rejects.reject("desk-2", "rejected message", ProtocolError("other desk"))
    assert lines(caplog) == ["rejected message: bad 0", "rejected message: other desk"]
    rejects.flush()  # desk-1's interval is not over yet
    assert len(lines(caplog)) == 2
    clock.advance(50)
    rejects.flush()
    assert lines(caplog)[2] == (
        "99 more like this from desk-1 (logged once per 60 s); the last: rejected message: bad 99"
    )
    # After the summary the next one is logged in full again.
    rejects.reject("desk-1", "rejected message", ProtocolError("bad again"))
    assert lines(caplog)[-1] == "rejected message: bad again"
    rejects.flush(everything=True)  # at shutdown: no repeats to report
    assert len(lines(caplog)) == 4


def test_a_new_kind_of_error_from_the_same_source_is_logged_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rejects = RejectLog(log, FakeClock().monotonic)
    rejects.reject("desk-1", "m", ProtocolError("bad"))
    rejects.reject("desk-1", "m", KeyError("x"))
    rejects.reject("desk-1", "m", ProtocolError("bad"))
    assert lines(caplog) == ["m: bad", "m: KeyError: 'x'"]


def test_a_flood_of_source_names_shares_one_entry(caplog: pytest.LogCaptureFixture) -> None:
    rejects = RejectLog(log, FakeClock().monotonic)
    for n in range(MAX_SOURCES + 500):
        rejects.reject(f"desk-{n}", "m", ProtocolError("bad"))
    assert len(lines(caplog)) == MAX_SOURCES + 1  # the rest count under "other sources"
    rejects.flush(everything=True)
    assert lines(caplog)[-1].startswith("499 more like this from other sources")


def test_a_long_reason_is_cut() -> None:
    assert len(reason_of(ProtocolError("x" * 10_000))) == 300
    assert reason_of(ValueError()) == "ValueError"


def test_paho_logs_at_debug_but_a_callback_exception_as_an_error_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    paho = _PahoLog(log.getChild("paho"))
    caplog.set_level(logging.DEBUG, logger=log.name)
    paho.log(logging.ERROR, "failed to receive on socket: %s", "reset")
    try:
        raise ValueError("boom")
    except ValueError as exc:
        paho.log(logging.ERROR, "Caught exception in on_message: %s", exc)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "failed to receive on socket: reset"),
        (logging.ERROR, "Caught exception in on_message: boom"),
    ]
    assert caplog.records[1].exc_info is not None and caplog.records[1].exc_info[0] is ValueError
    caplog.clear()
    caplog.set_level(logging.INFO, logger=log.name)
    paho.log(logging.DEBUG, "Received PUBLISH (m%d)", 1)
    assert caplog.records == []
