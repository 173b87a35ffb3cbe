"""Verdicts, suppression and actor context (models/analyst.py), with hand-built alerts."""

from __future__ import annotations

import orjson
import pytest

from insiderwatch.models.analyst import (
    DEFAULT_SUPPRESS_DAYS,
    LEAVER_WEIGHT,
    PRIVILEGED_GROUP,
    SERVICE_GROUP,
    AnalystRules,
    parse_context,
    parse_verdict,
)
from insiderwatch.models.events import AccessEvent, InvalidEvent, parse_timestamp

DAY = 86400.0


def _alert(actor="emp-1", alert_id="iw-a", ts="2026-11-20T10:00:00Z", kind="event", **kw):
    return {
        "alert_id": alert_id,
        "status": kw.get("status", "new"),
        "kind": kind,
        "actor_id": actor,
        "timestamp": ts,
        "summary": "emp-1 did something",
        "event": {"action": kw.get("action", "update"), "resource_type": "seller_account"},
        "reasons": [{"feature": f} for f in kw.get("reasons", ("access_surprise", "time_novelty"))],
    }


def _verdict(scope="actor_pattern", verdict="benign_expected", **extra) -> bytes:
    record = {
        "alert_id": "iw-a",
        "verdict": verdict,
        "scope": scope,
        "actor_id": "emp-1",
        "kind": "event",
        "alert_timestamp": "2026-11-20T10:00:00Z",
        "pattern": {"access": "update seller_account", "reasons": ["access_surprise", "x"]},
        "event_ids": ["e1", "e2"],
    }
    record.update(extra)
    return orjson.dumps(record)


def test_an_actor_pattern_verdict_holds_back_only_that_actors_matching_alerts_until_expiry():
    rules = AnalystRules()
    assert rules.apply_feedback(b"iw-a", _verdict()) is None
    later = "2026-11-25T09:00:00Z"
    held = rules.route(_alert(alert_id="iw-b", ts=later))
    assert (held.send, held.scope, held.rule) == (False, "actor_pattern", "iw-a")
    # the same behaviour by another actor, another access, another leading reason: sent
    assert rules.route(_alert(actor="emp-2", alert_id="iw-c", ts=later)).send
    assert rules.route(_alert(alert_id="iw-d", ts=later, action="delete")).send
    assert rules.route(_alert(alert_id="iw-e", ts=later, reasons=("denied_1h", "a", "x"))).send
    # the same access led by the pattern's reasons in another order: the same behaviour
    assert not rules.route(_alert(alert_id="iw-e", ts=later, reasons=("b", "x"))).send
    # an entity-risk alert is never held back by a per-event rule
    assert rules.route(_alert(alert_id="iwr-f", ts=later, kind="entity_risk")).send
    # 14 days of event time after the alert (default), the rule has expired
    expiry = parse_timestamp("2026-11-20T10:00:00Z") + DEFAULT_SUPPRESS_DAYS * DAY
    assert not rules.route(_alert(alert_id="iw-g", ts="2026-12-04T09:59:59Z")).send
    assert rules.route(_alert(alert_id="iw-h", ts="2026-12-04T10:00:00Z")).send
    assert parse_timestamp("2026-12-04T10:00:00Z") == expiry
    # before the verdicted alert, or the verdicted alert itself: not "later", so sent
    assert rules.route(_alert(alert_id="iw-i", ts="2026-11-19T10:00:00Z")).send
    assert rules.route(_alert(status="new")).send


def test_scopes_alert_and_actor_and_a_tombstone_withdraws_the_verdict():
    rules = AnalystRules()
    rules.apply_feedback(b"iw-a", _verdict(scope="alert", verdict="benign"))
    assert rules.route(_alert(status="new")).send  # the message judged, as in a replay
    assert rules.route(_alert(status="escalated")).scope == "alert"  # later messages
    assert rules.route(_alert(alert_id="iw-b", ts="2026-11-21T00:00:00Z")).send
    rules.apply_feedback(b"iw-a", _verdict(scope="actor", until="2026-11-22"))
    assert rules.route(
        _alert(alert_id="iw-b", action="delete", ts="2026-11-21T00:00:00Z")
    ).scope == ("actor")
    assert rules.route(_alert(alert_id="iw-b", ts="2026-11-22T00:00:00Z")).send
    rules.apply_feedback(b"iw-a", None)
    assert rules.route(_alert(status="escalated")).send
    assert not rules.by_actor and not rules.verdicts


def test_a_true_positive_holds_nothing_back_and_names_its_events_for_training():
    rules = AnalystRules()
    rules.apply_feedback(None, _verdict(verdict="true_positive"))
    assert rules.route(_alert(alert_id="iw-b", ts="2026-11-21T00:00:00Z")).send
    assert rules.route(_alert()).send
    assert rules.excluded_event_ids() == {"e1", "e2"} and rules.true_positives() == 1


@pytest.mark.parametrize(
    ("record", "detail"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"verdict": "benign"}', "alert_id is missing"),
        (_verdict(scope="everything"), "scope must be one of"),
        (_verdict(alert_timestamp=None), "scope actor_pattern needs alert_timestamp"),
        (_verdict(pattern={"reasons": []}), "scope actor_pattern needs pattern.access"),
        (_verdict(alert_timestamp="yesterday"), "alert_timestamp"),
        (_verdict(event_ids=["e"] * 65), "at most 64 event_ids"),
        (_verdict(note="n" * 501), "note must be a string of at most 500"),
    ],
)
def test_bad_feedback_records_are_refused_with_a_reason(record, detail):
    problem = parse_verdict(record)
    assert isinstance(problem, InvalidEvent) and problem.reason == "bad_feedback"
    assert detail in problem.detail


