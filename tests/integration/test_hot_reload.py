"""Hot reload against the real broker: alerts before the switch carry v1, after it v2."""

from __future__ import annotations

import shutil
import time

import orjson
import pytest

from insiderwatch.models.artifact import load_model
from insiderwatch.models.events import parse_event
from insiderwatch.models.train import train_model
from insiderwatch.stream.offline import read_jsonl
from tests.integration.harness import Deployment

pytestmark = pytest.mark.integration


def _anomalies(prefix: str, n: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        doc = {
            "event_id": f"{prefix}-{i}",
            "timestamp": f"2026-01-20T03:{i:02d}:00Z",
            "actor_id": f"{prefix}-{i}",
            "actor_role": "customer_support",
            "action": "export",
            "resource_type": "customer_contact",
            "record_count": 90_000,
            "fields": ["email"],
            "ticket_id": None,
        }
        out.append((doc["actor_id"].encode(), orjson.dumps(doc)))
    return out


def test_model_hot_reload_switches_versions_without_losing_events(
    kafka_broker, small_model, small_history, tmp_path, report
):
    live_dir = tmp_path / "model"
    shutil.copytree(small_model, live_dir)
    v1 = load_model(live_dir).version
    v2_dir = tmp_path / "model-v2"
    events = [parse_event(raw) for _, raw in read_jsonl(small_history)]
    train_model(
        events,
        v2_dir,
        alert_budget=5.0,
        n_estimators=50,
        warmup_days=5,
        seed=2,
        model_version="v2-test",
    )
    deployment = Deployment(
        kafka_broker.bootstrap, live_dir, tmp_path, extra={"log.format": "json"}
    )
    try:
        worker = deployment.start_worker()
        worker.wait_ready()
        deployment.produce(_anomalies("before", 5))
        worker.wait_metric("insiderwatch_events_consumed_total", 5)
        # Publish v2 the way `insiderwatch train --model-dir` does: arrays, then manifest.
        shutil.copy(v2_dir / "model.npz", live_dir / "model.npz")
        shutil.copy(v2_dir / "manifest.json", live_dir / "manifest.json")
        deadline = time.monotonic() + 60
        while orjson.loads(worker.get("/ready")[1])["model_version"] != "v2-test":
            assert time.monotonic() < deadline, "the worker did not load v2"
            time.sleep(0.5)
        switched_after = 60 - (deadline - time.monotonic())
        deployment.produce(_anomalies("after", 5))
        worker.wait_metric("insiderwatch_events_consumed_total", 10)
        assert worker.metric("insiderwatch_events_scored_total") == 10
        alerts = [
            orjson.loads(r.value)
            for r in deployment.read_topic(deployment.settings.topic_alerts, expect=10)
        ]
        versions = {a["actor_id"].split("-")[0]: set() for a in alerts}
        for alert in alerts:
            versions[alert["actor_id"].split("-")[0]].add(alert["model_version"])
        report(
            f"\n[hot-reload] {v1} -> v2-test in {switched_after:.1f} s; alert versions {versions}"
        )
        assert versions == {"before": {v1}, "after": {"v2-test"}}
        # Structured logs: every line of the worker's log is one JSON object.
        lines = [
            orjson.loads(line) for line in worker.log_path.read_bytes().splitlines() if line.strip()
        ]
        assert any("now scoring with model v2-test" in line["message"] for line in lines)
    finally:
        deployment.stop()
