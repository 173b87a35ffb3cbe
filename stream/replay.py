"""Produce a JSONL file of access events to the input topic (key = actor_id), optionally paced."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError

from insiderwatch.stream.offline import read_jsonl
from insiderwatch.stream.security import kafka_python_security
from insiderwatch.stream.settings import Settings
from insiderwatch.stream.topics import BrokerUnreachable, ensure_reachable, missing_topics

__all__ = ["replay_file", "make_producer"]


def make_producer(settings: Settings) -> KafkaProducer:
    ensure_reachable(settings)
    try:
        return KafkaProducer(
            bootstrap_servers=settings.broker.split(","),
            acks="all",
            linger_ms=5,
            batch_size=256 * 1024,
            max_request_size=16 * 1024 * 1024,
            client_id="insiderwatch-replay",
            **kafka_python_security(settings),
            retries=5,
        )
    except (KafkaError, OSError, ValueError) as exc:
        raise BrokerUnreachable(
            f"no Kafka broker answers at {settings.broker} ({exc.__class__.__name__}); "
            "start one with 'insiderwatch kafka start'"
        ) from None


def actor_key(raw: bytes) -> bytes | None:
    """The actor_id of a JSON event, as the Kafka key (None when it cannot be read)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    actor = doc.get("actor_id") if isinstance(doc, dict) else None
    return actor.encode() if isinstance(actor, str) else None


def replay_file(
    settings: Settings,
    path: str | Path,
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
    limit: int | None = None,
) -> int:
    """Send every line of ``path`` to ``topic.events``; return how many were acknowledged."""
    if settings.topic_events in missing_topics(settings):
        # Without this check the producer blocks for a minute on metadata that never comes
        # (the broker does not auto-create topics).
        raise BrokerUnreachable(
            f"topic {settings.topic_events} does not exist on {settings.broker}; "
            "run 'insiderwatch topics create'"
        )
    producer = make_producer(settings)
    sent = 0
    failures: list[Exception] = []
    started = time.monotonic()
    try:
        for _, raw in read_jsonl(path):
            if limit is not None and sent >= limit:
                break
            future = producer.send(settings.topic_events, key=actor_key(raw), value=raw)
            future.add_errback(failures.append)
            sent += 1
            if progress is not None and sent % 1000 == 0:
                progress(1000)
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0.002:
                    time.sleep(ahead)
        producer.flush()
    finally:
        producer.close()
    if progress is not None:
        progress(sent % 1000)
    if failures:
        raise RuntimeError(f"{len(failures)} of {sent} events were not acknowledged: {failures[0]}")
    return sent
