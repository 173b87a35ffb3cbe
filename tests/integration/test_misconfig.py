"""Misconfiguration against a live broker: a missing topic is one sentence, not a hang."""

from __future__ import annotations

import time

import pytest

from tests.test_cli import run_cli

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("command", ["worker", "tail", "replay"])
def test_missing_topic_is_one_sentence_and_non_zero(kafka_broker, small_model, command):
    args = {
        "worker": ["worker", "--model-dir", str(small_model), "--topic-events", "no-such-events"],
        "tail": ["tail", "--topic-alerts", "no-such-events"],
        "replay": ["replay", "pyproject.toml", "--topic-events", "no-such-events"],
    }[command]
    started = time.monotonic()
    result = run_cli(*args, "--broker", kafka_broker.bootstrap)
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "no-such-events does not exist" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert elapsed < 30, f"{command} took {elapsed:.0f} s to report a missing topic"
