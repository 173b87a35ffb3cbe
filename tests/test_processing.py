"""The worker's batch processor without a broker: accounting, replays, the decoded-state cache."""

from __future__ import annotations

import asyncio

import orjson

from insiderwatch.models.artifact import load_model
from insiderwatch.models.detector import Detector
from insiderwatch.stream.metrics import WorkerMetrics
from insiderwatch.stream.processing import (
    BatchProcessor,
    RawMessage,
    decode_stored_state,
    measure_in_slices,
)
from tests.helpers import DictStore, event_bytes


def _processor(model_dir, store):
    sent: dict[str, list[bytes]] = {"alerts": [], "dlq": []}

    def sender(name):
        async def send(key, value):
            sent[name].append(value)
            future = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future

        return send

    processor = BatchProcessor(
        Detector(load_model(model_dir)), store, sender("alerts"), sender("dlq"), WorkerMetrics()
    )
    return processor, sent


def _messages(first_offset: int, n: int, minute0: int | None = None) -> list[RawMessage]:
    """Alice's events at offsets ``first_offset``..: the event at offset k is always event
    k (a redelivery carries the same bytes), one a minute from ``minute0`` (default: k)."""
    minute0 = first_offset if minute0 is None else minute0
    return [
        RawMessage(
            b"alice",
            event_bytes(first_offset + i, timestamp=f"2026-01-05T09:{minute0 + i:02d}:00Z"),
            "access-events",
            0,
            first_offset + i,
            1767603600000,
        )
        for i in range(n)
    ]


def test_every_message_is_scored_dead_lettered_or_skipped_as_replayed(small_model):
    store = DictStore()
    processor, sent = _processor(small_model, store)
    batch = _messages(0, 5) + [RawMessage(b"x", b"{not json", "access-events", 0, 5, None)]
    asyncio.run(processor.handle(batch))
    metrics = processor.metrics
    assert metrics.scored._value.get() == 5
    assert len(sent["dlq"]) == 1 and orjson.loads(sent["dlq"][0])["reason"] == "not_json"
    _, partition, offset = decode_stored_state(store.data[b"alice"])
    assert (partition, offset) == (0, 4)

    # Kafka redelivers offsets 3..7 after a crash: 3 and 4 are already in the state.
    asyncio.run(processor.handle(_messages(3, 5)))
    assert metrics.replayed._value.get() == 2
    assert metrics.scored._value.get() == 8
    assert metrics.consumed._value.get() == 11


def test_the_table_wins_over_the_decoded_state_cache(small_model):
    # Two processors see the same events; in the first, the table is rolled back between the
    # batches (as a changelog recovery can do), so its cached state must not be used.
    store, fresh_store = DictStore(), DictStore()
    processor, _ = _processor(small_model, store)
    fresh, _ = _processor(small_model, fresh_store)
    asyncio.run(processor.handle(_messages(0, 3)))
    rolled_back = dict(store.data)
    asyncio.run(processor.handle(_messages(3, 3, minute0=3)))
    store.data = dict(rolled_back)
    fresh_store.data = dict(rolled_back)
    asyncio.run(processor.handle(_messages(3, 3, minute0=3)))
    asyncio.run(fresh.handle(_messages(3, 3, minute0=3)))
    assert store.data == fresh_store.data
    assert processor.metrics.replayed._value.get() == 0  # offsets 3..5 were applied afresh


def test_the_decoded_state_cache_keeps_the_most_recently_written_actors(small_model, monkeypatch):
    monkeypatch.setattr("insiderwatch.stream.processing.DECODED_CACHE_ACTORS", 3)
    processor, _ = _processor(small_model, DictStore())

    def batch(actors, first_offset):
        return [
            RawMessage(
                actor.encode(),
                event_bytes(first_offset + k, actor_id=actor),
                "access-events",
                0,
                first_offset + k,
                1767603600000,
            )
            for k, actor in enumerate(actors)
        ]

    asyncio.run(processor.handle(batch(["a", "b", "c", "d", "e"], 0)))
    assert list(processor._decoded) == ["c", "d", "e"]
    asyncio.run(processor.handle(batch(["c", "f"], 5)))  # c is written again: newest
    assert list(processor._decoded) == ["e", "c", "f"]


