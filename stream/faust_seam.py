"""The one seam between insiderwatch and Faust's and aiokafka's private internals.

Every use of a private (underscore) name of faust-streaming or aiokafka is in this module, and
:data:`PRIVATE_NAMES` lists each one: what it is, what insiderwatch uses it for, and what a
public alternative would need. :func:`check_seam` runs at worker start-up (``insiderwatch
worker``) and refuses to start, with one sentence naming the installed versions, when any of
them is missing or has changed kind or arity: a faust-streaming or aiokafka release that
renames one would otherwise break at-least-once delivery without an error.

What the private names buy (``stream/intake.py`` says why batches): the events topic reaches
the agent a fetched batch at a time (``BatchingConsumer``, a replacement of Faust's fetch
loop that keeps its bookkeeping), batches are acked in bulk with the same books as
``Consumer.ack``, and the actor-state table is written a batch at a time in named partitions
(``store_many``: on RocksDB one write batch per partition).

Supported: faust-streaming 0.15.x with aiokafka 0.13-0.14 (the pins of ``pyproject.toml``).
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from types import SimpleNamespace
from typing import Any

import faust
from faust import streams as faust_streams
from faust.stores import rocksdb as faust_rocksdb
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types import tuples as faust_tuples
from mode.utils.futures import notify

from insiderwatch.stream.intake import BatchIntake, IntakeBatch
from insiderwatch.stream.processing import ConsumedRecord

__all__ = [
    "PRIVATE_NAMES",
    "BatchingApp",
    "BatchingConsumer",
    "BatchingTransport",
    "PrivateName",
    "SeamError",
    "check_seam",
    "seam_problems",
    "store_in_partition",
    "store_many",
]

SUPPORTED = "faust-streaming >=0.15.3,<0.16 with aiokafka >=0.13,<0.15"


class SeamError(RuntimeError):
    """The installed Faust or aiokafka lacks an internal that delivery relies on (one sentence)."""


@dataclass(frozen=True)
class PrivateName:
    """One private Faust or aiokafka name insiderwatch relies on.

    ``owner`` names the object it is looked up on (see :func:`check_seam`); ``kind`` is
    ``"coroutine"``, ``"method"`` (with ``params`` positional parameters, ``self`` included),
    ``"attribute"`` (an instance attribute of one of the ``types``, or anything when
    ``types`` is empty) or ``"object"`` (a module-level object of one of the ``types``).
    """

    owner: str
    name: str
    kind: str
    use: str
    public_alternative: str
    params: int | None = None
    types: tuple[type, ...] = ()


_BOOKS = "Faust's ack books, kept exactly as Consumer.ack keeps them, for a whole batch at once"
_NO_BULK_ACK = "a public Consumer.ack_many(offsets) or an ack callback per fetched batch"
_NO_BATCH_FETCH = (
    "a public hook for a batch fetch loop (Faust's stream per event costs ~87 us per event "
    "here), or an agent option to receive each fetch as one batch"
)

PRIVATE_NAMES: tuple[PrivateName, ...] = (
    PrivateName(
        "Consumer",
        "_drain_messages",
        "coroutine",
        "replaced: the fetch loop, handing events-topic records to the intake in batches",
        _NO_BATCH_FETCH,
        params=2,
    ),
    PrivateName(
        "Consumer",
        "_wait_next_records",
        "coroutine",
        "the next fetched records and the active partitions, as Faust's own loop gets them",
        _NO_BATCH_FETCH,
        params=2,
    ),
    PrivateName(
        "Consumer",
        "_add_gap",
        "coroutine",
        "records a hole in the offsets (compaction, transactions) so commits can pass it",
        "gap tracking inside a public batch fetch hook",
        params=4,
    ),
    PrivateName(
        "Consumer",
        "_to_message",
        "method",
        "turns a record of another topic (changelogs) into Faust's message for its callback",
        "a public per-record callback entry point",
        params=3,
    ),
    PrivateName(
        "consumer",
        "_unacked_messages",
        "attribute",
        "pending work a rebalance waits for (wait_empty)",
        _NO_BULK_ACK,
    ),
    PrivateName(
        "consumer", "_committed_offset", "attribute", _BOOKS, _NO_BULK_ACK, types=(MutableMapping,)
    ),
    PrivateName("consumer", "_acked", "attribute", _BOOKS, _NO_BULK_ACK, types=(MutableMapping,)),
    PrivateName(
        "consumer", "_acked_index", "attribute", _BOOKS, _NO_BULK_ACK, types=(MutableMapping,)
    ),
    PrivateName(
        "consumer",
        "_n_acked",
        "attribute",
        "acks since the last periodic commit",
        _NO_BULK_ACK,
        types=(int,),
    ),
    PrivateName(
        "consumer", "_waiting_for_ack", "attribute", "wakes wait_empty after an ack", _NO_BULK_ACK
    ),
    PrivateName(
        "consumer",
        "_read_offset",
        "attribute",
        "how far each partition was read (skip records already read after a seek)",
        _NO_BATCH_FETCH,
        types=(MutableMapping,),
    ),
    PrivateName(
        "consumer",
        "_buffered_partitions",
        "attribute",
        "partitions whose records may be read although paused",
        _NO_BATCH_FETCH,
        types=(set,),
    ),
    PrivateName(
        "consumer",
        "_stopped",
        "attribute",
        "the fetch loop's stop flag",
        "mode's public should_stop for the loop's own service",
    ),
    PrivateName(
        "consumer",
        "_commit_every",
        "attribute",
        "periodic commit after N acks",
        "a public commit_every",
        types=(int, type(None)),
    ),
    PrivateName(
        "fetcher", "_stopped", "attribute", "the fetcher's stop flag", "mode's public should_stop"
    ),
    PrivateName(
        "App",
        "_new_transport",
        "method",
        "installs BatchingTransport (so the app's consumer is BatchingConsumer)",
        "a public consumer class setting (conf.ConsumerScheduler exists; a Consumer one does not)",
        params=1,
    ),
    PrivateName(
        "faust.streams",
        "_current_event",
        "object",
        "names the partition of a table write made outside a stream iteration (RocksDB store "
        "takes it from the current event)",
        "a partition argument on Table writes, or on the store's __setitem__",
        types=(type(faust_streams._current_event),),
    ),
    PrivateName(
        "RocksDBStore",
        "_db_for_partition",
        "method",
        "the RocksDB database of one partition, for a write batch per partition",
        "a put_many / write-batch method on Faust's stores",
        params=2,
    ),
    PrivateName(
        "faust.types.tuples",
        "ack_lock",
        "object",
        "the lock Consumer.ack holds over the books",
        _NO_BULK_ACK,
    ),
)


def _installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def _problem(entry: PrivateName, owner: object) -> str | None:
    """Why ``entry`` does not hold on ``owner``, or None when it does."""
    if entry.kind in ("attribute", "object"):
        if not hasattr(owner, entry.name):
            return f"{entry.owner}.{entry.name} is missing"
        value = getattr(owner, entry.name)
        if entry.types and not isinstance(value, entry.types):
            return f"{entry.owner}.{entry.name} is a {type(value).__name__}"
        return None
    function = inspect.getattr_static(owner, entry.name, None)
    if function is None or not callable(function):
        return f"{entry.owner}.{entry.name}() is missing"
    if (entry.kind == "coroutine") != inspect.iscoroutinefunction(function):
        return f"{entry.owner}.{entry.name}() is {'not ' * (entry.kind == 'coroutine')}a coroutine"
    positional = [
        parameter
        for parameter in inspect.signature(function).parameters.values()
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    if entry.params is not None and len(positional) != entry.params:
        return (
            f"{entry.owner}.{entry.name}() takes {len(positional)} parameters, not {entry.params}"
        )
    return None


def seam_problems(owners: Mapping[str, object]) -> list[str]:
    """Every :data:`PRIVATE_NAMES` entry that does not hold on the given owners.

    ``owners`` maps each entry's ``owner`` to the object to inspect: classes for methods,
    instances for attributes, modules for objects.

    Examples
    --------
    >>> class Consumer:  # a stand-in without the fetch loop's other internals
    ...     async def _drain_messages(self, fetcher): ...
    >>> problems = seam_problems({"Consumer": Consumer})
    >>> problems[0]
    'Consumer._wait_next_records() is missing'
    """
    return [
        problem
        for entry in PRIVATE_NAMES
        if entry.owner in owners and (problem := _problem(entry, owners[entry.owner])) is not None
    ]


def check_seam(app: faust.App) -> None:
    """Refuse, with one sentence, an installed Faust or aiokafka this seam does not fit.

    Inspects Faust's aiokafka consumer class, the app's consumer (its books are set up in its
    constructor), a fetcher, Faust's app class and two modules. Raises :class:`SeamError`.
    """
    consumer = app.consumer
    owners: dict[str, object] = {
        # Faust's classes, not ours: our overrides must still replace something Faust calls.
        "Consumer": faust_aiokafka.Consumer,
        "consumer": consumer,
        "fetcher": faust_consumer.Fetcher(app),
        "App": faust.App,
        "faust.streams": faust_streams,
        "faust.types.tuples": faust_tuples,
        "RocksDBStore": faust_rocksdb.Store,
    }
    problems = seam_problems(owners)
    if not isinstance(consumer, BatchingConsumer):
        problems.insert(0, f"the app's consumer is a {type(consumer).__name__}")
    if problems:
        raise SeamError(
            f"insiderwatch does not support faust-streaming {_installed('faust-streaming')} "
            f"with aiokafka {_installed('aiokafka')} ({'; '.join(problems[:3])}); "
            f"install {SUPPORTED}"
        )


class _PartitionOnly:
    """Stands in for "the event being processed" while the table is written.

    Faust's RocksDB store takes the partition of a write from the current event
    (``faust.streams.current_event``), and asserts that there is one. The batch intake
    processes records outside Faust's per-event stream iteration, so there is none: without
    this, every state write on ``rocksdb://`` failed and stopped the worker.
    """

    __slots__ = ("message", "__weakref__")

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


_PARTITION_STAND_INS: dict[int, _PartitionOnly] = {}


def store_in_partition(
    store: MutableMapping[bytes, bytes], key: bytes, value: bytes, partition: int
) -> None:
    """``store[key] = value`` in ``partition``'s part of a Faust table store."""
    stand_in = _PARTITION_STAND_INS.get(partition)
    if stand_in is None:
        stand_in = _PARTITION_STAND_INS[partition] = _PartitionOnly(partition)
    token = faust_streams._current_event.set(weakref.ref(stand_in))
    try:
        store[key] = value
    finally:
        faust_streams._current_event.reset(token)


