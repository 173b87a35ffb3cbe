"""Batch intake: records of the events topic reach the scoring agent in batches.

Why this exists: Faust moves every consumed record through its per-event machinery (one
``wait_first`` with two futures per record in the fetch loop, the conductor callback under a
lock, a stream queue, per-event sensors and acks). On this machine that alone costs about
87 us per event, a ceiling of ~11,500 events/s for an agent that does nothing
(``benchmarks/faust_noop_app.py``). insiderwatch scores whole batches, so that work buys
nothing. :class:`BatchingConsumer` hands each fetched batch of the events topic to a
bounded :class:`BatchIntake`, and the agent takes batches from it.

What stays Faust's: consumer-group membership and partition assignment (co-partitioned with
the actor-state changelog), table recovery and standbys, the producer, the web server and
offset commits. Records of every other topic (changelogs during recovery) still go through
Faust's callback. The contract with Faust's commit logic is kept exactly:

- every record handed to the intake is *tracked* (pending ack), so a rebalance waits for it
  (``Consumer.wait_empty``) before partitions move;
- the agent *acks* each record through ``Consumer.ack`` only after its batch is processed and
  the state that reflects it is stored, so Faust commits processed offsets only;
- a batch the fetch loop could not hand over because a rebalance began is untracked and not
  marked read; Faust seeks back to the committed offsets and fetches it again.

Back-pressure: the intake holds at most ``max_pending`` batches. When the agent is slow (for
example the alerts topic is slow to acknowledge), the fetch loop waits, and Kafka keeps the
rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

__all__ = ["BatchIntake", "BatchingApp", "BatchingConsumer", "BatchingTransport"]


class BatchIntake:
    """Bounded hand-over of consumed record batches from the fetch loop to the agent.

    Parameters
    ----------
    topic:
        Records of this topic go to the intake; all others keep Faust's per-event path.
    max_pending:
        Batches the fetch loop may run ahead of the agent (back-pressure beyond that).
    """

    def __init__(self, topic: str, max_pending: int = 4) -> None:
        self.topic = topic
        self._queue: asyncio.Queue[list[Message]] = asyncio.Queue(maxsize=max_pending)
        self._carry: list[Message] = []

    async def offer(self, batch: list[Message], interrupted: asyncio.Event) -> bool:
        """Hand ``batch`` over; False if ``interrupted`` was set while waiting for room."""
        if not self._queue.full():
            self._queue.put_nowait(batch)
            return True
        put = asyncio.ensure_future(self._queue.put(batch))
        stop = asyncio.ensure_future(interrupted.wait())
        try:
            await asyncio.wait({put, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if put.done() and not put.cancelled():
            return True
        put.cancel()
        return False

    async def take(self, max_events: int, max_wait_s: float) -> list[Message]:
        """Wait for records, then gather more for up to ``max_wait_s`` or ``max_events``."""
        batch = self._carry or await self._queue.get()
        self._carry = []
        deadline = time.monotonic() + max_wait_s
        while len(batch) < max_events:
            if self._queue.empty():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    more = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                more = self._queue.get_nowait()
            batch = batch + more
        if len(batch) > max_events:
            batch, self._carry = batch[:max_events], batch[max_events:]
        return batch

    async def batches(self, max_events: int, max_wait_s: float) -> AsyncIterator[list[Message]]:
        """Endless :meth:`take`."""
        while True:
            yield await self.take(max_events, max_wait_s)


class BatchingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose fetch loop hands the events topic over in batches.

    Replaces ``Consumer._drain_messages`` (Faust's fetch loop); the bookkeeping it keeps
    (read offsets, gaps, periodic commit, flow control, generation checks) follows Faust's.
    """

    def track_batch(self, batch: Sequence[Message]) -> None:
        """Mark records as pending ack, as Faust's stream does when it takes an event."""
        add = self._unacked_messages.add
        for message in batch:
            message.tracked = True
            add(message)

    def untrack_batch(self, batch: Sequence[Message]) -> None:
        """Forget records that will be fetched again (not handed over, or stale)."""
        discard = self._unacked_messages.discard
        for message in batch:
            discard(message)

    def ack_batch(self, batch: Sequence[Message]) -> None:
        """Mark processed records safe to commit."""
        ack = self.ack
        for message in batch:
            ack(message)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - needs a broker
        intake: BatchIntake = self.app.intake  # type: ignore[attr-defined]
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        to_message = self._to_message
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                records, active = await self._wait_next_records(1.0)
                await self.sleep(0)
                if not records or self.should_stop:
                    continue
                generation = self.app.consumer_generation_id
                batch: list[Message] = []
                read: dict[TP, int] = {}
                for tp, tp_records in records.items():
                    if not self.flow_active or self.app.consumer_generation_id != generation:
                        break
                    if active is not None and tp not in active | self._buffered_partitions:
                        continue
                    to_intake = tp.topic == intake.topic
                    r_offset = read_offset[tp]
                    for record in tp_records:
                        offset = record.offset
                        if r_offset is not None and offset < r_offset:
                            continue  # already read (Faust's rule; ">=" passes the seek point)
                        if r_offset and offset - r_offset > 1 and acks_enabled_for(tp.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        message = to_message(tp, record)
                        if to_intake:
                            batch.append(message)
                            read[tp] = offset
                        else:
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                            read_offset[tp] = offset
                        r_offset = offset
                if batch:
                    self.track_batch(batch)
                    if await intake.offer(batch, self.suspend_flow):
                        read_offset.update(read)
                    else:
                        self.untrack_batch(batch)
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise


class BatchingTransport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`BatchingConsumer`."""

    Consumer = BatchingConsumer


class BatchingApp(faust.App):
    """A Faust app whose consumer hands the ``intake`` topic to agents in batches."""

    intake: BatchIntake

    def _new_transport(self) -> BatchingTransport:
        return BatchingTransport(self.conf.broker_consumer, self)
