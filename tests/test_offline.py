"""Offline scoring split over processes by actor gives exactly the single-process result."""

from __future__ import annotations

import orjson

from insiderwatch.models.artifact import load_model
from insiderwatch.models.detector import Detector
from insiderwatch.stream.offline import score_files


def _lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_parallel_score_equals_single_process(small_model, small_history, tmp_path):
    events = tmp_path / "events.jsonl"
    lines = small_history.read_bytes().splitlines()[-6000:]
    anomalies = []
    at = orjson.loads(lines[3799])["timestamp"]  # in time order where they are inserted
    for i in range(20):  # obvious exports by established actors, from a new IP and device
        doc = orjson.loads(lines[3000 + 37 * i])
        doc.update(
            event_id=f"x-{i}",
            timestamp=at,
            action="export",
            resource_type="customer_contact",
            record_count=90_000,
            ticket_id=None,
            source_ip="203.0.113.9",
            device_id="dev-new",
            fields=["email", "phone"],
        )
        anomalies.append(orjson.dumps(doc))
    lines[3800:3800] = [b"{broken", b"[1]", *anomalies]
    lines.insert(2001, lines[2000])  # a producer's retry: counted, not scored
    reused = orjson.loads(lines[2500])
    reused["record_count"] = 777  # an event id reused with other content: dead-lettered
    lines.insert(2502, orjson.dumps(reused))
    events.write_bytes(b"\n".join(lines) + b"\n")
    detector = Detector(load_model(small_model))
    runs = {}
    for workers in (1, 2):
        out, scores, dlq = (tmp_path / f"{name}-{workers}.jsonl" for name in ("a", "s", "d"))
        result = score_files(
            detector,
            [str(events)],
            str(out),
            all_scores_path=str(scores),
            dlq_path=str(dlq),
            workers=workers,
        )
        runs[workers] = (result, _lines(out), _lines(scores), _lines(dlq))
    (r1, alerts1, scores1, dlq1), (r2, alerts2, scores2, dlq2) = runs[1], runs[2]
    assert (r1.events, r1.scored, r1.dead_lettered, r1.alerts) == (
        r2.events,
        r2.scored,
        r2.dead_lettered,
        r2.alerts,
    )
    assert r1.events == len(lines) and r1.dead_lettered == 3 and r1.reasons == r2.reasons
    assert r1.reasons["duplicate_event_id"] == 1 and r1.duplicates == r2.duplicates == 1
    assert r1.events == r1.scored + r1.dead_lettered + r1.duplicates
    assert alerts1, "the injected exports should alert"
    key = lambda a: (a["alert_id"], a["event_id"], a["status"], a["score"])  # noqa: E731
    assert sorted(map(key, alerts1)) == sorted(map(key, alerts2))
    assert {s["event_id"]: s["score"] for s in scores1} == {
        s["event_id"]: s["score"] for s in scores2
    }
    assert sorted(d["reason"] for d in dlq1) == sorted(d["reason"] for d in dlq2)
    assert not list(tmp_path.glob("*.part*")), "worker part files are merged and removed"
