"""What the worker writes besides alerts and state: keys, score records, dead letters.

Every record the worker writes has a size bounded by construction, whatever it read, because
the broker refusing a record stops the worker (``stream/app.py``: a batch whose results cannot
be stored is never skipped), and a record's size must never depend on a message's content.
The bounds, with the worst case of each record kind, are checked in ``tests/test_records.py``
against the producer's ``max_request_size`` and the topics' ``max.message.bytes``.
"""

from __future__ import annotations

import base64
import hashlib

import orjson

from insiderwatch.models.events import MAX_MESSAGE_BYTES, InvalidEvent

__all__ = [
    "MAX_DETAIL_CHARS",
    "MAX_KEY_BYTES",
    "MAX_RECORD_BYTES",
    "bounded_key",
    "dead_letter_record",
    "score_record",
]

# Every record written (key + value) stays under this: half of Faust's default producer
# ``max_request_size`` (1,000,000) and of Kafka's default ``max.message.bytes`` (1,048,588).
MAX_RECORD_BYTES = 512 * 1024
MAX_KEY_BYTES = 256  # a longer key is cut here and followed by "~sha256:" and its digest
MAX_DETAIL_CHARS = 1000
_KEY_MARK = b"~sha256:"


def bounded_key(key: bytes | None) -> bytes | None:
    """``key`` itself when it has at most :data:`MAX_KEY_BYTES` bytes, else its first
    :data:`MAX_KEY_BYTES` bytes, ``~sha256:`` and the hex digest of the whole key (so equal
    long keys still land in one partition).

    >>> bounded_key(b"actor-7")
    b'actor-7'
    >>> len(bounded_key(b"k" * 650_000))
    328
    """
    if key is None or len(key) <= MAX_KEY_BYTES:
        return key
    return key[:MAX_KEY_BYTES] + _KEY_MARK + hashlib.sha256(key).hexdigest().encode()


def _kept_bytes(raw: bytes, limit: int, name: str, record: dict) -> None:
    """Put ``raw`` (its first ``limit`` bytes) into ``record`` as text when UTF-8, else as
    base64, with its length, sha256 and whether it was cut (``{name}_truncated``)."""
    kept = raw[:limit]
    record[f"{name}_bytes"] = len(raw)
    record[f"{name}_sha256"] = hashlib.sha256(raw).hexdigest()
    record[f"{name}_truncated"] = len(raw) > limit
    try:
        record[name] = kept.decode("utf-8")
    except UnicodeDecodeError:
        record[f"{name}_base64"] = base64.b64encode(kept).decode("ascii")


def dead_letter_record(
    raw: bytes | None,
    invalid: InvalidEvent,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
    dead_lettered_at: str,
    key: bytes | None = None,
) -> bytes:
    """JSON DLQ message: reason, detail, origin (topic/partition/offset), the raw bytes and
    the record's key.

    The raw value (and the key) is kept as text when it is UTF-8 and as base64 otherwise
    (``raw_base64``, ``key_base64``). A value over 64 KiB keeps its first 64 KiB, a key over
    :data:`MAX_KEY_BYTES` its first bytes; each says so (``raw_truncated``, ``key_truncated``)
    and carries the sha256 and length of the whole. The full original stays addressable at its
    source offset. The detail is cut at :data:`MAX_DETAIL_CHARS` characters.

    >>> rec = orjson.loads(dead_letter_record(b"nope", InvalidEvent("not_json", "x"), "t", 0, 5, None, "now"))
    >>> rec["reason"], rec["source"]["offset"], rec["raw"], rec["raw_truncated"]
    ('not_json', 5, 'nope', False)
    >>> rec = orjson.loads(dead_letter_record(b"", InvalidEvent("not_json", "x"), "t", 0, 5,
    ...                                       None, "now", key=b"\\xff" * 300))
    >>> rec["key_bytes"], rec["key_truncated"], len(rec["key_base64"])
    (300, True, 344)
    """
    record: dict = {
        "reason": invalid.reason,
        "field": invalid.field,
        "detail": invalid.detail[:MAX_DETAIL_CHARS],
        "source": {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "timestamp_ms": timestamp_ms,
        },
        "dead_lettered_at": dead_lettered_at,
    }
    _kept_bytes(raw or b"", MAX_MESSAGE_BYTES, "raw", record)
    if key is not None:
        _kept_bytes(key, MAX_KEY_BYTES, "key", record)
    return orjson.dumps(record)


def score_record(
    event_id: str, actor_id: str, partition: int, offset: int, **verdict: object
) -> bytes:
    """JSON score record of one consumed event (``--scores-topic``): its ids, its origin and
    the verdict (``score``, ``flagged`` and the role ``pulse`` it was scored with, or
    ``replayed: true``, or ``duplicate: true``).
    Ids come from a parsed event, so at most 256 characters each.

    >>> score_record("e1", "a1", 0, 7, duplicate=True)
    b'{"event_id":"e1","actor_id":"a1","duplicate":true,"source":{"partition":0,"offset":7}}'
    """
    record = {"event_id": event_id, "actor_id": actor_id, **verdict}
    record["source"] = {"partition": partition, "offset": offset}
    return orjson.dumps(record)
