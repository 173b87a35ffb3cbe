"""The demo's closing summary, from labelled live traffic and the alerts raised."""

from __future__ import annotations

import orjson

from insiderwatch.simulation.summary import summarise_demo


def _row(event_id, minute, actor="x", label="normal", scenario="", instance=""):
    return {
        "event_id": event_id,
        "timestamp": f"2026-01-26T09:{minute:02d}:00Z",
        "actor_id": actor,
        "sim_label": label,
        "sim_scenario": scenario,
        "sim_instance": instance,
    }


def test_caught_missed_false_and_volume(tmp_path):
    rows = [
        _row("n1", 0, actor="y"),
        _row("i1", 1, label="insider", scenario="leak", instance="leak#0"),
        _row("i2", 5, label="insider", scenario="leak", instance="leak#0"),
        _row("j1", 2, actor="z", label="insider", scenario="drip", instance="drip#1"),
        _row("b1", 3, actor="w", label="benign_unusual", scenario="oncall_night", instance="o#2"),
    ]
    live = tmp_path / "live.jsonl"
    live.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    alerts = [
        {"alert_id": "A", "event_ids": ["i2"], "status": "new"},
        {"alert_id": "A", "event_ids": ["i2"], "status": "updated"},  # same incident
        {"alert_id": "B", "event_ids": ["b1"]},
        {"alert_id": "C", "event_ids": ["n1"]},
        {  # OCSF finding of the same incident as A
            "class_uid": 2004,
            "finding_info": {"uid": "A", "related_events": [{"uid": "i1", "type": "access"}]},
        },
    ]
    summary = summarise_demo(live, alerts)
    assert summary.caught == [("leak#0", "x", 0.0), ("drip#1", "z", None)]
    assert (summary.incidents, summary.false_incidents) == (3, 2)
    assert summary.false_on_benign == {"oncall_night": 1}
    assert summary.actor_days == 4
    text = summary.text()
    assert "caught 1 of 2 planted insiders; 2 false incidents of 3" in text
    assert "750.0 incidents per 1,000 actor-days" in text
