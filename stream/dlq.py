"""Dead-letter records: why an event was not scored, and the original bytes to replay it."""

from __future__ import annotations

import base64
import hashlib

import orjson

from models.events import MAX_MESSAGE_BYTES, InvalidEvent

__all__ = ["dead_letter_record"]


def dead_letter_record(
    raw: bytes | None,
    invalid: InvalidEvent,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
    dead_lettered_at: str,
) -> bytes:
    """JSON DLQ message: reason, detail, origin (topic/partition/offset) and the raw bytes.

    The raw value is kept as text when it is UTF-8 and as base64 otherwise. A message over
    the size cap keeps its first 64 KiB plus its sha256 and length; the full original stays
    addressable at its source offset.

    >>> rec = orjson.loads(dead_letter_record(b"nope", InvalidEvent("not_json", "x"), "t", 0, 5, None, "now"))
    >>> rec["reason"], rec["source"]["offset"], rec["raw"]
    ('not_json', 5, 'nope')
    """
    raw = raw or b""
    truncated = len(raw) > MAX_MESSAGE_BYTES
    kept = raw[:MAX_MESSAGE_BYTES]
    record: dict = {
        "reason": invalid.reason,
        "field": invalid.field,
        "detail": invalid.detail,
        "source": {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "timestamp_ms": timestamp_ms,
        },
        "dead_lettered_at": dead_lettered_at,
        "raw_bytes": len(raw),
        "raw_sha256": hashlib.sha256(raw).hexdigest(),
        "raw_truncated": truncated,
    }
    try:
        record["raw"] = kept.decode("utf-8")
    except UnicodeDecodeError:
        record["raw_base64"] = base64.b64encode(kept).decode("ascii")
    return orjson.dumps(record)
