"""Every record the worker writes is bounded in size, whatever it read: the worst case of each
record kind against the producer's ``max_request_size`` and Kafka's ``max.message.bytes``."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import faust
import orjson
import pytest

from insiderwatch.models.artifact import load_model
from insiderwatch.models.detector import Detector
from insiderwatch.models.events import (
    MAX_FIELD_CHARS,
    MAX_FIELDS,
    MAX_ID_CHARS,
    AccessEvent,
    InvalidEvent,
)
from insiderwatch.models.state import MAX_STATE_BYTES
from insiderwatch.stream.formats import format_alert
from insiderwatch.stream.metrics import WorkerMetrics
from insiderwatch.stream.processing import BatchProcessor, RawMessage
from insiderwatch.stream.records import (
    MAX_KEY_BYTES,
    MAX_RECORD_BYTES,
    bounded_key,
    dead_letter_record,
    score_record,
)
from tests.helpers import DictStore, event_bytes

KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588  # broker and topic default of max.message.bytes
# JSON's worst expansion of one character: a control character is written as \u0001.
WORST = "\x01"
HUGE_KEY = WORST.encode() * 1_048_576


def test_the_record_bound_is_under_what_the_producer_and_the_topics_accept():
    producer_limit = faust.App("bounds-check").conf.producer_max_request_size
    assert min(producer_limit, KAFKA_DEFAULT_MAX_MESSAGE_BYTES) > MAX_RECORD_BYTES


def test_a_huge_key_is_cut_to_a_prefix_and_its_digest():
    key = bounded_key(HUGE_KEY)
    assert key is not None and len(key) <= MAX_KEY_BYTES + 72
    assert key.startswith(HUGE_KEY[:MAX_KEY_BYTES])
    assert key.endswith(hashlib.sha256(HUGE_KEY).hexdigest().encode())
    assert bounded_key(b"k" * MAX_KEY_BYTES) == b"k" * MAX_KEY_BYTES
    assert bounded_key(None) is None and bounded_key(b"") == b""


@pytest.mark.parametrize("raw", [WORST.encode() * 70_000, b"\xff" * 70_000, b'"' * 70_000])
def test_the_worst_dead_letter_is_bounded_and_says_what_it_cut(raw):
    problem = InvalidEvent("not_json", WORST * 100_000, "x" * 1000)
    record = dead_letter_record(
        raw, problem, "t" * 249, 2**31 - 1, 2**63 - 1, 2**63 - 1, "now", key=HUGE_KEY
    )
    assert len(bounded_key(HUGE_KEY)) + len(record) <= MAX_RECORD_BYTES
    doc = orjson.loads(record)
    assert doc["raw_truncated"] and doc["raw_bytes"] == len(raw)
    assert doc["raw_sha256"] == hashlib.sha256(raw).hexdigest()
    assert doc["key_truncated"] and doc["key_bytes"] == len(HUGE_KEY)
    assert doc["key_sha256"] == hashlib.sha256(HUGE_KEY).hexdigest()


def test_a_dead_letter_keeps_the_raw_bytes_of_a_message_that_is_not_utf8():
    raw = b"\xff\xfe\x00 not text"
    doc = orjson.loads(dead_letter_record(raw, InvalidEvent("not_utf8", "x"), "t", 0, 1, None, "n"))
    assert base64.b64decode(doc["raw_base64"]) == raw and "raw" not in doc
    assert not doc["raw_truncated"] and doc["raw_bytes"] == len(raw)


def test_the_worst_score_record_is_bounded():
    longest = WORST * MAX_ID_CHARS
    record = score_record(longest, longest, 2**31 - 1, 2**63 - 1, score=0.123456789, flagged=True)
    assert len(bounded_key(HUGE_KEY)) + len(record) <= 4096


def _worst_event(i: int) -> AccessEvent:
    longest = WORST * (MAX_ID_CHARS - 3) + f"{i:03d}"
    return AccessEvent(
        event_id=longest,
        timestamp=f"2026-01-05T09:30:{i:02d}.00000000000000000000000000000000000000000000000Z",
        actor_id=WORST * MAX_ID_CHARS,
        action=WORST * MAX_ID_CHARS,
        resource_type=WORST * MAX_ID_CHARS,
        actor_role=WORST * MAX_ID_CHARS,
        actor_team=WORST * MAX_ID_CHARS,
        resource_id=WORST * MAX_ID_CHARS,
        record_count=1_000_000_000,
        fields=tuple(WORST * (MAX_FIELD_CHARS - 2) + f"{k:02d}" for k in range(MAX_FIELDS)),
        ticket_id=None,
        source_ip=WORST * MAX_ID_CHARS,
        device_id=WORST * MAX_ID_CHARS,
        outcome=WORST * MAX_ID_CHARS,
    )


@pytest.mark.parametrize("alert_format", ["native", "ocsf"])
def test_the_worst_alert_and_state_are_bounded(small_model, alert_format):
    detector = Detector(load_model(small_model))
    detector.threshold = -1.0  # every event alerts: the incident grows to its largest
    detector._cuts = (-1.0, -1.0, -1.0, -1.0)
    states: dict = {}
    largest = 0
    for i in range(40):
        outcome = detector.process([_worst_event(i)], states, "2026-01-05T09:30:00Z")
        for alert in outcome.alerts:
            payload = orjson.dumps(format_alert(alert, alert_format))
            largest = max(largest, len(alert["actor_id"].encode()) + len(payload))
    assert largest > 0, "no alert was produced"
    assert largest <= MAX_RECORD_BYTES, largest
    from insiderwatch.stream.processing import encode_stored_state

    (state,) = states.values()
    stored = encode_stored_state(state, 2**31 - 1, 2**63 - 1)
    assert len(stored) <= 4 * MAX_STATE_BYTES  # 2 KiB for ASCII ids; non-ASCII ids up to 4x


class _Recorder:
    def __init__(self) -> None:
        self.records: dict[str, list[tuple[bytes | None, bytes]]] = {
            "alerts": [],
            "dlq": [],
            "scores": [],
        }

    def sender(self, name: str):
        async def send(key, value):
            self.records[name].append((key, value))
            future = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future

        return send


def test_the_poison_pill_is_dead_lettered_within_the_bound_and_the_partition_goes_on(small_model):
    """A 650,000-byte key and a 64 KiB value of control bytes: 1,043,694 bytes of dead letter
    when the key was reused and every byte escaped; now a bounded record, and the events
    behind it are scored."""
    recorder = _Recorder()
    processor = BatchProcessor(
        Detector(load_model(small_model)),
        DictStore(),
        recorder.sender("alerts"),
        recorder.sender("dlq"),
        WorkerMetrics(),
        send_score=recorder.sender("scores"),
    )
    pill = RawMessage(b"k" * 650_000, WORST.encode() * 65_536, "access-events", 0, 0, None)
    behind = [
        RawMessage(b"k" * 650_000, event_bytes(i), "access-events", 0, 1 + i, None)
        for i in range(3)
    ]
    asyncio.run(processor.handle([pill, *behind]))
    written = [pair for records in recorder.records.values() for pair in records]
    assert all(len(key or b"") + len(value) <= MAX_RECORD_BYTES for key, value in written)
    ((key, value),) = recorder.records["dlq"]
    doc = orjson.loads(value)
    assert doc["reason"] == "not_json" and doc["source"]["offset"] == 0
    assert doc["key_truncated"] and doc["key_bytes"] == 650_000
    assert len(recorder.records["scores"]) == 3
    assert processor.metrics.scored._value.get() == 3
    assert processor.last_offset[0] == 3
