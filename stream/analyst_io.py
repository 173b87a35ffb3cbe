"""Kafka I/O of the analyst's commands: find an alert, write a verdict or context, read a table.

The records' formats and meaning are in :mod:`insiderwatch.models.analyst`; this module only
moves them (kafka-python, the same security settings as every other command).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from insiderwatch.models.analyst import DEFAULT_SUPPRESS_DAYS, alert_pattern
from insiderwatch.models.detector import rfc3339
from insiderwatch.models.events import parse_timestamp
from insiderwatch.stream.security import kafka_python_security
from insiderwatch.stream.settings import Settings
from insiderwatch.stream.topics import BrokerUnreachable, ensure_reachable

__all__ = [
    "native_view",
    "verdict_record",
    "context_record",
    "find_alert",
    "produce",
    "read_topic",
]


def native_view(doc: dict) -> dict:
    """The fields a verdict needs, from a native alert or an OCSF Detection Finding.

    >>> native_view({"alert_id": "iw-1", "kind": "event", "actor_id": "a",
    ...              "timestamp": "2026-01-05T09:30:00Z", "event_ids": ["e1"],
    ...              "event": {"action": "view", "resource_type": "review"},
    ...              "reasons": [{"feature": "access_surprise"}]})["pattern"]
    {'access': 'view review', 'reasons': ['access_surprise']}
    """
    if "class_uid" in doc:  # OCSF: the native fields it maps (stream/ocsf.py)
        unmapped = doc.get("unmapped") or {}
        resource = (doc.get("resources") or [{}])[0]
        info = doc.get("finding_info") or {}
        doc = {
            "alert_id": info.get("uid"),
            "kind": unmapped.get("kind", "event"),
            "actor_id": unmapped.get("actor_id"),
            "timestamp": unmapped.get("timestamp"),
            "event_ids": [e.get("uid") for e in info.get("related_events") or []],
            "event": {
                "action": (resource.get("data") or {}).get("action"),
                "resource_type": resource.get("type"),
            },
            "reasons": [
                {"feature": e.get("name")}
                for e in doc.get("evidences") or []
                if e.get("name") != "risk_evidence"
            ],
            "summary": doc.get("message"),
            "score": unmapped.get("score"),
            "severity": str(doc.get("severity", "")).lower(),
        }
    access, reasons = alert_pattern(doc)
    return {
        "alert_id": doc.get("alert_id"),
        "kind": doc.get("kind", "event"),
        "actor_id": doc.get("actor_id"),
        "timestamp": doc.get("timestamp"),
        "event_ids": list(doc.get("event_ids") or [])[:64],
        "pattern": {"access": access, "reasons": list(reasons)},
        "summary": doc.get("summary"),
        "score": doc.get("score"),
        "severity": doc.get("severity"),
    }


def verdict_record(
    alert: dict,
    verdict: str,
    scope: str,
    days: float = DEFAULT_SUPPRESS_DAYS,
    analyst: str | None = None,
    note: str | None = None,
) -> dict:
    """The feedback record of a verdict on ``alert`` (a :func:`native_view`)."""
    since = parse_timestamp(alert["timestamp"])
    return {
        "alert_id": alert["alert_id"],
        "verdict": verdict,
        "scope": scope,
        "actor_id": alert["actor_id"],
        "kind": alert["kind"],
        "alert_timestamp": alert["timestamp"],
        "until": rfc3339(since + days * 86400.0),
        "pattern": alert["pattern"],
        "event_ids": alert["event_ids"],
        "analyst": analyst,
        "note": note,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def context_record(actor_id: str, **values: object) -> dict:
    """The context record of ``actor_id`` (None values left out)."""
    record: dict[str, object] = {"actor_id": actor_id}
    record.update({k: v for k, v in values.items() if v is not None})
    record["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return record


def produce(settings: Settings, topic: str, key: bytes, value: bytes | None) -> None:
    """Write one record and wait until the broker has it (all in-sync replicas)."""
    ensure_reachable(settings)
    try:
        producer = KafkaProducer(
            bootstrap_servers=settings.broker.split(","),
            acks="all",
            client_id="insiderwatch-analyst",
            **kafka_python_security(settings),
        )
        try:
            producer.send(topic, key=key, value=value).get(timeout=15)
        finally:
            producer.close()
    except KafkaError as exc:
        raise BrokerUnreachable(f"could not write to {topic} on {settings.broker}: {exc}") from None


def read_topic(
    settings: Settings, topic: str, since_ms: int | None = None, timeout_s: float = 30.0
) -> Iterator:
    """Every record of ``topic`` up to its end at the time of the call (from ``since_ms``,
    a record timestamp, when given)."""
    ensure_reachable(settings)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.broker.split(","),
        enable_auto_commit=False,
        client_id="insiderwatch-analyst",
        consumer_timeout_ms=1000,
        **kafka_python_security(settings),
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise BrokerUnreachable(
                f"topic {topic} does not exist on {settings.broker}; run 'insiderwatch topics "
                "create'"
            )
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        _seek(consumer, tps, since_ms)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise BrokerUnreachable(f"reading {topic} took longer than {timeout_s:.0f} s")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.offset < ends[TopicPartition(record.topic, record.partition)]:
                        yield record
    finally:
        consumer.close()


def _seek(consumer: KafkaConsumer, tps: list, since_ms: int | None) -> None:
    if since_ms is None:
        consumer.seek_to_beginning(*tps)
        return
    found = consumer.offsets_for_times({tp: since_ms for tp in tps})
    for tp in tps:
        if found.get(tp) is not None:
            consumer.seek(tp, found[tp].offset)
        else:
            consumer.seek_to_end(tp)


def find_alert(
    settings: Settings, alert_id: str, keep: Callable[[dict], bool] | None = None
) -> dict | None:
    """The latest message of ``alert_id`` on the alerts topic (or, held back, on the
    suppressed topic), as a :func:`native_view`; None when neither has it."""
    found = None
    needle = alert_id.encode()
    for topic in (settings.topic_alerts, settings.topic_suppressed):
        for record in read_topic(settings, topic):
            if record.value is None or needle not in record.value:
                continue
            try:
                view = native_view(orjson.loads(record.value))
            except (orjson.JSONDecodeError, AttributeError, TypeError):
                continue
            if view["alert_id"] == alert_id and (keep is None or keep(view)):
                found = view
        if found is not None:
            return found
    return found