def test_measuring_states_in_slices_lets_the_loop_run_and_gives_up_when_partitions_move():
    async def count_while_another_task_runs(still_valid):
        ticks = 0

        async def other_task():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(other_task())
        await asyncio.sleep(0)
        count = await measure_in_slices(iter([b"abc"] * 100_000), 10_000, still_valid)
        task.cancel()
        return count, ticks

    measured, ticks = asyncio.run(count_while_another_task_runs(lambda: True))
    assert measured == (100_000, 300_000) and ticks >= 10  # the loop ran between slices
    assert asyncio.run(count_while_another_task_runs(lambda: False))[0] is None


class _BuggyDetector(Detector):
    """A detector with a bug that any event whose id starts with "poison" triggers."""

    def process(self, events, states, detected_at):
        for event in events:
            if event.event_id.startswith("poison"):
                # Fail half-way, after the batch has already changed some states.
                super().process(events[:1], states, detected_at)
                raise RuntimeError(f"bug triggered by {event.event_id}")
        return super().process(events, states, detected_at)


def _message(offset, actor, event_id, minute):
    value = event_bytes(
        offset, actor_id=actor, event_id=event_id, timestamp=f"2026-01-05T09:{minute:02d}:00Z"
    )
    return RawMessage(actor.encode(), value, "access-events", 0, offset, 1767603600000)


def test_an_event_that_makes_the_detector_raise_is_dead_lettered_and_the_rest_scored(
    small_model,
):
    store = DictStore()
    processor, sent = _processor(small_model, store)
    processor.detector = _BuggyDetector(load_model(small_model))
    reference_store = DictStore()
    reference, _ = _processor(small_model, reference_store)
    batch = [
        _message(0, "alice", "a0", 0),
        _message(1, "bob", "b0", 1),
        _message(2, "alice", "poison-a", 2),
        _message(3, "alice", "a1", 3),
        _message(4, "carol", "poison-c", 4),  # a new actor whose only event fails
        _message(5, "bob", "b1", 5),
    ]
    asyncio.run(processor.handle(batch))

    metrics = processor.metrics
    assert metrics.scored._value.get() == 4
    assert metrics.dead_lettered.labels(reason="processing_error")._value.get() == 2
    dead = [orjson.loads(record) for record in sent["dlq"]]
    assert [(d["reason"], d["source"]["offset"]) for d in dead] == [
        ("processing_error", 2),
        ("processing_error", 4),
    ]
    assert "RuntimeError: bug triggered by poison-a" in dead[0]["detail"]
    assert b"carol" not in store.data
    # The others' states are those of a batch without the failing events (nothing of the
    # failed attempt leaks in), and positions cover the dead-lettered events too.
    asyncio.run(
        reference.handle(
            [m for m in batch if not orjson.loads(m.value)["event_id"].startswith("poison")]
        )
    )
    for actor in (b"alice", b"bob"):
        state = decode_stored_state(store.data[actor])[0]
        assert state == decode_stored_state(reference_store.data[actor])[0]
    assert decode_stored_state(store.data[b"alice"])[2] == 3


