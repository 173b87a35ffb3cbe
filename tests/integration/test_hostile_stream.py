"""Hostile input on the real broker: what an attacker or a broken producer sends cannot stop
the worker or a partition, and every record is accounted for."""

from __future__ import annotations

import time

import orjson
import pytest

from insiderwatch.simulation.simulate import SimulationConfig, simulate
from insiderwatch.stream.records import MAX_RECORD_BYTES
from tests.integration.harness import Deployment

pytestmark = pytest.mark.integration
CONTROL = b"\x01"


def _corpus() -> list[tuple[bytes | None, bytes | None, list, str]]:
    """``(key, value, headers, expected)`` records: valid simulated events with hostile
    records between them. ``expected`` is ``scored``, ``duplicate`` or a DLQ reason."""
    config = SimulationConfig(actors=30, days=20, seed=5, start_day=14, scenarios_from_day=14)
    docs = list(simulate(config))[:600]
    out: list[tuple[bytes | None, bytes | None, list, str]] = []

    def valid(doc: dict, key: bytes | None = None, headers: list | None = None) -> None:
        actor = doc["actor_id"].encode()
        out.append((actor if key is None else key, orjson.dumps(doc), headers or [], "scored"))

    def variant(i: int, **changes) -> dict:
        return {**docs[i], "event_id": f"hostile-{i}", **changes}

    hostile = [
        # The poison pill: a 650,000-byte key and 64 KiB of control bytes.
        lambda: out.append((b"k" * 650_000, CONTROL * 65_536, [], "not_json")),
        lambda: out.append((b"k" * 100, CONTROL * 1_000_000, [], "too_large")),
        lambda: out.append((b"x" * 900_000, orjson.dumps(variant(3)), [], "scored")),
        lambda: valid(variant(5), key=b""),
        lambda: valid(variant(7), key=b"\xff\xfe\x00 not utf-8"),
        lambda: valid(variant(9), key=docs[10]["actor_id"].encode() + b"-someone-else"),
        lambda: valid(variant(11), headers=[("h" * 300, b"\x00" * 100_000), ("\u2603", b"\xff")]),
        lambda: out.append((b"t", None, [("tombstone", b"1")], "not_json")),
        lambda: out.append((None, b"[" * 10_000 + b"]" * 10_000, [], "too_deep")),
        lambda: out.append(
            (
                b"a",
                orjson.dumps(variant(13))[:-1]
                + b',"extra":'
                + b"[" * 30_000
                + b"]" * 30_000
                + b"}",
                [],
                "too_deep",
            )
        ),
        lambda: out.append(
            (
                b"a",
                orjson.dumps({**variant(15), **{f"k{i}": i for i in range(2000)}}),
                [],
                "too_many_keys",
            )
        ),
        lambda: valid(variant(17, timestamp=docs[17]["timestamp"].replace("T", "t")[:-1] + "z")),
        lambda: out.append(
            (
                b"a",
                orjson.dumps(
                    variant(
                        19,
                        timestamp=docs[19]["timestamp"].replace("-", "").replace(":", ""),
                    )
                ),
                [],
                "bad_timestamp",
            )
        ),
        lambda: out.append((b"a", b"\xff\xfe\xfa" * 100, [], "not_utf8")),
        lambda: out.append((None, b"", [], "not_json")),
    ]
    for i, doc in enumerate(docs):
        valid(doc)
        if i % 37 == 20 and hostile:
            hostile.pop(0)()
        if i % 97 == 50:  # a producer's retry: same bytes again
            out.append((*out[-1][:3], "duplicate"))
        if i % 131 == 60:  # the same id, other content
            again = {**doc, "record_count": doc.get("record_count", 1) + 1000}
            out.append((doc["actor_id"].encode(), orjson.dumps(again), [], "duplicate_event_id"))
    while hostile:
        hostile.pop(0)()
    return out


def _position(record: dict) -> tuple[int, int]:
    return record["source"]["partition"], record["source"]["offset"]


def test_hostile_records_are_accounted_for_and_stop_nothing(
    kafka_broker, small_model, tmp_path, report
):
    corpus = _corpus()
    deployment = Deployment(kafka_broker.bootstrap, small_model, tmp_path, scores_topic=True)
    try:
        worker = deployment.start_worker()
        worker.wait_ready()
        positions = deployment.produce([record[:3] for record in corpus])
        expected = dict(zip(positions, (record[3] for record in corpus), strict=True))
        worker.wait_metric("insiderwatch_events_consumed_total", len(corpus), timeout_s=180)
        deadline = time.monotonic() + 30
        while (left := deployment.uncommitted()) > 0:
            assert time.monotonic() < deadline, f"{left} input records never committed"
            time.sleep(1)
        assert worker.process.poll() is None, "the worker must stay alive"

        consumed = worker.metric("insiderwatch_events_consumed_total")
        scored = worker.metric("insiderwatch_events_scored_total")
        dead = worker.metric("insiderwatch_events_dead_lettered_total")
        replayed = worker.metric("insiderwatch_events_replayed_total")
        duplicate = worker.metric("insiderwatch_events_duplicate_total")
        report(
            f"\n[hostile] in={len(corpus)} scored={scored:.0f} dlq={dead:.0f} "
            f"duplicates={duplicate:.0f} replayed={replayed:.0f}"
        )
        assert consumed == scored + dead + replayed + duplicate == len(corpus)
        assert 'reason="processing_error"' not in worker.get("/metrics")[1]

        settings = deployment.settings
        dlq = deployment.read_topic(settings.topic_dlq, expect=int(dead))
        scores = deployment.read_topic(settings.topic_scores, expect=int(scored + duplicate))
        alerts = deployment.read_topic(settings.topic_alerts)
        for record in dlq + scores + alerts:
            assert len(record.key or b"") + len(record.value) <= MAX_RECORD_BYTES
        dead_letters = {_position(d): d for d in map(orjson.loads, (r.value for r in dlq))}
        verdicts = {_position(v): v for v in map(orjson.loads, (r.value for r in scores))}
        for position, outcome in expected.items():
            if outcome == "scored":
                assert "score" in verdicts[position], (position, verdicts.get(position))
            elif outcome == "duplicate":
                assert verdicts[position].get("duplicate") is True, position
            else:
                assert dead_letters[position]["reason"] == outcome, (position, outcome)
        assert set(dead_letters) == {
            p for p, o in expected.items() if o not in ("scored", "duplicate")
        }
        pill = next(d for d in dead_letters.values() if d.get("key_bytes") == 650_000)
        assert pill["key_truncated"] and pill["raw_bytes"] == 65_536 and not pill["raw_truncated"]
    finally:
        deployment.stop()
