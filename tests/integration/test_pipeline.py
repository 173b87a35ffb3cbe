"""End to end on the real broker: 1,000 events in, every one scored or dead-lettered, alerts
that match the contract, and the same alert ids as offline ``score``."""

from __future__ import annotations

import contextlib
import time

import orjson
import pytest

from insiderwatch.models.artifact import load_model
from insiderwatch.models.detector import Detector
from insiderwatch.simulation.simulate import SimulationConfig, simulate
from insiderwatch.stream.offline import score_files
from tests.integration.harness import Deployment

pytestmark = pytest.mark.integration

MALFORMED: list[tuple[bytes, str]] = [
    (b"not json", "not_json"),
    (b'{"event_id": ', "not_json"),
    (b"\xff\xfe\xfa\x00", "not_utf8"),
    (b"[1,2,3]", "not_object"),
    (b'"just a string"', "not_object"),
    (b'{"record_count": NaN}', "not_json"),
    (b"x" * (70 * 1024), "too_large"),
]
CONTRACT_FIELDS = {
    "alert_id",
    "event_id",
    "event_ids",
    "actor_id",
    "actor_role",
    "timestamp",
    "detected_at",
    "score",
    "threshold",
    "severity",
    "model_version",
    "reasons",
    "summary",
}


def _events() -> list[tuple[bytes | None, bytes]]:
    """973 simulated events, 7 obvious anomalies and 20 malformed ones, interleaved."""
    config = SimulationConfig(actors=60, days=20, seed=3, start_day=14, scenarios_from_day=14)
    docs = list(simulate(config))[:973]
    bad_docs = []
    for i in range(13):  # contract violations of other kinds
        doc = dict(docs[i])
        doc["event_id"] = f"bad-{i}"
        if i % 4 == 0:
            del doc["actor_id"]
        elif i % 4 == 1:
            doc["record_count"] = -5
        elif i % 4 == 2:
            doc["timestamp"] = "not a time"
        else:
            doc["action"] = ["view"]
        bad_docs.append(orjson.dumps(doc))
    malformed = [raw for raw, _ in MALFORMED] + bad_docs
    out: list[tuple[bytes | None, bytes]] = []
    for i, doc in enumerate(docs):
        out.append((doc["actor_id"].encode(), orjson.dumps(doc)))
        if i % 49 == 0 and malformed:
            out.append((None, malformed.pop()))
        if i % 140 == 70:
            anomaly = {
                **doc,
                "event_id": f"anomaly-{i}",
                "actor_id": "mallory",
                "actor_role": "customer_support",
                "action": "export",
                "resource_type": "customer_contact",
                "record_count": 60000 + i,
                "ticket_id": None,
                "fields": ["email", "phone"],
                "source_ip": "203.0.113.7",
            }
            out.append((b"mallory", orjson.dumps(anomaly)))
    out += [(None, raw) for raw in malformed]
    assert len(out) == 1000
    return out


def test_every_event_is_scored_or_dead_lettered_and_alerts_match_offline(
    kafka_broker, small_model, tmp_path, report
):
    deployment = Deployment(kafka_broker.bootstrap, small_model, tmp_path)
    try:
        worker = deployment.start_worker()
        worker.wait_ready()
        # faust worker binds 0.0.0.0 by default; ours must listen on loopback only.
        assert worker.listen_addresses() == {"127.0.0.1"}, worker.listen_addresses()
        values = _events()
        positions = deployment.produce(values)
        malformed = {positions[i] for i, (key, _) in enumerate(values) if key is None}
        worker.wait_metric("insiderwatch_events_consumed_total", 1000)
        # consumed counts a batch as it starts; scored and dead-lettered once it is done
        worker.wait_metric("insiderwatch_events_scored_total", 980)
        scored = worker.metric("insiderwatch_events_scored_total")
        dead = worker.metric("insiderwatch_events_dead_lettered_total")
        report(f"\n[count] produced=1000 scored={scored:.0f} dlq={dead:.0f}")
        assert scored + dead == 1000
        assert dead == 20
        _check_metrics_page(worker)
        # The batches' offsets are acked after their state is stored, and committed (every 1 s).
        deadline = time.monotonic() + 30
        while (left := deployment.uncommitted()) > 0:
            assert time.monotonic() < deadline, f"{left} input records never committed"
            time.sleep(1)

        dlq = [
            orjson.loads(r.value)
            for r in deployment.read_topic(deployment.settings.topic_dlq, expect=20)
        ]
        assert len(dlq) == 20
        reasons = sorted(d["reason"] for d in dlq)
        assert reasons.count("missing_field") == 4 and reasons.count("bad_value") == 3
        assert reasons.count("bad_timestamp") == 3 and reasons.count("wrong_type") == 3
        assert {"not_json", "not_utf8", "not_object", "too_large"} <= set(reasons)
        for record in dlq:
            assert record["source"]["topic"] == deployment.settings.topic_events
            assert "raw" in record or "raw_base64" in record
        assert {(d["source"]["partition"], d["source"]["offset"]) for d in dlq} == malformed
        utf8_failure = next(d for d in dlq if d["reason"] == "not_utf8")
        assert utf8_failure["raw_base64"] == "//76AA=="

        produced_ids = set()
        for _, value in values:
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                produced_ids.add(orjson.loads(value).get("event_id"))
        alerts = [
            orjson.loads(r.value) for r in deployment.read_topic(deployment.settings.topic_alerts)
        ]
        assert alerts, "the anomalies should raise at least one alert"
        for alert in alerts:
            assert set(alert) >= CONTRACT_FIELDS
            assert alert["event_id"] in produced_ids
            assert set(alert["event_ids"]) <= produced_ids
            assert 0 <= alert["score"] <= 1
        assert any(a["actor_id"] == "mallory" for a in alerts)

        # Offline score of the same events (per-partition order is per-actor order) gives the same ids.
        events_file = tmp_path / "events.jsonl"
        events_file.write_bytes(b"".join(v.replace(b"\n", b" ") + b"\n" for _, v in values))
        offline_out = tmp_path / "offline.jsonl"
        score_files(Detector(load_model(small_model)), [str(events_file)], str(offline_out))
        offline = [orjson.loads(line) for line in offline_out.read_bytes().splitlines()]
        assert sorted({a["alert_id"] for a in offline}) == sorted({a["alert_id"] for a in alerts})
        assert sorted((a["alert_id"], a["event_id"]) for a in offline) == sorted(
            (a["alert_id"], a["event_id"]) for a in alerts
        )
    finally:
        deployment.stop()


def _check_metrics_page(worker) -> None:
    """The Prometheus page carries every family an operator's dashboard needs."""
    import time

    deadline = time.monotonic() + 15
    while (
        worker.metric("insiderwatch_consumer_lag") < 0
        or "insiderwatch_consumer_lag{" not in worker.get("/metrics")[1]
    ):
        assert time.monotonic() < deadline, "consumer lag gauge never appeared"
        time.sleep(0.5)
    _, text = worker.get("/metrics")
    for needle in (
        'insiderwatch_events_dead_lettered_total{reason="not_json"}',
        'insiderwatch_events_dead_lettered_total{reason="missing_field"}',
        "insiderwatch_alerts_total{",
        "insiderwatch_score_bucket{",
        "insiderwatch_batch_processing_seconds_bucket{",
        "insiderwatch_event_to_decision_seconds_bucket{",
        'insiderwatch_consumer_lag{partition="0"}',
        "insiderwatch_model_info{version=",
    ):
        assert needle in text, needle
    assert worker.metric("insiderwatch_actor_states") > 0
    assert worker.metric("insiderwatch_actor_state_bytes") > 0