def test_an_unreadable_stored_state_restarts_the_actor_instead_of_stopping(small_model):
    store = DictStore()
    processor, _ = _processor(small_model, store)
    asyncio.run(processor.handle(_messages(0, 2)))
    # As left by a version with another state format, and plain damage.
    store.data[b"alice"] = store.data[b"alice"][:12] + b'[99, "future format"]'
    store.data[b"bob"] = b"\x00garbage"
    batch = _messages(2, 2, minute0=2) + [_message(4, "bob", "b0", 9)]
    asyncio.run(processor.handle(batch))
    metrics = processor.metrics
    assert metrics.state_unreadable._value.get() == 2
    assert metrics.scored._value.get() == 5
    for actor in (b"alice", b"bob"):
        decode_stored_state(store.data[actor])  # rewritten, readable again
    fresh_store = DictStore()
    fresh, _ = _processor(small_model, fresh_store)
    asyncio.run(fresh.handle(_messages(2, 2, minute0=2)))
    assert (
        decode_stored_state(store.data[b"alice"])[0]
        == decode_stored_state(fresh_store.data[b"alice"])[0]
    )


def test_an_event_that_makes_the_parser_raise_is_dead_lettered(small_model, monkeypatch):
    from insiderwatch.models.events import parse_event
    from insiderwatch.stream import processing

    def buggy_parse(raw):
        if b"poison" in raw:
            raise RuntimeError("parser bug")
        return parse_event(raw)

    monkeypatch.setattr(processing, "parse_event", buggy_parse)
    processor, sent = _processor(small_model, DictStore())
    batch = [_message(0, "alice", "a0", 0), _message(1, "alice", "poison", 1)]
    batch.append(_message(2, "alice", "a1", 2))
    asyncio.run(processor.handle(batch))
    assert processor.metrics.scored._value.get() == 2
    dead = [orjson.loads(record) for record in sent["dlq"]]
    assert [(d["reason"], d["source"]["offset"]) for d in dead] == [("processing_error", 1)]
    assert "RuntimeError: parser bug" in dead[0]["detail"]


def test_an_alert_that_cannot_be_rendered_sends_its_event_to_the_dlq(small_model, monkeypatch):
    """A bug in rendering one alert must not stop the worker (which would stop on the same
    batch after every restart): the alert's event goes to the DLQ with the alert id, the
    other alerts of the batch are sent, and every event is still scored."""
    from insiderwatch.stream import processing
    from insiderwatch.stream.formats import format_alert

    def buggy_format(alert, alert_format):
        if alert["status"] == "new":
            raise KeyError("finding_info")
        return format_alert(alert, alert_format)

    monkeypatch.setattr(processing, "format_alert", buggy_format)
    processor, sent = _processor(small_model, DictStore())
    processor.alert_format = "ocsf"
    burst = [
        RawMessage(
            b"mallory",
            event_bytes(
                i,
                actor_id="mallory",
                event_id=f"m{i}",
                timestamp=f"2026-01-20T03:{i // 60:02d}:{i % 60:02d}Z",
                action="export",
                resource_type="customer_contact",
                record_count=50_000 * (i + 1),
                fields=["email"],
                ticket_id=None,
            ),
            "access-events",
            0,
            i,
            1768881600000,  # 2026-01-20T04:00:00Z, after the events
        )
        for i in range(120)
    ]
    asyncio.run(processor.handle(burst))

    assert processor.metrics.scored._value.get() == 120
    dead = [orjson.loads(record) for record in sent["dlq"]]
    assert len(dead) == 1 and dead[0]["reason"] == "processing_error"
    assert ", new) could not be rendered as ocsf: KeyError" in dead[0]["detail"]
    assert orjson.loads(dead[0]["raw"])["event_id"] == f"m{dead[0]['source']['offset']}"
    updates = [orjson.loads(record) for record in sent["alerts"]]
    assert updates, "the incident's later updates are still sent"
    assert all(u["class_uid"] == 2004 for u in updates)


