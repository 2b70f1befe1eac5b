"""Analog pressure mat: calibration, thresholds with hysteresis, the real gpiozero MCP3008
class over MockFactory SPI, and the calibrate command."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero import MCP3008
from mock_mcp3008 import MockMCP3008

from sitwatch.clock import FakeClock
from sitwatch.device.agent import Agent
from sitwatch.device.analog_seat import (
    AnalogSeat,
    Calibration,
    CalibrationError,
    calibrate,
    load_calibration,
    save_calibration,
)
from sitwatch.device.config import DeviceConfig, PinsConfig
from sitwatch.device.hardware import HardwareError
from sitwatch.protocol import Event

# MockFactory has no hardware SPI: gpiozero warns once and talks software SPI to the mock.
pytestmark = pytest.mark.filterwarnings("ignore::gpiozero.SPISoftwareFallback")


@pytest.fixture
def adc_chip(mock_factory: object) -> Iterator[MockMCP3008]:
    chip = MockMCP3008()
    yield chip
    chip.close()


def test_threshold_at_three_quarters_of_the_gap_with_hysteresis() -> None:
    seat = AnalogSeat(Calibration(empty=0.10, occupied=0.70), 0.75, 0.15, window=1)
    assert not seat.add(0.50)  # 0.667 of the gap: below 0.75
    assert seat.add(0.56)  # 0.767: occupied
    assert seat.add(0.50)  # 0.667: still above the 0.60 release point
    assert not seat.add(0.45)  # 0.583: empty again


def test_sensor_that_reads_lower_under_load() -> None:
    seat = AnalogSeat(Calibration(empty=0.90, occupied=0.30), window=1)
    assert seat.add(0.40)  # 0.833 of the way down: occupied
    assert not seat.add(0.85)


def test_moving_average_ignores_a_single_spike() -> None:
    seat = AnalogSeat(Calibration(empty=0.1, occupied=0.7), window=5)
    for _ in range(5):
        seat.add(0.1)
    assert not seat.add(0.95)  # one spike: average 0.27
    for _ in range(4):
        seat.add(0.7)
    assert seat.occupied


def test_calibration_too_close_or_out_of_range() -> None:
    with pytest.raises(CalibrationError, match="too close"):
        Calibration(empty=0.40, occupied=0.42)
    with pytest.raises(CalibrationError, match="outside 0..1"):
        Calibration(empty=-0.1, occupied=0.5)


def test_calibrate_walks_the_user_through_with_the_real_mcp3008(adc_chip: MockMCP3008) -> None:
    adc_chip.values[0] = 0.12  # empty chair
    messages: list[str] = []

    def ask(message: str) -> None:
        messages.append(message)
        if "SIT" in message:
            adc_chip.values[0] = 0.66  # the user sits down before pressing Enter

    with MCP3008(channel=0) as adc:
        result = calibrate(lambda: float(adc.value), ask, samples=5)
    assert result.empty == pytest.approx(0.12, abs=0.01)
    assert result.occupied == pytest.approx(0.66, abs=0.01)
    assert len(messages) == 2 and "EMPTY" in messages[0]


def test_stored_calibration_round_trips_and_bad_files_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    save_calibration(path, Calibration(0.1, 0.7))
    assert load_calibration(path) == Calibration(0.1, 0.7)
    path.write_text("{not json")
    assert load_calibration(path) is None
    assert load_calibration(tmp_path / "missing.json") is None


def test_agent_sees_a_sitter_on_the_analog_mat(
    adc_chip: MockMCP3008, mock_factory: object, clock: FakeClock, tmp_path: Path
) -> None:
    config = DeviceConfig(
        data_dir=str(tmp_path), pins=PinsConfig(mat_kind="mcp3008", adc_channel=3)
    )
    save_calibration(config.calibration_path, Calibration(empty=0.1, occupied=0.7))
    events: list[Event] = []
    bot = Agent(config, clock, pin_factory=mock_factory, sinks=[events.append])
    try:
        adc_chip.values[3] = 0.68
        for _ in range(5):  # the sampler's work, done by hand so the test is deterministic
            bot.hardware.sample()
        bot.step(timeout_s=1)
        assert [str(e.type) for e in events] == ["seated"]
        adc_chip.values[3] = 0.1
        for _ in range(5):
            bot.hardware.sample()
        bot.step(timeout_s=1)
        assert bot.tracker.is_seated is False
    finally:
        bot.close()


def test_uncalibrated_analog_mat_is_a_clear_error(
    mock_factory: object, clock: FakeClock, tmp_path: Path
) -> None:
    config = DeviceConfig(data_dir=str(tmp_path), pins=PinsConfig(mat_kind="mcp3008"))
    with pytest.raises(HardwareError, match="sitwatch-device calibrate"):
        Agent(config, clock, pin_factory=mock_factory)


def test_calibrate_command(
    adc_chip: MockMCP3008,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sitwatch.device.cli import main

    adc_chip.values[0] = 0.3  # a sensor that does not respond: both readings alike
    monkeypatch.setattr("sys.stdin", io.StringIO("\n\n"))
    with pytest.raises(SystemExit) as exited:
        main(["--data-dir", str(tmp_path), "calibrate", "--samples", "3"])
    assert exited.value.code == 2
    said = capsys.readouterr()
    assert "Leave the seat EMPTY" in said.out
    assert "too close" in said.err
    assert not (tmp_path / "calibration.json").exists()


def test_calibrate_command_saves_both_readings(
    adc_chip: MockMCP3008,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sitwatch.device.cli import main

    class User(io.StringIO):
        """Presses Enter on an empty seat, then sits down and presses Enter again."""

        readings = iter([0.1, 0.7])

        def readline(self, *_args: object) -> str:
            adc_chip.values[0] = next(self.readings)
            return "\n"

    monkeypatch.setattr("sys.stdin", User())
    main(["--data-dir", str(tmp_path), "calibrate", "--samples", "3"])
    said = capsys.readouterr().out
    assert "Now SIT normally" in said
    assert "saved" in said and 'set mat_kind = "mcp3008"' in said
    saved = load_calibration(tmp_path / "calibration.json")
    assert saved is not None
    assert saved.empty == pytest.approx(0.1, abs=0.01)
    assert saved.occupied == pytest.approx(0.7, abs=0.01)
