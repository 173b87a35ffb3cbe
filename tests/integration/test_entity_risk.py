"""Entity risk on the real broker: the worker raises the same entity-risk alerts (ids, crossing
events, evidence) as offline ``score`` of the same events."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from insiderwatch.models.artifact import load_model
from insiderwatch.models.detector import Detector
from insiderwatch.models.events import parse_event
from insiderwatch.models.train import train_model
from insiderwatch.simulation.simulate import SimulationConfig, simulate
from insiderwatch.stream.offline import read_jsonl, score_files
from tests.integration.harness import Deployment

pytestmark = pytest.mark.integration

EVENTS = 4000


@pytest.fixture(scope="module")
def risk_model(small_history, tmp_path_factory) -> Path:
    """The small model with a risk budget high enough that a few hours of traffic by 60 actors
    raise entity-risk alerts (the default budget is 0: off)."""
    events = [parse_event(raw) for _, raw in read_jsonl(small_history)]
    model_dir = tmp_path_factory.mktemp("risk-model")
    manifest = train_model(
        events,
        model_dir,
        alert_budget=5.0,
        risk_budget=200.0,
        n_estimators=50,
        warmup_days=5,
        seed=1,
    )
    assert manifest.risk.training_alerts > 0
    return model_dir


def test_the_worker_and_offline_score_raise_the_same_entity_risk_alerts(
    kafka_broker, risk_model, tmp_path, report
):
    config = SimulationConfig(actors=60, days=20, seed=3, start_day=14, scenarios_from_day=14)
    docs = list(simulate(config))[:EVENTS]
    values = [(doc["actor_id"].encode(), orjson.dumps(doc)) for doc in docs]
    deployment = Deployment(kafka_broker.bootstrap, risk_model, tmp_path)
    try:
        worker = deployment.start_worker()
        worker.wait_ready()
        deployment.produce(values)
        worker.wait_metric("insiderwatch_events_scored_total", EVENTS)
        alerts = [
            orjson.loads(r.value) for r in deployment.read_topic(deployment.settings.topic_alerts)
        ]
    finally:
        deployment.stop()

    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"".join(value + b"\n" for _, value in values))
    offline_out = tmp_path / "offline.jsonl"
    score_files(Detector(load_model(risk_model)), [str(events_file)], str(offline_out))
    offline = [orjson.loads(line) for line in offline_out.read_bytes().splitlines()]

    risky = [a for a in alerts if a["kind"] == "entity_risk"]
    report(f"\n[entity risk] {len(risky)} entity-risk alerts of {len(alerts)}")
    assert len(risky) >= 2
    for alert in risky:
        assert alert["alert_id"].startswith("iwr-")
        assert alert["trigger"] == "entity_risk"
        assert alert["risk"]["ratio"] >= 1.0
        assert 1 <= len(alert["evidence"]) <= 3
        assert alert["summary"].startswith(alert["actor_id"])

    def key(alert: dict) -> tuple:
        evidence = [(e["timestamp"], e["score"]) for e in alert.get("evidence", [])]
        return alert["kind"], alert["alert_id"], alert["event_id"], evidence

    assert sorted(map(key, offline)) == sorted(map(key, alerts))
