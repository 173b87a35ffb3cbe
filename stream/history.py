"""Read a training history from the events topic: every retained record up to "now".

``insiderwatch train --from-topic`` uses this instead of a JSONL file. The range is the
topic's content when the command starts (the end offsets are snapshotted first, so a live
topic does not make training run forever), optionally narrowed to an event-time window with
``--since`` / ``--until``. Event time comes from each event's own ``timestamp``, not from the
Kafka record timestamp, which records when it was produced, not when the access happened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from insiderwatch.stream.security import kafka_python_security
from insiderwatch.stream.settings import Settings
from insiderwatch.stream.topics import BrokerUnreachable, ensure_reachable

__all__ = ["read_topic_snapshot"]


def read_topic_snapshot(
    settings: Settings,
    topic: str | None = None,
    progress: Callable[[int], None] | None = None,
    poll_timeout_s: float = 30.0,
) -> Iterator[tuple[bytes, int | None]]:
    """Yield ``(value, record timestamp in ms)`` of every record of ``topic`` (default:
    topic.events) up to its end now.

    Raises :class:`stream.topics.BrokerUnreachable` (one sentence) when the broker or the topic
    is missing, or when the broker stops answering for ``poll_timeout_s``.
    """
    topic = topic or settings.topic_events
    ensure_reachable(settings)
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.broker.split(","),
            enable_auto_commit=False,
            client_id="insiderwatch-train",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            **kafka_python_security(settings),
        )
    except (KafkaError, OSError, ValueError) as exc:
        raise BrokerUnreachable(
            f"no Kafka broker answers at {settings.broker} ({exc.__class__.__name__})"
        ) from None
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise BrokerUnreachable(
                f"topic {topic} does not exist on {settings.broker}; nothing to train on"
            )
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        end = consumer.end_offsets(tps)
        consumer.seek_to_beginning(*tps)
        pending = {tp for tp in tps if consumer.position(tp) < end[tp]}
        idle_polls = 0
        while pending:
            batch = consumer.poll(timeout_ms=1000, max_records=10_000)
            if not batch:
                idle_polls += 1
                if idle_polls >= poll_timeout_s:
                    raise BrokerUnreachable(
                        f"reading {topic} from {settings.broker} stalled for {poll_timeout_s:.0f} s"
                    )
                continue
            idle_polls = 0
            for tp, records in batch.items():
                taken = 0
                for record in records:
                    if record.offset >= end[tp]:
                        break
                    taken += 1
                    if record.value is not None:
                        yield record.value, record.timestamp
                if progress is not None:
                    progress(taken)
                if consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
                    consumer.pause(tp)
    finally:
        consumer.close()
