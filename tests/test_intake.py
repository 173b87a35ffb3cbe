"""The batch intake between the fetch loop and the agent (no broker: pure asyncio)."""

from __future__ import annotations

import asyncio

from stream.intake import BatchIntake, IntakeBatch
from stream.processing import RawMessage


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
