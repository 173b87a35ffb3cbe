"""Shared fixtures. Integration tests get a real Apache Kafka broker started here.

The broker lives in ``.local/test-kafka`` on 127.0.0.1:19092 (``INSIDERWATCH_TEST_KAFKA_PORT``
overrides). If it cannot start, every integration test *fails*: a missing broker is a broken
environment, not a reason to skip.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from insiderwatch.models.train import train_model
from insiderwatch.simulation.simulate import SimulationConfig, simulate, write_jsonl
from insiderwatch.stream.offline import read_jsonl

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _terminal_line(config, line: str) -> None:
    """Write a line to the real terminal (captured output is hidden for passing tests)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is None:
        reporter.write_line(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture
def report(request):
    """``report("...")``: a figure the CI log must show (broker version, count checks)."""
    yield lambda line: _terminal_line(request.config, line)


@pytest.fixture(scope="session")
def kafka_broker(request):
    from insiderwatch.stream.broker import BrokerError, LocalKafka

    port = int(os.environ.get("INSIDERWATCH_TEST_KAFKA_PORT", "19092"))
    broker = LocalKafka(
        REPO / ".local" / "test-kafka", port=port, controller_port=port + 1, heap_mb=512
    )
    try:
        message = broker.start(timeout_s=120, fresh=True)  # every test's topics are its own
    except BrokerError as exc:
        pytest.fail(f"the local Kafka broker could not start: {exc}", pytrace=False)
    _terminal_line(request.config, f"\n[kafka] {message}; Apache Kafka version {broker.version()}")
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def small_history(tmp_path_factory) -> Path:
    """14 days of a 60-actor organisation, no scenarios."""
    path = tmp_path_factory.mktemp("history") / "history.jsonl"
    write_jsonl(
        simulate(SimulationConfig(actors=60, days=14, seed=3, with_scenarios=False)), str(path)
    )
    return path


@pytest.fixture(scope="session")
def small_model(small_history, tmp_path_factory) -> Path:
    """A model trained on :func:`small_history` (alert budget raised so small tests alert)."""
    from insiderwatch.models.events import parse_event

    events = [parse_event(raw) for _, raw in read_jsonl(small_history)]
    model_dir = tmp_path_factory.mktemp("model")
    train_model(events, model_dir, alert_budget=5.0, n_estimators=50, warmup_days=5, seed=1)
    return model_dir