def test_a_record_under_another_alerts_key_is_refused():
    problem = AnalystRules().apply_feedback(b"iw-other", _verdict())
    assert problem is not None and "key" in problem.detail


def _event(actor="emp-1", ts="2026-11-21T10:00:00Z", role="seller_support") -> AccessEvent:
    return AccessEvent(
        event_id="e",
        timestamp=ts,
        actor_id=actor,
        action="view",
        resource_type="review",
        actor_role=role,
    )


def test_context_weights_risk_from_the_leaver_date_and_names_the_peer_group():
    rules = AnalystRules()
    rules.apply_context(b"emp-1", b'{"actor_id": "emp-1", "leaver_from": "2026-11-20"}')
    rules.apply_context(b"emp-2", b'{"actor_id": "emp-2", "watch": 2, "privileged": true}')
    rules.apply_context(b"svc-1", b'{"actor_id": "svc-1", "service_account": true}')
    events = [
        _event(ts="2026-11-19T23:59:59Z"),
        _event(),
        _event("emp-2"),
        _event("svc-1"),
        _event("emp-3"),
    ]
    rules.prepare(events)
    assert [e.risk_weight for e in events] == [1.0, LEAVER_WEIGHT, 2.0, 1.0, 1.0]
    assert [e.actor_role for e in events] == [
        "seller_support",
        "seller_support",
        PRIVILEGED_GROUP,
        SERVICE_GROUP,
        "seller_support",
    ]
    alert = _alert(ts="2026-11-21T10:00:00Z")
    assert rules.route(alert).send
    assert alert["summary"].endswith("(on the leavers list since 2026-11-20: risk counted 3x)")
    assert alert["context"]["risk_weight"] == LEAVER_WEIGHT
    rules.apply_context(b"emp-1", None)  # cleared
    assert rules.contexts.keys() == {"emp-2", "svc-1"}


def test_an_excluded_actor_is_held_back_until_the_date_then_alerts():
    rules = AnalystRules()
    rules.apply_context(b"emp-1", b'{"actor_id": "emp-1", "exclude_until": "2026-11-22"}')
    assert rules.route(_alert(ts="2026-11-21T23:00:00Z")).scope == "excluded"
    assert rules.route(_alert(ts="2026-11-21T23:00:00Z", kind="entity_risk")).scope == "excluded"
    assert rules.route(_alert(ts="2026-11-22T00:00:00Z")).send


@pytest.mark.parametrize(
    ("record", "detail"),
    [
        (b'{"watch": 2}', "actor_id is missing"),
        (b'{"actor_id": "a", "watch": 0.5}', "watch must be a number from 1 to 10"),
        (b'{"actor_id": "a", "watch": true}', "watch must be a number"),
        (b'{"actor_id": "a", "privileged": "yes"}', "privileged must be true or false"),
        (b'{"actor_id": "a", "leaver_from": "20 Nov"}', "leaver_from"),
    ],
)
def test_bad_context_records_are_refused_with_a_reason(record, detail):
    problem = parse_context(record)
    assert isinstance(problem, InvalidEvent) and problem.reason == "bad_context"
    assert detail in problem.detail


def test_offline_files_load_and_report_the_refused_lines():
    rules = AnalystRules()
    refused = rules.load([_verdict(), b"{}"], [b'{"actor_id": "a"}', b"nope"])
    assert refused[0] == "feedback line 2: alert_id is missing"
    assert refused[1].startswith("context line 2: not JSON") and len(refused) == 2
    assert len(rules.verdicts) == 1 and len(rules.contexts) == 1


def test_train_leaves_true_positives_out_and_gives_peer_groups_their_own_baselines(
    tmp_path, capsys
):
    from insiderwatch.models.artifact import load_model
    from insiderwatch.simulation.simulate import SimulationConfig, simulate
    from insiderwatch.stream.cli import main

    docs = list(simulate(SimulationConfig(actors=40, days=10, seed=3, with_scenarios=False)))
    history = tmp_path / "history.jsonl"
    history.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    engineers = sorted({d["actor_id"] for d in docs if d["actor_role"] == "engineer"})[:3]
    context = tmp_path / "context.jsonl"
    context.write_bytes(
        b"".join(orjson.dumps({"actor_id": a, "privileged": True}) + b"\n" for a in engineers)
    )
    confirmed = [d["event_id"] for d in docs[100:105]]
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_bytes(
        orjson.dumps({"alert_id": "iw-1", "verdict": "true_positive", "event_ids": confirmed})
        + b"\n"
        + orjson.dumps({"alert_id": "iw-2", "verdict": "benign"})
        + b"\n"
    )
    model_dir = tmp_path / "model"
    argv = ["train", "--events", str(history), "--model-dir", str(model_dir), "--trees", "10"]
    assert main([*argv, "--feedback", str(feedback), "--context", str(context)]) == 0
    out = capsys.readouterr().out
    assert f"from {len(docs) - 5} events" in out
    assert "used 2 verdicts (1 true positives: 5 of their events left out of the baselines)" in out
    assert "and 3 context entries" in out
    peers = load_model(model_dir).peers
    assert peers.roles[PRIVILEGED_GROUP].actors == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"alert_id": "iw-3", "verdict": "maybe"}\n')
    assert main([*argv, "--feedback", str(bad)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
