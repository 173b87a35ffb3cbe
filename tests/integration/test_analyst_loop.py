"""The analyst's loop on the real broker: a verdict suppresses the actor's repeats (not
another actor's, not after the expiry, and still after a restart), a leaver's moderate excess
alerts where the same excess without the context entry does not, offline ``score --feedback
--context`` sends and holds back the same alerts, and ``insiderwatch actor`` shows it all."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from insiderwatch.models.events import parse_event
from insiderwatch.models.train import train_model
from insiderwatch.stream.offline import read_jsonl
from tests.integration.harness import Deployment

pytestmark = pytest.mark.integration

ROLE = "customer_support"
X, Y, Z = "emp-00000", "emp-00004", "emp-00004"
SUPPRESSED = "insiderwatch_alerts_suppressed_total"
SCORED = "insiderwatch_events_scored_total"


def _burst(actor: str, day: int, tag: str = "b") -> list[bytes]:
    """12 bulk exports of customer e-mail addresses in 24 minutes (day 0 = 2026-01-05)."""
    return [
        orjson.dumps(
            {
                "event_id": f"{tag}-{actor}-{day}-{i}",
                "timestamp": f"2026-01-{5 + day:02d}T10:{2 * i:02d}:00Z",
                "actor_id": actor,
                "actor_role": ROLE,
                "action": "export",
                "resource_type": "customer_contact",
                "record_count": 20000,
                "fields": ["email"],
                "resource_id": f"bulk-{i}",
            }
        )
        for i in range(12)
    ]


def _event_alerts(records: list, actor: str) -> list[dict]:
    docs = [orjson.loads(r.value) for r in records]
    return [d for d in docs if d["actor_id"] == actor and d["kind"] == "event"]


def _produce(deployment: Deployment, values: list[bytes]) -> None:
    deployment.produce([(orjson.loads(v)["actor_id"].encode(), v) for v in values])


def test_a_verdict_suppresses_the_actors_repeats_until_expiry_and_across_a_restart(
    kafka_broker, small_model, tmp_path, report
):
    deployment = Deployment(kafka_broker.bootstrap, small_model, tmp_path, scores_topic=True)
    topic = deployment.settings.topic_alerts
    sent: list[bytes] = []
    try:
        worker = deployment.start_worker()
        worker.wait_ready()
        for values in (_burst(X, 15),):
            _produce(deployment, values)
            sent += values
        worker.wait_metric(SCORED, len(sent))
        first = _event_alerts(deployment.read_topic(topic), X)
        assert first, "the bulk export raised no alert"
        alert_a = first[0]
        done = deployment.cli(
            "feedback", alert_a["alert_id"], "--verdict", "benign_expected",
            "--scope", "actor_pattern", "--days", "5", "--analyst", "ana",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "held back until 2026-01-25T10:" in done.stdout
        # A record no one can read goes to the DLQ with its reason; the worker goes on.
        deployment.produce_to(deployment.settings.topic_feedback, [(b"iw-junk", b"{not json")])
        unknown = deployment.cli("feedback", "iw-nope", "--verdict", "benign")
        assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
        assert "no alert iw-nope" in unknown.stderr

        # The same behaviour two days later: held back; another actor's: alerted.
        repeat = _burst(X, 17) + _burst(Y, 17)
        _produce(deployment, repeat)
        sent += repeat
        worker.wait_metric(SCORED, len(sent))
        worker.wait_metric(SUPPRESSED, 1)
        alerts = deployment.read_topic(topic)
        assert [a["alert_id"] for a in _event_alerts(alerts, X)] == [a["alert_id"] for a in first]
        assert _event_alerts(alerts, Y), "another actor's same behaviour was not alerted"

        # A restarted worker reads the verdict again before it scores.
        worker.terminate()
        worker = deployment.start_worker()
        worker.wait_ready()
        again = _burst(X, 19)
        _produce(deployment, again)
        sent += again
        worker.wait_metric(SCORED, len(again))
        assert worker.metric(SUPPRESSED) >= 1
        leaked = _event_alerts(deployment.read_topic(topic), X)[len(first) :]
        assert not leaked, [(a["timestamp"], [r["feature"] for r in a["reasons"]]) for a in leaked]

        # After the expiry (5 days of event time after alert A), X alerts again.
        late = _burst(X, 22)
        _produce(deployment, late)
        sent += late
        worker.wait_metric(SCORED, len(again) + len(late))
        final = deployment.read_topic(topic)
        after = [a for a in _event_alerts(final, X) if a["timestamp"] >= "2026-01-27"]
        assert after, "the actor was not alerted after the suppression expired"

        timeline_png = tmp_path / "timeline.png"
        shown = deployment.cli("actor", X, "--json", "--plot", str(timeline_png))
        assert shown.returncode == 0, shown.stderr
        timeline = json.loads(shown.stdout)
        verdicts = {a["alert_id"]: a["verdict"] for a in timeline["alerts"]}
        assert verdicts[alert_a["alert_id"]] == "benign_expected"
        held = [a for a in timeline["alerts"] if a["suppressed"]]
        assert held and all(a["suppressed"]["rule"] == alert_a["alert_id"] for a in held)
        assert timeline["windows"]["actor_id"] == X
        assert timeline["windows"]["windows"]["24h"]["events"] > 0
        assert timeline_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        feedback = deployment.read_topic(deployment.settings.topic_feedback)
        stream_held = deployment.read_topic(deployment.settings.topic_suppressed)
        dead = [orjson.loads(r.value) for r in deployment.read_topic(deployment.settings.topic_dlq)]
        assert worker.metric("insiderwatch_analyst_records_refused_total") == 1
    finally:
        deployment.stop()
    refused = [d for d in dead if d["reason"] == "bad_feedback"]
    assert len(refused) == 2  # once by each worker start, from the same origin offset
    assert {d["source"]["topic"] for d in refused} == {deployment.settings.topic_feedback}
    assert len({d["source"]["offset"] for d in refused}) == 1

    # Offline, with the feedback topic's records as a file: the same alerts from the repeat on.
    events_file, feedback_file = tmp_path / "events.jsonl", tmp_path / "feedback.jsonl"
    events_file.write_bytes(b"".join(v + b"\n" for v in sent))
    feedback_file.write_bytes(b"".join(r.value + b"\n" for r in feedback if r.key != b"iw-junk"))
    out, held_out = tmp_path / "offline.jsonl", tmp_path / "held.jsonl"
    scored = deployment.cli(
        "score", "--model-dir", str(small_model), "--events", str(events_file), "--out", str(out),
        "--feedback", str(feedback_file), "--suppressed-out", str(held_out),
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr

    def ids(docs: list[dict]) -> list[str]:
        return sorted(
            f"{d['alert_id']}/{d['event_id']}" for d in docs if d["timestamp"] > "2026-01-21"
        )

    offline = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    offline_held = [orjson.loads(line) for line in held_out.read_bytes().splitlines()]
    assert ids(offline) == ids([orjson.loads(r.value) for r in final])
    assert ids(offline_held) == ids([orjson.loads(r.value) for r in stream_held])
    report(
        f"\n[analyst] verdict on {alert_a['alert_id']}: {len(stream_held)} alerts held back "
        f"(stream and offline agree), repeat by {Y} alerted, {X} alerted again after expiry"
    )


@pytest.fixture(scope="module")
def history_events(small_history) -> list[bytes]:
    return [raw for _, raw in read_jsonl(small_history)]


def _moderate_excess() -> list[bytes]:
    """Six justified views of payment instruments in a day by a support agent: unusual, each
    well under the per-event threshold."""
    return [
        orjson.dumps(
            {
                "event_id": f"pay-{i}",
                "timestamp": f"2026-01-{20 + i // 8:02d}T{9 + i % 8:02d}:15:00Z",
                "actor_id": Z,
                "actor_role": ROLE,
                "action": "view",
                "resource_type": "payment_instrument",
                "resource_id": f"card-{i}",
                "ticket_id": f"T-{i}",
            }
        )
        for i in range(6)
    ]


@pytest.fixture(scope="module")
def default_risk_model(small_history, tmp_path_factory) -> Path:
    """The small model with the default risk budget (1 entity-risk alert per 1,000
    actor-days)."""
    events = [parse_event(raw) for _, raw in read_jsonl(small_history)]
    model_dir = tmp_path_factory.mktemp("default-risk-model")
    train_model(events, model_dir, alert_budget=5.0, n_estimators=50, warmup_days=5, seed=1)
    return model_dir


@pytest.mark.parametrize("leaver", [False, True], ids=["no-context", "leaver"])
def test_a_leavers_moderate_excess_alerts_and_without_the_entry_it_does_not(
    kafka_broker, default_risk_model, history_events, tmp_path, leaver, report
):
    deployment = Deployment(kafka_broker.bootstrap, default_risk_model, tmp_path)
    excess = _moderate_excess()
    try:
        if leaver:
            done = deployment.cli("context", "set", Z, "--leaver-from", "2026-01-20")
            assert done.returncode == 0, done.stderr
        worker = deployment.start_worker()
        worker.wait_ready()
        _produce(deployment, history_events + excess)
        worker.wait_metric(SCORED, len(history_events) + len(excess))
        alerts = [
            orjson.loads(r.value) for r in deployment.read_topic(deployment.settings.topic_alerts)
        ]
        listed = deployment.cli("context", "list", "--json")
    finally:
        deployment.stop()
    mine = [a for a in alerts if a["actor_id"] == Z and a["timestamp"] >= "2026-01-20"]
    report(f"\n[analyst] leaver={leaver}: {[a['kind'] for a in mine]} for {Z}")
    if not leaver:
        assert mine == [] and listed.stdout == ""
        return
    assert [a["kind"] for a in mine] == ["entity_risk"]
    assert "on the leavers list since 2026-01-20: risk counted 3x" in mine[0]["summary"]
    assert json.loads(listed.stdout)["leaver_from"] == "2026-01-20"
