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

- every batch handed to the intake is *tracked* (pending ack, one entry per batch), so a
  rebalance waits for it (``Consumer.wait_empty``) before partitions move;
- the agent *acks* a batch's offsets (the bookkeeping of ``Consumer.ack``, in bulk) only after
  the batch is processed and the state that reflects it is stored, so Faust commits processed
  offsets only;
- a batch the fetch loop could not hand over because a rebalance began is untracked and not
  marked read, and a batch fetched in an older consumer generation is dropped by the agent;
  Faust seeks back to the committed offsets and fetches them again.

Back-pressure: the intake holds at most ``max_pending`` batches. When the agent is slow (for
example the alerts topic is slow to acknowledge), the fetch loop waits, and Kafka keeps the
rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from insiderwatch.stream.processing import ConsumedRecord

__all__ = ["BatchIntake", "BatchingApp", "BatchingConsumer", "BatchingTransport", "IntakeBatch"]


@dataclass(eq=False)  # identity hash and a weakref slot: Faust tracks pending work in a WeakSet
class IntakeBatch:
    """The events-topic records of one fetch; Faust tracks it as one pending message."""

    messages: list[ConsumedRecord]
    offsets: dict[TP, list[int]]
    generation_id: int
    acked: bool = False
    refcount: int = 1  # read by Faust's wait_empty log line only


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
        self._queue: asyncio.Queue[IntakeBatch] = asyncio.Queue(maxsize=max_pending)
        self._carry: IntakeBatch | None = None

    async def offer(self, batch: IntakeBatch, interrupted: asyncio.Event) -> bool:
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

    async def take(self, max_events: int, max_wait_s: float) -> list[IntakeBatch]:
        """Wait for a batch, then gather more for up to ``max_wait_s`` or ``max_events``.

        Fetched batches are not split (each is acked as a whole); one fetch holds at most
        ``max_events`` records when the consumer's ``max_poll_records`` is set to it.
        """
        first = self._carry or await self._queue.get()
        self._carry = None
        taken, count = [first], len(first.messages)
        deadline = time.monotonic() + max_wait_s
        while count < max_events:
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
            if count + len(more.messages) > max_events:
                self._carry = more
                break
            taken.append(more)
            count += len(more.messages)
        return taken

    async def batches(self, max_events: int, max_wait_s: float) -> AsyncIterator[list[IntakeBatch]]:
        """Endless :meth:`take`."""
        while True:
            yield await self.take(max_events, max_wait_s)


class BatchingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose fetch loop hands the events topic over in batches.

    Replaces ``Consumer._drain_messages`` (Faust's fetch loop); the bookkeeping it keeps
    (read offsets, gaps, periodic commit, flow control, generation checks) follows Faust's.
    """

    def untrack(self, batch: IntakeBatch) -> None:
        """Forget a batch that will be fetched again (not handed over, or stale)."""
        self._unacked_messages.discard(batch)

    async def process_then_ack(
        self,
        batches: Sequence[IntakeBatch],
        process: Callable[[list[ConsumedRecord]], Awaitable[object]],
    ) -> None:
        """Run ``process`` on the batches' records, then ack them.

        If ``process`` raises, the batches are untracked before the error propagates: their
        offsets stay uncommitted (they are read again from the committed offsets after the
        next rebalance or restart, and replays are skipped), and the next rebalance does not
        wait in ``Consumer.wait_empty`` for batches that a crashed agent will never ack (Faust
        waits there without a time limit).
        """
        try:
            await process([message for batch in batches for message in batch.messages])
        except BaseException:
            for batch in batches:
                self.untrack(batch)
            raise
        self.ack_batches(batches)

    def ack_batches(self, batches: Sequence[IntakeBatch]) -> None:
        """Mark processed batches' offsets safe to commit: ``Consumer.ack``, in bulk."""
        with ack_lock:
            for batch in batches:
                if batch.acked:
                    continue
                batch.acked = True
                self._unacked_messages.discard(batch)
                for tp, offsets in batch.offsets.items():
                    committed = self._committed_offset[tp]
                    acked_index = self._acked_index[tp]
                    fresh = [
                        offset
                        for offset in offsets
                        if (committed is None or offset >= committed) and offset not in acked_index
                    ]
                    acked_index.update(fresh)
                    self._acked[tp].extend(fresh)
                    self._n_acked += len(fresh)
            notify(self._waiting_for_ack)

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
                readable = None if active is None else active | self._buffered_partitions
                batch = IntakeBatch([], {}, generation)
                read: dict[TP, int] = {}
                for tp, tp_records in records.items():
                    if not self.flow_active or self.app.consumer_generation_id != generation:
                        break
                    if readable is not None and tp not in readable:
                        continue
                    to_intake = tp.topic == intake.topic
                    offsets: list[int] = []
                    r_offset = read_offset[tp]
                    for record in tp_records:
                        offset = record.offset
                        if r_offset is not None and offset < r_offset:
                            continue  # already read (Faust's rule; ">=" passes the seek point)
                        if r_offset and offset - r_offset > 1 and acks_enabled_for(tp.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if to_intake:
                            batch.messages.append(record)
                            offsets.append(offset)
                        else:
                            message = to_message(tp, record)
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                            read_offset[tp] = offset
                        r_offset = offset
                    if offsets:
                        batch.offsets[tp] = offsets
                        read[tp] = offsets[-1]
                if batch.messages:
                    self._unacked_messages.add(batch)
                    if await intake.offer(batch, self.suspend_flow):
                        read_offset.update(read)
                    else:
                        self.untrack(batch)
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
