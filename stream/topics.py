"""Create and check the insiderwatch topics through the kafka-python admin client."""

from __future__ import annotations

import socket

from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from kafka import KafkaAdminClient
from stream.settings import Settings

__all__ = [
    "ensure_reachable",
    "create_topics",
    "missing_topics",
    "admin_client",
    "BrokerUnreachable",
]


class BrokerUnreachable(RuntimeError):
    """No broker answered at the configured address."""


def ensure_reachable(settings: Settings, timeout_s: float = 3.0) -> None:
    """Fail fast, in one sentence, when no bootstrap server accepts a TCP connection.

    kafka-python would otherwise retry with back-off for ~30 s and log every attempt.
    """
    for server in settings.broker.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return
        except OSError:
            continue
    raise BrokerUnreachable(
        f"no Kafka broker answers at {settings.broker}; start one with "
        "'insiderwatch kafka start' or set INSIDERWATCH_BROKER"
    )


def admin_client(settings: Settings, timeout_ms: int = 5000) -> KafkaAdminClient:
    ensure_reachable(settings)
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.broker.split(","),
            request_timeout_ms=timeout_ms,
            client_id="insiderwatch-admin",
        )
    except (KafkaError, OSError, ValueError) as exc:
        raise BrokerUnreachable(
            f"no Kafka broker answers at {settings.broker} ({exc.__class__.__name__}); "
            "start one with 'insiderwatch kafka start' or set INSIDERWATCH_BROKER"
        ) from None


def _specs(settings: Settings) -> list[NewTopic]:
    r = settings.topic_replication
    specs = [
        NewTopic(settings.topic_events, settings.topic_partitions, r),
        NewTopic(settings.topic_alerts, settings.topic_partitions, r),
        NewTopic(settings.topic_dlq, settings.topic_partitions, r),
    ]
    if settings.topic_scores:
        specs.append(NewTopic(settings.topic_scores, settings.topic_partitions, r))
    return specs


def create_topics(settings: Settings) -> list[str]:
    """Create the events, alerts and DLQ topics (existing ones are left as they are)."""
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        created = []
        for spec in _specs(settings):
            if spec.name in existing:
                continue
            try:
                admin.create_topics([spec])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()


def missing_topics(settings: Settings) -> list[str]:
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    return [s.name for s in _specs(settings) if s.name not in existing]
