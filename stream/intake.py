"""Batch intake: records of the events topic reach the scoring agent in batches.

Why this exists: Faust moves every consumed record through its per-event machinery (one
``wait_first`` with two futures per record in the fetch loop, the conductor callback under a
lock, a stream queue, per-event sensors and acks). On this machine that alone costs about
87 us per event, a ceiling of ~11,500 events/s for an agent that does nothing
(``benchmarks/faust_noop_app.py``). insiderwatch scores whole batches, so that work buys
nothing. The fetch loop of :class:`insiderwatch.stream.faust_seam.BatchingConsumer` hands each fetched batch of the events topic to a
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
from collections.abc import AsyncIterator
from dataclasses import dataclass

from faust.types import TP

from insiderwatch.stream.processing import ConsumedRecord

__all__ = ["BatchIntake", "IntakeBatch"]


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
