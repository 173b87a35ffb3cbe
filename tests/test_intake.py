"""The batch intake between the fetch loop and the agent (no broker: pure asyncio)."""

from __future__ import annotations

import asyncio

import pytest

from insiderwatch.stream.intake import BatchIntake, IntakeBatch
from insiderwatch.stream.processing import RawMessage


def _batch(first_offset: int, n: int, generation: int = 1) -> IntakeBatch:
    messages = [RawMessage(b"a", b"{}", "events", 0, first_offset + i, None) for i in range(n)]
    return IntakeBatch(messages, {("events", 0): [m.offset for m in messages]}, generation)


def test_take_gathers_whole_batches_up_to_the_limit_and_carries_the_rest():
    async def run():
        intake = BatchIntake("events", max_pending=8)
        never = asyncio.Event()
        for start, n in ((0, 400), (400, 400), (800, 400), (1200, 100)):
            assert await intake.offer(_batch(start, n), never)
        first = await intake.take(1000, max_wait_s=0.0)
        second = await intake.take(1000, max_wait_s=0.0)
        return first, second

    first, second = asyncio.run(run())
    # 400 + 400 fit in 1,000; the third batch would overflow, so it opens the next take.
    assert [len(b.messages) for b in first] == [400, 400]
    assert [len(b.messages) for b in second] == [400, 100]
    assert [b.messages[0].offset for b in first + second] == [0, 400, 800, 1200]


def test_take_waits_up_to_max_wait_for_more_records():
    async def run():
        intake = BatchIntake("events")
        never = asyncio.Event()
        await intake.offer(_batch(0, 10), never)

        async def later():
            await asyncio.sleep(0.02)
            await intake.offer(_batch(10, 10), never)

        task = asyncio.create_task(later())
        taken = await intake.take(1000, max_wait_s=0.5)
        await task
        return taken

    taken = asyncio.run(run())
    assert sum(len(b.messages) for b in taken) == 20


def test_offer_blocks_when_full_and_gives_up_when_a_rebalance_interrupts():
    async def run():
        intake = BatchIntake("events", max_pending=1)
        rebalance = asyncio.Event()
        assert await intake.offer(_batch(0, 5), rebalance)
        blocked = asyncio.create_task(intake.offer(_batch(5, 5), rebalance))
        await asyncio.sleep(0.02)
        still_waiting = not blocked.done()  # back-pressure: no room, the fetch loop waits
        rebalance.set()
        return still_waiting, await blocked, await intake.take(100, max_wait_s=0.0)

    still_waiting, delivered, taken = asyncio.run(run())
    assert still_waiting
    assert delivered is False  # the caller untracks it; Faust fetches it again after the seek
    assert [b.messages[0].offset for b in taken] == [0]


def _bare_consumer():
    """A BatchingConsumer with only the ack bookkeeping Faust's ``Consumer.ack`` uses."""
    from collections import defaultdict
    from types import SimpleNamespace
    from weakref import WeakSet

    from insiderwatch.stream.faust_seam import BatchingConsumer

    consumer = object.__new__(BatchingConsumer)
    consumer.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
    consumer._committed_offset = defaultdict(lambda: None)
    consumer._acked = defaultdict(list)
    consumer._acked_index = defaultdict(set)
    consumer._n_acked = 0
    consumer._unacked_messages = WeakSet()
    consumer._waiting_for_ack = None
    return consumer


def test_bulk_ack_keeps_the_same_books_as_fausts_per_message_ack():
    from faust.transport.consumer import Consumer
    from faust.types import TP, Message

    tp0, tp1 = TP("events", 0), TP("events", 1)
    offsets = {tp0: [10, 11, 12, 15], tp1: [3, 4]}
    bulk, per_message = _bare_consumer(), _bare_consumer()
    for consumer in (bulk, per_message):
        consumer._committed_offset[tp0] = 11  # offset 10 is already committed

    batch = IntakeBatch([], offsets, generation_id=1)
    bulk._unacked_messages.add(batch)
    bulk.ack_batches([batch])
    bulk.ack_batches([batch])  # a second ack of the same batch changes nothing
    for tp, tp_offsets in offsets.items():
        for offset in tp_offsets:
            message = Message("events", tp.partition, offset, 0.0, 0, None, b"k", b"v", None, tp=tp)
            Consumer.ack(per_message, message)

    assert batch.acked and batch not in bulk._unacked_messages
    assert bulk._n_acked == per_message._n_acked == 5
    assert dict(bulk._acked) == dict(per_message._acked)
    assert dict(bulk._acked_index) == dict(per_message._acked_index)


def test_a_batch_whose_processing_raises_is_untracked_not_acked():
    from faust.types import TP

    consumer = _bare_consumer()
    tp = TP("events", 0)
    ok, bad = _batch(0, 2), _batch(2, 2)
    ok.offsets, bad.offsets = {tp: [0, 1]}, {tp: [2, 3]}
    consumer._unacked_messages.update((ok, bad))
    seen = []

    async def process(messages):
        seen.append([m.offset for m in messages])

    async def failing(messages):
        raise RuntimeError("alerts topic refused the batch")

    asyncio.run(consumer.process_then_ack([ok], process))
    assert seen == [[0, 1]] and ok.acked and list(consumer._acked[tp]) == [0, 1]
    with pytest.raises(RuntimeError):
        asyncio.run(consumer.process_then_ack([bad], failing))
    # Not acked (read again from the committed offset), and no longer pending: the next
    # rebalance must not wait for a batch that a crashed agent will never ack.
    assert not bad.acked and bad not in consumer._unacked_messages
    assert list(consumer._acked[tp]) == [0, 1]