def store_many(
    store: MutableMapping[bytes, bytes], records: Sequence[tuple[bytes, bytes, int]]
) -> None:
    """``store[key] = value`` for each ``(key, value, partition)``, each in its partition.

    On Faust's RocksDB store, one write batch per partition: one call into RocksDB instead of
    one per key (``Store._set`` was 9% of the worker's time with one event per actor). Keys
    and values are bytes already (the table's raw serializers), so the store's encoding is
    the identity it skips. Any other store takes its own per-key path.
    """
    key_index = getattr(store, "_key_index", None)
    if not isinstance(store, faust_rocksdb.Store) or key_index is None:
        for key, value, partition in records:
            store_in_partition(store, key, value, partition)
        return
    batches: dict[int, Any] = {}
    for key, value, partition in records:
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = _write_batch(store)
        batch.put(key, value)
        key_index[key] = partition  # what Store._set keeps: where each key lives
    for partition, batch in batches.items():
        store._db_for_partition(partition).write(batch)


def _write_batch(store: faust_rocksdb.Store) -> Any:
    """An empty write batch of the RocksDB binding ``store`` uses (as Faust's own changelog
    recovery makes them)."""
    if store.use_rocksdict:
        return faust_rocksdb.rocksdict.WriteBatch(raw_mode=True)
    return faust_rocksdb.rocksdb.WriteBatch()  # pragma: no cover - the python-rocksdb binding


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
        with faust_tuples.ack_lock:
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
