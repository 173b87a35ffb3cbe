"""Create and check the insiderwatch topics through the kafka-python admin client."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from insiderwatch.stream.security import kafka_python_security
from insiderwatch.stream.settings import Settings

__all__ = [
    "ensure_reachable",
    "create_topics",
    "missing_topics",
    "admin_client",
    "BrokerUnreachable",
]


class BrokerUnreachable(RuntimeError):
    """No broker answered at the configured address."""


def ensure_reachable(settings: Settings, timeout_s: float = 3.0, authenticate: bool = True) -> None:
    """Fail fast, in one sentence, when no bootstrap server accepts a TCP connection.

    kafka-python would otherwise retry with back-off for ~30 s and log every attempt. With
    TLS or SASL configured (and ``authenticate``), also log in once, so a wrong password or
    an untrusted certificate is reported as such instead of as a time-out.
    """
    _tcp_reachable(settings, timeout_s)
    if authenticate and settings.security_protocol != "PLAINTEXT":
        admin_client(settings).close()


class _ConnectionFailures(logging.Handler):
    """Collects kafka-python's "Connection failed: <error>" log records (auth, TLS)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        for arg in record.args if isinstance(record.args, tuple) else ():
            if isinstance(arg, BaseException):
                self.errors.append(arg)


@contextmanager
def _explained_connection_errors(settings: Settings) -> Iterator[None]:
    """Turn a failed bootstrap into one sentence naming the cause (credentials, TLS, none)."""
    handler = _ConnectionFailures()
    # kafka-python reports why a connection failed only in ERROR records under "kafka.net";
    # listen to them here (and only here), whatever level the application set for "kafka".
    logger = logging.getLogger("kafka.net")
    saved = logger.level, logger.propagate
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    except (KafkaError, OSError, ValueError) as exc:
        raise BrokerUnreachable(_explain(settings, exc, handler.errors)) from None
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _explain(settings: Settings, exc: BaseException, seen: list[BaseException]) -> str:
    names = {type(error).__name__ for error in seen}
    if "SaslAuthenticationFailedError" in names:
        return (
            f"Kafka at {settings.broker} rejected the {settings.sasl_mechanism} login of user "
            f"{settings.sasl_username!r}; check sasl.username and the password"
        )
    if "UnsupportedSaslMechanismError" in names:
        return (
            f"Kafka at {settings.broker} does not offer SASL mechanism "
            f"{settings.sasl_mechanism}; check sasl.mechanism"
        )
    for error in seen:
        text = str(error)
        if isinstance(error, ssl.SSLError) or "SSL" in text or "Handshake failed" in text:
            reason = text.split("] ", 1)[-1].split(" (_ssl", 1)[0]
            return (
                f"the TLS handshake with Kafka at {settings.broker} failed ({reason}); check "
                "ssl.cafile and security.protocol"
            )
    mechanism = (
        f" and offers sasl.mechanism {settings.sasl_mechanism}"
        if settings.security_protocol.startswith("SASL_")
        else ""
    )
    return (
        f"Kafka at {settings.broker} accepts connections but did not answer "
        f"({exc.__class__.__name__}) with security.protocol {settings.security_protocol}; "
        f"check that the port serves that protocol{mechanism}"
    )


def _tcp_reachable(settings: Settings, timeout_s: float) -> None:
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
    ensure_reachable(settings, authenticate=False)
    with _explained_connection_errors(settings):
        return KafkaAdminClient(
            bootstrap_servers=settings.broker.split(","),
            request_timeout_ms=timeout_ms,
            # a TLS + SASL login to a busy broker can take seconds
            bootstrap_timeout_ms=timeout_ms
            if settings.security_protocol == "PLAINTEXT"
            else 10_000,
            client_id="insiderwatch-admin",
            **kafka_python_security(settings),
        )


PULSE_RETENTION_MS = 7 * 86_400_000


def _specs(settings: Settings) -> list[NewTopic]:
    r = settings.topic_replication
    specs = [
        NewTopic(settings.topic_events, settings.topic_partitions, r),
        NewTopic(settings.topic_alerts, settings.topic_partitions, r),
        NewTopic(settings.topic_dlq, settings.topic_partitions, r),
        NewTopic(settings.topic_suppressed, settings.topic_partitions, r),
    ]
    if settings.topic_scores:
        specs.append(NewTopic(settings.topic_scores, settings.topic_partitions, r))
    # One partition: a small table that every worker reads whole, in one order. Compacted:
    # only each (partition, hour, role)'s latest count matters; deleted after 7 days, long
    # after the pulse last reads an hour.
    specs.append(
        NewTopic(
            settings.topic_pulse,
            1,
            r,
            topic_configs={
                "cleanup.policy": "compact,delete",
                "retention.ms": str(PULSE_RETENTION_MS),
            },
        )
    )
    # Analysts' tables: each key's latest record is the rule (compacted, kept until replaced
    # or withdrawn by a tombstone); one partition, read whole by every worker.
    for name in (settings.topic_feedback, settings.topic_context):
        specs.append(NewTopic(name, 1, r, topic_configs={"cleanup.policy": "compact"}))
    return specs


def create_topics(settings: Settings) -> list[str]:
    """Create the events, alerts, DLQ, suppressed, pulse, feedback and context topics, and
    the scores topic when set
    (existing ones are left as they are)."""
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
        # CreateTopics returns before every broker's metadata shows the topic; wait (bounded)
        # so that a command run right after this one finds it.
        deadline = time.monotonic() + 15.0
        while created and not set(created) <= set(admin.list_topics()):
            if time.monotonic() > deadline:
                raise BrokerUnreachable(
                    f"topics {', '.join(created)} were created but are not visible on "
                    f"{settings.broker} after 15 s"
                )
            time.sleep(0.1)
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