def test_an_event_from_the_future_is_dead_lettered_and_does_not_freeze_its_actor(small_model):
    """An event far ahead of the Kafka record carrying it (a producer clock ahead) would move
    its actor's window clock, and the actor's real events would all be late for a day."""
    processor, sent = _processor(small_model, DictStore())
    record_ms = 1767603600000  # 2026-01-05T09:00:00Z
    batch = [
        _message(0, "alice", "a0", 0),
        RawMessage(
            b"alice",
            event_bytes(1, event_id="tomorrow", timestamp="2026-01-06T09:00:00Z"),
            "access-events",
            0,
            1,
            record_ms,
        ),
        _message(2, "alice", "a1", 30),  # 30 min after its record: within the tolerance
        RawMessage(b"alice", event_bytes(3, event_id="no-ts"), "access-events", 0, 3, None),
    ]
    asyncio.run(processor.handle(batch))

    dead = [orjson.loads(record) for record in sent["dlq"]]
    assert [(d["reason"], d["field"], d["source"]["offset"]) for d in dead] == [
        ("bad_timestamp", "timestamp", 1)
    ]
    assert "86,400 s after the Kafka record" in dead[0]["detail"]
    assert processor.metrics.scored._value.get() == 3
    assert processor.metrics.late._value.get() == 0


def test_a_retried_event_is_counted_as_duplicate_neither_scored_nor_learnt(small_model):
    store = DictStore()
    processor, sent = _processor(small_model, store)
    first = _messages(0, 3)
    asyncio.run(processor.handle(first))
    before = decode_stored_state(store.data[b"alice"])[0]
    # The producer retried offsets 1 and 2 (same bytes, new offsets), and, within one batch,
    # a new actor's event twice.
    bob = event_bytes(50, actor_id="bob")
    retried = [
        RawMessage(b"alice", m.value, "access-events", 0, 3 + i, None)
        for i, m in enumerate(first[1:])
    ]
    bobs = [RawMessage(b"bob", bob, "access-events", 0, 5 + i, None) for i in range(2)]
    asyncio.run(processor.handle(retried + bobs))
    metrics = processor.metrics
    assert metrics.duplicate._value.get() == 3
    assert metrics.scored._value.get() == 4  # 3 of alice, bob once
    after = decode_stored_state(store.data[b"alice"])[0]
    assert after.n_seen == before.n_seen and after.win == before.win
    assert decode_stored_state(store.data[b"bob"])[0].n_seen == 1
    # ... and across batches for the new actor too, after its state was written.
    asyncio.run(processor.handle([RawMessage(b"bob", bob, "access-events", 0, 7, None)]))
    assert metrics.duplicate._value.get() == 4 and metrics.scored._value.get() == 4
    assert sent["dlq"] == []


def test_a_reused_event_id_with_other_content_goes_to_the_dlq(small_model):
    processor, sent = _processor(small_model, DictStore())
    asyncio.run(processor.handle(_messages(0, 2)))
    reused = event_bytes(1, resource_id="cust-other", timestamp="2026-01-05T09:05:00Z")
    asyncio.run(processor.handle([RawMessage(b"alice", reused, "access-events", 0, 2, None)]))
    (record,) = [orjson.loads(value) for value in sent["dlq"]]
    assert (record["reason"], record["field"]) == ("duplicate_event_id", "event_id")
    assert record["source"]["offset"] == 2 and record["raw"] == reused.decode()
    assert processor.metrics.scored._value.get() == 2


def test_consumed_equals_scored_plus_dead_lettered_replayed_and_duplicates(small_model):
    processor, _ = _processor(small_model, DictStore())
    batch = _messages(0, 4)
    asyncio.run(processor.handle(batch))
    again = [
        *_messages(2, 4),  # 2 and 3 replayed, 4 and 5 new
        RawMessage(b"alice", batch[0].value, "access-events", 0, 6, None),  # a retry
        RawMessage(b"alice", b"\xff", "access-events", 0, 7, None),
    ]
    asyncio.run(processor.handle(again))
    m = processor.metrics
    dead = sum(
        sample.value
        for sample in m.dead_lettered.collect()[0].samples
        if sample.name.endswith("_total")
    )
    accounted = m.scored._value.get() + dead + m.replayed._value.get() + m.duplicate._value.get()
    assert m.consumed._value.get() == accounted == 10
    assert (m.replayed._value.get(), m.duplicate._value.get(), dead) == (2, 1, 1)
