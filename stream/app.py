"""The insiderwatch Faust topology: topics, the actor-state table and the scoring agent.

Read top to bottom, this file is the data-flow diagram of ``DESIGN.md``:
``access-events`` -> [score_access_events] -> ``insiderwatch-alerts`` / ``access-events-dlq``,
with per-actor state in the changelog-backed ``actor-state`` table. Settings come from
``INSIDERWATCH_*`` env vars (the ``insiderwatch worker`` command sets them from its flags).
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
from aiohttp import web
from aiokafka.structs import RecordMetadata
from faust.streams import _current_event

from insiderwatch.models.artifact import ArtifactError, load_model
from insiderwatch.models.detector import Detector
from insiderwatch.stream.collector import tune_collector
from insiderwatch.stream.intake import BatchingApp, BatchIntake
from insiderwatch.stream.logs import logging_config
from insiderwatch.stream.metrics import WorkerMetrics
from insiderwatch.stream.processing import BatchProcessor, measure_in_slices
from insiderwatch.stream.security import faust_credentials
from insiderwatch.stream.settings import Settings

log = logging.getLogger("insiderwatch")
settings = Settings.load()
metrics = WorkerMetrics()

app = BatchingApp(
    settings.app_id,
    broker=f"kafka://{settings.broker}",
    broker_credentials=faust_credentials(settings),
    store=settings.store,
    datadir=settings.data_dir,
    topic_partitions=settings.topic_partitions,
    topic_replication_factor=settings.topic_replication,
    topic_allow_declare=True,
    topic_disable_leader=True,
    consumer_auto_offset_reset="earliest",
    processing_guarantee="at_least_once",
    producer_acks=-1,
    # A dead worker's partitions move to the survivors after this long (Faust default: 60 s).
    broker_session_timeout=10.0,
    broker_heartbeat_interval=2.0,
    broker_commit_every=10_000,
    broker_commit_interval=1.0,
    # Throughput: bigger fetches and stream buffers, and let the producer batch the changelog
    # and alert records for a few milliseconds instead of one request per record.
    consumer_max_fetch_size=8 * 1024 * 1024,
    # One fetch is at most one micro-batch, so the intake (a few batches) bounds the records
    # held in memory; unbounded, a fetch returned up to 8 MiB per partition (+280 MB RSS).
    broker_max_poll_records=settings.batch_max_events,
    stream_buffer_maxsize=20_000,
    producer_linger=0.005,
    producer_max_batch_size=512 * 1024,
    web_enabled=True,
    web_bind=settings.web_host,
    web_host=settings.web_host,
    web_port=settings.web_port,
    key_serializer="raw",
    value_serializer="raw",
    logging_config=logging_config(settings.log_format, settings.log_level),
)
# Records of the events topic reach the agent in batches (stream/intake.py explains why).
app.intake = BatchIntake(settings.topic_events)


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


def _processing_in(partition: int) -> weakref.ReferenceType:
    stand_in = _PARTITION_STAND_INS.get(partition)
    if stand_in is None:
        stand_in = _PARTITION_STAND_INS[partition] = _PartitionOnly(partition)
    return weakref.ref(stand_in)


class ActorStateTable(faust.Table):
    """Table written a batch at a time, each write naming its partition.

    Faust picks a write's partition from the stream's *current* event, and the agent gets its
    records in batches from :mod:`stream.intake`, not one event at a time from a stream.
    :meth:`put_many` puts each actor's state in the partition its events come from (store and
    changelog), so the state moves with the partition on rebalance and recovery.
    """

    # A batch's input offsets are committed once it is acked; acked before the broker has its
    # changelog records, a kill -9 in between would lose state for events never redelivered.
    # So each record's delivery future is kept, and acknowledged() waits for them first.
    _unacknowledged: list[Any] | None = None

    async def put_many(self, records: list[tuple[bytes, bytes, int]]) -> None:
        """Store ``(key, value, partition)`` records and send their changelog records.

        What ``table[key] = value`` does, for a whole batch: each value goes into the store
        (in the named partition's part of it) and to the changelog partition, straight to the
        producer. Faust's per-key path wraps every record in its own message, buffer entry
        and completion callback, and on RocksDB writes the changelog offset to disk once per
        record; with one record per event (many actors) that was most of the worker's time.
        :meth:`acknowledged` records the offsets once per partition per batch instead.
        """
        store, send = self.data, self.app.producer.send
        topic = self.changelog_topic.get_topic_name()
        pending = self._unacknowledged if self._unacknowledged is not None else []
        for key, value, partition in records:
            token = _current_event.set(_processing_in(partition))
            try:
                store[key] = value
            finally:
                _current_event.reset(token)
            pending.append(await send(topic, key, value, partition, None, None))
        self._unacknowledged = pending

    async def acknowledged(self) -> None:
        """Return once the broker has stored every changelog record written so far, and
        remember in the store how far the changelog it holds goes (RocksDB: so that a restart
        reads only the changelog written after it)."""
        pending, self._unacknowledged = self._unacknowledged or [], []
        if not pending:
            return
        latest: dict[Any, int] = {}
        delivered: list[RecordMetadata] = await asyncio.gather(*pending)
        for metadata in delivered:
            tp = metadata.topic_partition
            latest[tp] = max(latest.get(tp, -1), metadata.offset)
        for tp, offset in latest.items():
            self.data.set_persisted_offset(tp, offset)


events_topic = app.topic(
    settings.topic_events,
    key_type=bytes,
    value_type=bytes,
    partitions=settings.topic_partitions,
    key_serializer="raw",
    value_serializer="raw",
)
alerts_topic = app.topic(settings.topic_alerts, key_serializer="raw", value_serializer="raw")
dlq_topic = app.topic(settings.topic_dlq, key_serializer="raw", value_serializer="raw")
scores_topic = (
    app.topic(settings.topic_scores, key_serializer="raw", value_serializer="raw")
    if settings.topic_scores
    else None
)
# Same wiring as app.Table(...), with our table class (app.conf.Table is app-wide).
actor_state: ActorStateTable = app.tables.add(
    ActorStateTable(
        app,
        name="actor-state",
        default=None,
        beacon=app.tables.beacon,
        partitions=settings.topic_partitions,
        key_type=bytes,
        value_type=bytes,
        help="per-actor behavioural state (models.state), bytes",
    )
)


class _TableStore:
    def get(self, key: bytes) -> bytes | None:
        # Without a partition: the store looks the key up wherever it is (RocksDB: an index
        # of recent keys, then each partition's bloom filter), so an actor whose events
        # arrive under another key still finds its state.
        return actor_state.get(key)

    async def put_many(self, records: list[tuple[bytes, bytes, int]]) -> None:
        await actor_state.put_many(records)


async def _send_alert(key: bytes | None, value: bytes) -> object:
    return await alerts_topic.send(key=key, value=value)


async def _send_dlq(key: bytes | None, value: bytes) -> object:
    return await dlq_topic.send(key=key, value=value)


async def _send_score(key: bytes | None, value: bytes) -> object:
    assert scores_topic is not None
    return await scores_topic.send(key=key, value=value)


_processor: BatchProcessor | None = None


def processor() -> BatchProcessor:
    """The batch processor, built on first use from the model in ``model.dir``."""
    global _processor
    if _processor is None:
        model = load_model(settings.model_dir)
        _processor = BatchProcessor(
            Detector(model, pseudonymize_key=settings.pseudonymize_key.encode() or None),
            _TableStore(),
            _send_alert,
            _send_dlq,
            metrics,
            settings.alert_format,
            send_score=_send_score if scores_topic is not None else None,
        )
    return _processor


async def _score_and_store(messages: list) -> None:
    """Score one batch; return once its alerts, dead letters and state are acknowledged."""
    await processor().handle(messages)
    await actor_state.acknowledged()


@app.agent(events_topic)
async def score_access_events(stream: faust.StreamT) -> None:
    """Score micro-batches of the events topic, emit alerts; offsets advance after state.

    The records come from :class:`stream.intake.BatchIntake`, not from ``stream``: the
    agent registers the topic (subscription, co-partitioned assignment) and acks the batches
    itself once their alerts and state are stored.
    """
    app.topics.add(stream.channel)
    consumer = app.consumer
    processor()  # load the model before the first batch
    first_batch = True
    async for batches in app.intake.batches(
        settings.batch_max_events, settings.batch_max_ms / 1000
    ):
        generation = app.consumer_generation_id
        current = []
        for batch in batches:
            if batch.generation_id == generation:
                current.append(batch)
            else:
                # Fetched before a rebalance finished; the partitions' new owner (maybe
                # us) reads these records again from the committed offsets.
                consumer.untrack(batch)
        if not current:
            continue
        if app.in_recovery:
            _warn_scoring_during_recovery(current, generation)
        try:
            await consumer.process_then_ack(current, _score_and_store)
        except Exception as exc:
            await _stop_worker(exc, sum(len(batch.messages) for batch in current))
            return
        if _IN_MEMORY_STORE:
            metrics.actor_states.set(len(actor_state))
        if first_batch:  # the recovered states: counted now, not only in 5 minutes
            first_batch = False
            task = asyncio.ensure_future(recount_actor_states())
            _BACKGROUND.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(_BACKGROUND.discard)


_recovery_warned_generation = -1


def _warn_scoring_during_recovery(batches: list, generation: int) -> None:
    """Log (once per generation) a batch scored while Faust is still reading its changelogs.

    Faust pauses the stream partitions while it recovers the tables, and the intake hands over
    records of active partitions only, so this should not happen. Something like it was seen
    once in a fail-over test: the survivor scored an event against a state older than the dead
    worker's last changelog write. The batch is still scored: dropping it is only safe if Faust
    seeks back afterwards, and Faust's post-recovery seek leaves partitions without a
    committed offset where they are (aiokafka's ``seek_to_committed`` skips them). This line
    is the evidence to find the path the next time.

    (Batches handed over after recovery completed but while Faust is still seeking to the
    committed offsets are expected: the tables are recovered, and the records come from the
    positions the fetcher got at assignment.)
    """
    global _recovery_warned_generation
    if _recovery_warned_generation == generation:
        return
    _recovery_warned_generation = generation
    partitions = sorted({tp.partition for batch in batches for tp in batch.offsets})
    log.warning(
        "insiderwatch worker: scoring a batch of partitions %s while Faust is still "
        "recovering its tables (generation %d); states of newly assigned partitions may not "
        "be recovered yet, so their scores may differ from a replay",
        partitions,
        generation,
    )


async def _stop_worker(exc: Exception, events: int) -> None:
    """Stop the worker after a batch whose alerts, dead letters or state could not be stored.

    Scoring errors never get here (they go to the DLQ, see ``stream/processing.py``); this is
    the broker refusing deliveries after the producer's own retries. Going on with the next
    batch would leave a hole: the failed batch's offsets stay uncommitted, but its actors'
    later events would be stored first, and a restart would then skip the failed events as
    replays. Stopping keeps every event: a restarted worker reads the batch again from the
    last committed offsets (duplicates of alerts already sent carry the same ``alert_id``).
    """
    log.critical(
        "insiderwatch worker: could not deliver the results of a batch of %d events "
        "(%s: %s); stopping so that no event is skipped: a restarted worker reads them "
        "again from the last committed offsets",
        events,
        type(exc).__name__,
        exc,
        exc_info=exc,  # the traceback, in case it is a bug rather than the broker
    )
    await app.crash(exc)


@app.timer(interval=5.0)
async def refresh_gauges() -> None:
    """Consumer lag per partition (high-water mark minus next offset to process)."""
    if _processor is None:
        return
    for tp in app.assignor.assigned_actives():
        if tp.topic != settings.topic_events:
            continue
        highwater = app.consumer.highwater(tp)
        if highwater is None:
            continue
        done = _processor.last_offset.get(tp.partition, -1) + 1
        metrics.consumer_lag.labels(partition=str(tp.partition)).set(max(0, highwater - done))


# The memory store knows its length; RocksDB's len() walks every key (and its key estimate
# counts overwrites: 6x too high in bench_memory). So on RocksDB the actors are counted on a
# timer, a slice at a time between batches; the same pass re-bases the bytes-of-state gauge
# on both stores (the running total of writes has not seen states recovered after a restart).
_IN_MEMORY_STORE = settings.store.startswith("memory://")
_BACKGROUND: set[asyncio.Future] = set()
_VALUES_PER_SLICE = 20_000
RECOUNT_INTERVAL_S = 300.0


async def recount_actor_states() -> None:
    """Count the actors and bytes of state held (about 1 s of CPU per million actors)."""
    if _processor is None:
        return
    generation = app.consumer_generation_id
    written_before = _processor.state_bytes
    # The memory store is a dict that batches change between slices: measure a copy.
    values = list(actor_state.values()) if _IN_MEMORY_STORE else actor_state.values()
    measured = await measure_in_slices(
        values,
        _VALUES_PER_SLICE,
        still_valid=lambda: app.consumer_generation_id == generation and not app.rebalancing,
    )
    if measured is None:
        return
    count, size = measured
    metrics.actor_states.set(count)
    # Keep what the batches wrote meanwhile (exact for the memory store's copy).
    _processor.state_bytes = size + (_processor.state_bytes - written_before)
    metrics.state_bytes.set(_processor.state_bytes)


@app.timer(interval=RECOUNT_INTERVAL_S)
async def recount_actor_states_now_and_then() -> None:
    # Faust wraps a timer's function in its own task, so the recount itself stays a plain
    # coroutine that the agent can also start after its first batch.
    await recount_actor_states()


@app.timer(interval=10.0)
async def reload_model_when_it_changes() -> None:
    """Hot reload: a new, verified model in ``model.dir`` replaces the current one between
    batches, without a restart and without losing events. A bad artifact is refused (logged)
    and the current model keeps scoring."""
    if _processor is None:
        return
    try:
        manifest = json.loads((Path(settings.model_dir) / "manifest.json").read_text())
    except (OSError, ValueError):
        return
    if manifest.get("model_version") == _processor.detector.model.version:
        return
    try:
        model = load_model(settings.model_dir)
    except ArtifactError as exc:
        log.warning("insiderwatch worker: not reloading the model: %s", exc)
        return
    _processor.swap_detector(
        Detector(model, pseudonymize_key=settings.pseudonymize_key.encode() or None)
    )
    log.info("insiderwatch worker: now scoring with model %s", model.version)


@app.page("/metrics")
async def metrics_page(self: Any, request: web.Request) -> web.Response:
    return web.Response(body=metrics.render(), content_type="text/plain")


@app.page("/health")
async def health_page(self: Any, request: web.Request) -> web.Response:
    return self.json({"status": "alive"})


@app.page("/ready")
async def ready_page(self: Any, request: web.Request) -> web.Response:
    assigned = sorted(
        tp.partition for tp in app.assignor.assigned_actives() if tp.topic == settings.topic_events
    )
    # Assigned is not enough: after a rebalance Faust first recovers the state table from its
    # changelog and only then resumes fetching; events sent in between wait (up to ~1 s seen).
    recovering = app.rebalancing or app.in_recovery or not app.tables.recovery.completed.is_set()
    ready = _processor is not None and bool(assigned) and not recovering
    body = {
        "ready": ready,
        "model_version": _processor.detector.model.version if _processor else None,
        "partitions": assigned,
    }
    return self.json(body, status=200 if ready else 503)


@app.task
async def banner() -> None:
    """Start-up banner: broker, topics, model version (partitions are logged on assignment)."""
    batch_processor = processor()
    batch_processor.detector.warm_up()
    tune_collector(freeze_existing=True)  # after start-up: see stream/collector.py
    log.info(
        "insiderwatch worker: broker=%s events=%s alerts=%s dlq=%s model=%s web=http://%s:%s",
        settings.broker,
        settings.topic_events,
        settings.topic_alerts,
        settings.topic_dlq,
        batch_processor.detector.model.version,
        settings.web_host,
        settings.web_port,
    )


@app.on_partitions_assigned.connect
async def on_assigned(sender: Any, assigned: set, **kwargs: Any) -> None:
    mine = sorted(tp.partition for tp in assigned if tp.topic == settings.topic_events)
    log.info("insiderwatch worker: assigned %s partitions %s", settings.topic_events, mine)
