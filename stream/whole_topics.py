"""Topics that every worker reads whole: the role pulse, analysts' verdicts and context.

Partitioned state moves between workers with its input partitions; these small tables must
not: every worker needs every role's pulse (``topic.pulse``), every verdict
(``topic.feedback``) and every actor's context (``topic.context``) whatever partitions it
holds. So one consumer outside the consumer group reads each of these compacted topics from
the beginning and follows it, handing each record to its table. This is what Faust's global
tables do, without a second changelog per table and with a handler that can refuse a record
(a bad verdict goes to the DLQ with its reason instead of stopping the worker).

:attr:`WholeTopicsReader.loaded` is set once the reader has read what the topics held at
start, so ``/ready`` (and the first batch) wait for the rules and counts written before the
worker started: after a restart or a rebalance a worker applies the same rules as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["WholeTopicsReader", "Handler", "topic_partitions"]

log = logging.getLogger("insiderwatch")
# A consumed record (aiokafka's ConsumerRecord: topic, partition, offset, key, value, ...).
Handler = Callable[[Any], Awaitable[None] | None]


class WholeTopicsReader:
    """Reads ``handlers``' topics whole, from the beginning, and follows them.

    ``consumer`` is an unstarted aiokafka consumer without a group (see ``stream/app.py``),
    so every worker reads every record; ``partitions`` maps each topic to its partitions
    (:func:`topic_partitions`). A handler may be a coroutine function (awaited) or a
    plain function. A topic that does not exist is named in one warning and skipped: the
    worker scores without it.
    """

    def __init__(
        self,
        consumer: Any,
        handlers: Mapping[str, Handler],
        partitions: Mapping[str, set[int]],
    ) -> None:
        self.consumer, self.handlers = consumer, dict(handlers)
        # Each topic's partitions, looked up by the caller (:func:`topic_partitions`): an
        # aiokafka consumer's metadata cache only holds topics it was asked about.
        self.partitions = dict(partitions)
        self.loaded = asyncio.Event()
        self.missing: list[str] = []
        self.records = 0
        self.failed = 0

    def _assign(self) -> list:
        """The partitions of every topic that exists."""
        from aiokafka import TopicPartition

        tps = []
        for topic in self.handlers:
            partitions = self.partitions.get(topic) or set()
            if not partitions:
                self.missing.append(topic)
                log.warning(
                    "insiderwatch worker: topic %r not found (run `insiderwatch topics "
                    "create`); working without it",
                    topic,
                )
            tps += [TopicPartition(topic, p) for p in sorted(partitions)]
        return tps

    async def run(self) -> None:
        """Read until cancelled."""
        consumer = self.consumer
        await consumer.start()
        try:
            tps = self._assign()
            if not tps:
                return
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while True:
                if not self.loaded.is_set() and await _caught_up(consumer, ends):
                    self.loaded.set()
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                for records in batches.values():
                    for record in records:
                        await self._hand_over(record)
        finally:
            self.loaded.set()
            await consumer.stop()

    async def _hand_over(self, record: Any) -> None:
        """One record to its table. A handler refuses bad records itself (the DLQ); if it
        raises all the same (a bug, or the DLQ unreachable), the record is logged and
        skipped, so the reader keeps following its topics."""
        self.records += 1
        try:
            outcome = self.handlers[record.topic](record)
            if outcome is not None:
                await outcome
        except Exception:
            self.failed += 1
            log.exception(
                "insiderwatch worker: record %s/%d@%d could not be applied; skipped",
                record.topic,
                record.partition,
                record.offset,
            )


async def _caught_up(consumer: Any, ends: Mapping[Any, int]) -> bool:
    """Whether the consumer has read every partition up to ``ends``."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


def topic_partitions(settings: Any, topics: list[str]) -> dict[str, set[int]]:
    """Each topic's partitions (empty: it does not exist), from a metadata request of
    kafka-python's consumer (blocking: run it in a thread)."""
    from kafka import KafkaConsumer

    from insiderwatch.stream.security import kafka_python_security

    consumer = KafkaConsumer(
        bootstrap_servers=settings.broker.split(","),
        client_id=f"{settings.app_id}-tables-metadata",
        **kafka_python_security(settings),
    )
    try:
        return {topic: set(consumer.partitions_for_topic(topic) or ()) for topic in topics}
    finally:
        consumer.close()
