"""`insiderwatch tail` against the real broker: filters, start positions, JSON output."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import orjson
import pytest
from kafka import KafkaProducer

from tests.conftest import REPO
from tests.integration.harness import Deployment

pytestmark = pytest.mark.integration


def _alert(i: int, severity: str, actor: str, role: str) -> bytes:
    return orjson.dumps(
        {
            "alert_id": f"iw-{i}",
            "status": "new",
            "event_id": f"e{i}",
            "event_ids": [f"e{i}"],
            "actor_id": actor,
            "actor_role": role,
            "timestamp": "2026-01-20T03:00:00Z",
            "detected_at": "x",
            "score": 0.8,
            "threshold": 0.7,
            "severity": severity,
            "model_version": "v",
            "reasons": [],
            "summary": f"{role} {actor}: test alert {i}.",
        }
    )


def _tail(deployment: Deployment, *args: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIDERWATCH_")}
    env.update(deployment.settings.as_env())
    result = subprocess.run(
        [sys.executable, "-m", "insiderwatch", "tail", "--json", "--idle-timeout", "4", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert deployment.settings.topic_alerts in result.stderr and deployment.broker in result.stderr
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def test_tail_filters_and_start_positions(kafka_broker, small_model, tmp_path):
    deployment = Deployment(kafka_broker.bootstrap, small_model, tmp_path)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    first = [
        ("low", "alice", "customer_support"),
        ("high", "bob", "seller_support"),
        ("critical", "alice", "customer_support"),
        ("medium", "carol", "engineer"),
    ]
    for i, (severity, actor, role) in enumerate(first):
        producer.send(
            deployment.settings.topic_alerts,
            key=actor.encode(),
            value=_alert(i, severity, actor, role),
        )
    producer.flush()
    time.sleep(1.5)
    since = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    time.sleep(0.5)
    producer.send(
        deployment.settings.topic_alerts, key=b"dave", value=_alert(9, "high", "dave", "engineer")
    )
    producer.flush()
    producer.close()

    everything = _tail(deployment, "--from", "beginning")
    assert sorted(a["alert_id"] for a in everything) == ["iw-0", "iw-1", "iw-2", "iw-3", "iw-9"]
    severe = _tail(deployment, "--from", "beginning", "--severity", "high,critical")
    assert sorted(a["alert_id"] for a in severe) == ["iw-1", "iw-2", "iw-9"]
    assert [
        a["alert_id"] for a in _tail(deployment, "--from", "beginning", "--actor", "alice")
    ] in (["iw-0", "iw-2"], ["iw-2", "iw-0"])
    assert {
        a["alert_id"] for a in _tail(deployment, "--from", "beginning", "--role", "engineer")
    } == {"iw-3", "iw-9"}
    assert [a["alert_id"] for a in _tail(deployment, "--from", since)] == ["iw-9"]
    assert _tail(deployment, "--from", "end") == []
    assert len(_tail(deployment, "--from", "beginning", "--max", "2")) == 2
