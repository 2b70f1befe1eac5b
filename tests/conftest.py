"""Shared fixtures: real brokers (Mosquitto, NATS), a fake clock and gpiozero's MockFactory
(and the end of the private PostgreSQL that tests/server_helpers.py starts on first use)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from sitwatch.broker import BrokerProcess, Mosquitto, NatsCluster, NatsServer, find_nats_server
from sitwatch.clock import FakeClock


def pytest_sessionfinish(session: pytest.Session) -> None:
    helpers = sys.modules.get("server_helpers")  # only a run that used it started a server
    if helpers is not None:
        helpers.stop_private_postgres()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One real mosquitto per test session, on a free port."""
    with Mosquitto(workdir=str(tmp_path_factory.mktemp("mosquitto"))) as running:
        yield running


@pytest.fixture(scope="session")
def nats_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One real nats-server per test session with its MQTT listener, on free ports and with
    its own JetStream store (never the machine's own NATS)."""
    with NatsServer(workdir=str(tmp_path_factory.mktemp("nats"))) as running:
        yield running


@pytest.fixture
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """Three nats-server nodes of the test's own, routed to each other on loopback, with
    JetStream and MQTT on each (a test may SIGKILL one); stopped and removed afterwards."""
    if find_nats_server() is None:
        pytest.skip("nats-server is not installed (scripts/test installs it: apt nats-server)")
    with NatsCluster(3, workdir=str(tmp_path_factory.mktemp("nats-cluster"))) as cluster:
        yield cluster


@pytest.fixture(params=["mosquitto", "nats"])
def any_broker(request: pytest.FixtureRequest) -> BrokerProcess:
    """Each broker the delivery path is tested on, in turn (docs/deploy.md lists them)."""
    return request.getfixturevalue("broker" if request.param == "mosquitto" else "nats_broker")


@pytest.fixture
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A broker of the test's own, for tests that stop, kill or restart it."""
    broker = Mosquitto(workdir=str(tmp_path_factory.mktemp("mosquitto-private")))
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mock_factory() -> Iterator[object]:
    """gpiozero's own mock pins (with PWM, for the LED and a tonal buzzer), as gpiozero's
    test-suite installs them; reset after the test."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    saved = Device.pin_factory
    factory = MockFactory(pin_class=MockPWMPin)
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = saved


@pytest.fixture
def sqlite_with_user(tmp_path: Path) -> Iterator[Engine]:
    """An empty SQLite dashboard database (schema only) with one admin, web_fixtures'
    alice."""
    from web_fixtures import add_user, make_engine_for

    engine = make_engine_for(tmp_path)
    add_user(engine)
    yield engine
    engine.dispose()
