"""``train --from-topic`` reads the history from Kafka and builds the same model as the file."""

from __future__ import annotations

import json

import pytest

from tests.integration.harness import Deployment
from tests.test_cli import run_cli

pytestmark = pytest.mark.integration


def test_train_from_topic_equals_train_from_file(kafka_broker, small_history, tmp_path, report):
    deployment = Deployment(kafka_broker.bootstrap, tmp_path / "unused-model", tmp_path)
    topic = deployment.settings.topic_events
    replayed = run_cli(
        "replay", str(small_history), "--broker", kafka_broker.bootstrap, "--topic-events", topic
    )
    assert replayed.returncode == 0, replayed.stderr
    history = tmp_path / "history.jsonl"  # a copy: the session fixture stays as it is
    history.write_bytes(small_history.read_bytes() + b"{not json\n")  # skipped, not fatal
    common = [
        "--warmup-days",
        "5",
        "--trees",
        "30",
        "--seed",
        "4",
        "--until",
        "2026-01-12T00:00:00Z",
    ]
    from_file = run_cli(
        "train", "--events", str(history), "--model-dir", str(tmp_path / "a"), *common
    )
    from_topic = run_cli(
        "train",
        "--from-topic",
        "--broker",
        kafka_broker.bootstrap,
        "--topic-events",
        topic,
        "--model-dir",
        str(tmp_path / "b"),
        *common,
    )
    assert from_file.returncode == 0, from_file.stderr
    assert from_topic.returncode == 0, from_topic.stderr
    report(f"\n[train --from-topic] {from_topic.stdout.strip()}")
    a = json.loads((tmp_path / "a" / "manifest.json").read_text())
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert a["event_count"] == b["event_count"] > 0
    assert b["training_window"]["end"] < "2026-01-12T00:00:00Z"
    assert a["arrays_sha256"] == b["arrays_sha256"], "same history, same seed: same forest"
    assert a["threshold"] == b["threshold"]


def test_train_needs_exactly_one_source(tmp_path):
    result = run_cli("train", "--model-dir", str(tmp_path / "m"))
    assert result.returncode != 0 and "either --events FILE or --from-topic" in result.stderr
    result = run_cli("train", "--events", "x.jsonl", "--model-dir", "m", "--since", "yesterday")
    assert result.returncode != 0 and "--since must be an RFC 3339 time" in result.stderr
