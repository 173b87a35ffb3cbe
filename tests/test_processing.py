"""The worker's batch processor without a broker: accounting, replays, the decoded-state cache."""

from __future__ import annotations

import asyncio

import orjson

from models.artifact import load_model
from models.detector import Detector
from stream.metrics import WorkerMetrics
from stream.processing import BatchProcessor, RawMessage, decode_stored_state
from tests.helpers import event_bytes


class DictStore:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def put(self, key: bytes, value: bytes, partition: int) -> None:
        self.data[key] = value


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


def _messages(first_offset: int, n: int, minute0: int = 0) -> list[RawMessage]:
    return [
        RawMessage(
            b"alice",
            event_bytes(i, timestamp=f"2026-01-05T09:{minute0 + i:02d}:00Z"),
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
