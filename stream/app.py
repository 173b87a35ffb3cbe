"""The insiderwatch Faust topology: topics, the actor-state table and the scoring agent.

``access-events`` -> [score_access_events] -> ``insiderwatch-alerts`` / ``access-events-dlq``,
with per-actor state in the changelog-backed ``actor-state`` table. :class:`Worker` builds the
topology from one :class:`~insiderwatch.stream.settings.Settings` passed to it (``insiderwatch
worker`` resolves them from flags, environment and defaults); nothing is read at import time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
from aiohttp import web
from aiokafka.structs import RecordMetadata

from insiderwatch.models.artifact import ArtifactError, load_model, peek_version
from insiderwatch.models.detector import Detector, rfc3339
from insiderwatch.stream.collector import tune_collector
from insiderwatch.stream.faust_seam import BatchingApp, store_many
from insiderwatch.stream.intake import BatchIntake, IntakeBatch
from insiderwatch.stream.logs import logging_config
from insiderwatch.stream.metrics import WorkerMetrics
from insiderwatch.stream.processing import BatchProcessor, measure_in_slices
from insiderwatch.stream.records import bounded_key, dead_letter_record
from insiderwatch.stream.security import faust_credentials, kafka_python_security
from insiderwatch.stream.settings import Settings
from insiderwatch.stream.whole_topics import WholeTopicsReader, topic_partitions

__all__ = ["ActorStateTable", "Worker", "new_app"]

log = logging.getLogger("insiderwatch")

# The memory store knows its length; RocksDB's len() walks every key (and its key estimate
# counts overwrites: 6x too high in bench_memory). So on RocksDB the actors are counted on a
# timer, a slice at a time between batches; the same pass re-bases the bytes-of-state gauge
# on both stores (the running total of writes has not seen states recovered after a restart).
_VALUES_PER_SLICE = 20_000
RECOUNT_INTERVAL_S = 300.0
WHOLE_TOPICS_LOAD_TIMEOUT_S = 30.0


def new_app(settings: Settings) -> BatchingApp:
    """The Faust app for ``settings``, with the batch intake on the events topic."""
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
        # A dead worker's partitions move to the survivors after this long (Faust: 60 s).
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        consumer_max_fetch_size=8 * 1024 * 1024,
        # One fetch is at most one micro-batch, so the intake (a few batches) bounds the
        # records held in memory; unbounded, a fetch returned up to 8 MiB per partition.
        broker_max_poll_records=settings.batch_max_events,
        stream_buffer_maxsize=20_000,
        # Let the producer batch changelog and alert records for a few milliseconds.
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
    # Records of the events topic reach the agent in batches (stream/intake.py says why).
    app.intake = BatchIntake(settings.topic_events)
    return app


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
        store_many(store, records)
        for key, value, partition in records:
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


class _TableStore:
    """The processor's view of the actor-state table."""

    def __init__(self, table: ActorStateTable) -> None:
        self.table = table

    def get(self, key: bytes) -> bytes | None:
        # Without a partition: the store looks the key up wherever it is (RocksDB: an index
        # of recent keys, then each partition's bloom filter), so an actor whose events
        # arrive under another key still finds its state.
        return self.table.get(key)

    async def put_many(self, records: list[tuple[bytes, bytes, int]]) -> None:
        await self.table.put_many(records)


class Worker:
    """The insiderwatch topology on one Faust app, built from explicit settings.

    Parameters
    ----------
    settings:
        Resolved settings (broker, topics, store, model directory, web server, batching).
    metrics:
        Where the worker's Prometheus metrics go (a fresh registry by default).
    """

    def __init__(self, settings: Settings, metrics: WorkerMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or WorkerMetrics()
        self.app = app = new_app(settings)
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        self.events_topic = app.topic(
            settings.topic_events,
            key_type=bytes,
            value_type=bytes,
            partitions=settings.topic_partitions,
            **raw,
        )
        self.alerts_topic = app.topic(settings.topic_alerts, **raw)
        self.dlq_topic = app.topic(settings.topic_dlq, **raw)
        self.scores_topic = (
            app.topic(settings.topic_scores, **raw) if settings.topic_scores else None
        )
        self.pulse_topic = app.topic(settings.topic_pulse, **raw)
        self.suppressed_topic = app.topic(settings.topic_suppressed, **raw)
        self._whole_topics: WholeTopicsReader | None = None
        # Same wiring as app.Table(...), with our table class (app.conf.Table is app-wide).
        self.actor_state: ActorStateTable = app.tables.add(
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
        self.in_memory_store = settings.store.startswith("memory://")
        self._processor: BatchProcessor | None = None
        self._recovery_warned_generation = -1
        self._background: set[asyncio.Future] = set()
        self._register()

    def _register(self) -> None:
        app = self.app
        app.agent(self.events_topic, name="insiderwatch.score_access_events")(
            self.score_access_events
        )
        app.timer(interval=5.0, name="insiderwatch.refresh_gauges")(self.refresh_gauges)
        app.timer(interval=RECOUNT_INTERVAL_S, name="insiderwatch.recount_actor_states")(
            self.recount_actor_states
        )
        app.timer(interval=10.0, name="insiderwatch.reload_model")(
            self.reload_model_when_it_changes
        )
        app.task(self.banner)
        app.on_partitions_assigned.connect(self.on_assigned)
        self._register_pages()

    def _new_detector(self, model: Any) -> Detector:
        return Detector(model, pseudonymize_key=self.settings.pseudonymize_key.encode() or None)

    def processor(self) -> BatchProcessor:
        """The batch processor, built on first use from the model in ``model.dir``."""
        if self._processor is None:
            self._processor = BatchProcessor(
                self._new_detector(load_model(self.settings.model_dir)),
                _TableStore(self.actor_state),
                self._sender(self.alerts_topic),
                self._sender(self.dlq_topic),
                self.metrics,
                self.settings.alert_format,
                send_score=self._sender(self.scores_topic) if self.scores_topic else None,
                send_pulse=self._sender(self.pulse_topic),
                send_suppressed=self._sender(self.suppressed_topic),
            )
        return self._processor

    @staticmethod
    def _sender(topic: Any) -> Any:
        async def send(key: bytes | None, value: bytes) -> object:
            return await topic.send(key=key, value=value)

        return send

    async def _score_and_store(self, messages: list) -> None:
        """Score one batch; return once its alerts, dead letters and state are acknowledged."""
        await self.processor().handle(messages)
        await self.actor_state.acknowledged()

    async def score_access_events(self, stream: faust.StreamT) -> None:
        """Score micro-batches of the events topic, emit alerts; offsets advance after state.

        The records come from :class:`~insiderwatch.stream.intake.BatchIntake`, not from
        ``stream``: the agent registers the topic (subscription, co-partitioned assignment)
        and acks the batches itself once their alerts and state are stored.
        """
        app, settings = self.app, self.settings
        app.topics.add(stream.channel)
        self.processor()  # load the model before the first batch
        await self._read_whole_topics()
        first_batch = True
        async for batches in app.intake.batches(
            settings.batch_max_events, settings.batch_max_ms / 1000
        ):
            current = self._of_this_generation(batches)
            if not current:
                continue
            if app.in_recovery:
                self._warn_scoring_during_recovery(current, app.consumer_generation_id)
            try:
                await app.consumer.process_then_ack(current, self._score_and_store)
            except Exception as exc:
                await self._stop_worker(exc, sum(len(batch.messages) for batch in current))
                return
            if self.in_memory_store:
                self.metrics.actor_states.set(len(self.actor_state))
            if first_batch:  # the recovered states: counted now, not only in 5 minutes
                first_batch = False
                task = asyncio.ensure_future(self.recount_actor_states())
                self._background.add(task)  # the loop keeps only a weak reference to a task
                task.add_done_callback(self._background.discard)

    async def _read_whole_topics(self) -> None:
        """Start following the pulse, feedback and context topics (stream/whole_topics.py)
        and wait until what they held at start is read: counts, verdicts and context that
        other workers, analysts, or this worker before a restart wrote."""
        from aiokafka import AIOKafkaConsumer

        if self._whole_topics is not None:  # the agent restarted: the reader still runs
            return
        settings, processor = self.settings, self.processor()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.broker,
            group_id=None,
            enable_auto_commit=False,
            client_id=f"{settings.app_id}-tables",
            **kafka_python_security(settings),
        )
        rules = processor.rules
        handlers = {
            settings.topic_pulse: lambda record: processor.pulse.apply(record.value),
            settings.topic_feedback: self._rule_handler(rules.apply_feedback),
            settings.topic_context: self._rule_handler(rules.apply_context),
        }
        partitions = await asyncio.to_thread(topic_partitions, settings, list(handlers))
        reader = self._whole_topics = WholeTopicsReader(consumer, handlers, partitions)
        task = asyncio.ensure_future(reader.run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        try:
            await asyncio.wait_for(reader.loaded.wait(), WHOLE_TOPICS_LOAD_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "insiderwatch worker: the pulse, feedback and context topics were not read "
                "within %.0f s; scoring with what was read so far (pulses and suppression may "
                "differ from a replay until they are)",
                WHOLE_TOPICS_LOAD_TIMEOUT_S,
            )

    def _rule_handler(self, apply: Any) -> Any:
        """A handler of the feedback or context topic: the record's rule in force, or the
        record to the DLQ with its reason (it never stops the worker)."""
        metrics, rules = self.metrics, self.processor().rules

        async def handle(record: Any) -> None:
            problem = apply(record.key, record.value)
            metrics.analyst_rules.labels(kind="verdicts").set(len(rules.verdicts))
            metrics.analyst_rules.labels(kind="actor_rules").set(len(rules.by_actor))
            metrics.analyst_rules.labels(kind="context").set(len(rules.contexts))
            if problem is None:
                return
            metrics.analyst_refused.labels(topic=record.topic).inc()
            value = dead_letter_record(
                record.value,
                problem,
                record.topic,
                record.partition,
                record.offset,
                record.timestamp,
                rfc3339(time.time()),
                key=record.key,
            )
            await self.dlq_topic.send(key=bounded_key(record.key), value=value)

        return handle

    def _of_this_generation(self, batches: list[IntakeBatch]) -> list[IntakeBatch]:
        """The batches fetched in the current consumer generation; the others are untracked:
        the partitions' new owner (maybe us) reads them again from the committed offsets."""
        generation = self.app.consumer_generation_id
        for batch in batches:
            if batch.generation_id != generation:
                self.app.consumer.untrack(batch)
        return [batch for batch in batches if batch.generation_id == generation]

    def _warn_scoring_during_recovery(self, batches: list, generation: int) -> None:
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
        if self._recovery_warned_generation == generation:
            return
        self._recovery_warned_generation = generation
        partitions = sorted({tp.partition for batch in batches for tp in batch.offsets})
        log.warning(
            "insiderwatch worker: scoring a batch of partitions %s while Faust is still "
            "recovering its tables (generation %d); states of newly assigned partitions may "
            "not be recovered yet, so their scores may differ from a replay",
            partitions,
            generation,
        )

    async def _stop_worker(self, exc: Exception, events: int) -> None:
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
        await self.app.crash(exc)

    async def refresh_gauges(self, *_: Any) -> None:
        """Consumer lag per partition (high-water mark minus next offset to process)."""
        if self._processor is None:
            return
        for tp in self.app.assignor.assigned_actives():
            if tp.topic != self.settings.topic_events:
                continue
            highwater = self.app.consumer.highwater(tp)
            if highwater is None:
                continue
            done = self._processor.last_offset.get(tp.partition, -1) + 1
            lag = max(0, highwater - done)
            self.metrics.consumer_lag.labels(partition=str(tp.partition)).set(lag)

    async def recount_actor_states(self, *_: Any) -> None:
        """Count the actors and bytes of state held (about 1 s of CPU per million actors)."""
        if self._processor is None:
            return
        app, processor = self.app, self._processor
        generation = app.consumer_generation_id
        written_before = processor.state_bytes
        # The memory store is a dict that batches change between slices: measure a copy.
        table = self.actor_state
        values = list(table.values()) if self.in_memory_store else table.values()
        measured = await measure_in_slices(
            values,
            _VALUES_PER_SLICE,
            still_valid=lambda: app.consumer_generation_id == generation and not app.rebalancing,
        )
        if measured is None:
            return
        count, size = measured
        self.metrics.actor_states.set(count)
        # Keep what the batches wrote meanwhile (exact for the memory store's copy).
        processor.state_bytes = size + (processor.state_bytes - written_before)
        self.metrics.state_bytes.set(processor.state_bytes)

    async def reload_model_when_it_changes(self, *_: Any) -> None:
        """Hot reload: a new, verified model in ``model.dir`` replaces the current one between
        batches, without a restart and without losing events. A bad artifact is refused
        (logged) and the current model keeps scoring."""
        if self._processor is None:
            return
        if peek_version(self.settings.model_dir) in (None, self._processor.detector.model.version):
            return
        try:
            model = load_model(self.settings.model_dir)
        except ArtifactError as exc:
            log.warning("insiderwatch worker: not reloading the model: %s", exc)
            return
        self._processor.swap_detector(self._new_detector(model))
        log.info("insiderwatch worker: now scoring with model %s", model.version)

    def _register_pages(self) -> None:
        worker = self

        @self.app.page("/metrics")
        async def metrics_page(view: Any, request: web.Request) -> web.Response:
            return web.Response(body=worker.metrics.render(), content_type="text/plain")

        @self.app.page("/health")
        async def health_page(view: Any, request: web.Request) -> web.Response:
            return view.json({"status": "alive"})

        @self.app.page("/actors/{actor_id}")
        async def actor_page(view: Any, request: web.Request, actor_id: str) -> web.Response:
            body = worker.actor(actor_id)
            if body is None:
                return view.json(
                    {"actor_id": actor_id, "error": "no state for this actor on this worker"},
                    status=404,
                )
            return view.json(body)

        @self.app.page("/ready")
        async def ready_page(view: Any, request: web.Request) -> web.Response:
            body = worker.readiness()
            return view.json(body, status=200 if body["ready"] else 503)

    def actor(self, actor_id: str) -> dict[str, Any] | None:
        """``/actors/ACTOR_ID``: the actor's windows against its baseline
        (:func:`models.actor_view.actor_view`), its context and the verdicts on its alerts;
        None when this worker holds no state of the actor (another worker's partition)."""
        from insiderwatch.models.actor_view import actor_view
        from insiderwatch.stream.processing import decode_stored_state

        processor = self._processor
        stored = self.actor_state.get(actor_id.encode()) if processor else None
        if processor is None or stored is None:
            return None
        state = decode_stored_state(stored)[0]
        model = processor.detector.model
        body = actor_view(
            actor_id,
            state,
            model.peers.profile(state.role),
            model.manifest.risk,
            model.peers.pair_names(),
            rfc3339,
        )
        rules = processor.rules
        entry = rules.contexts.get(actor_id)
        body["context"] = None if entry is None else entry.why(state.last_ts) or [entry.note]
        body["model_version"] = model.version
        return body

    def readiness(self) -> dict[str, Any]:
        """``/ready``: partitions assigned, tables recovered, the model loaded and the pulse,
        feedback and context topics read."""
        app = self.app
        assigned = sorted(
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == self.settings.topic_events
        )
        # Assigned is not enough: after a rebalance Faust first recovers the state table from
        # its changelog and only then resumes fetching; events sent in between wait.
        recovering = (
            app.rebalancing or app.in_recovery or not app.tables.recovery.completed.is_set()
        )
        processor = self._processor
        tables = self._whole_topics
        loaded = tables is not None and tables.loaded.is_set()
        return {
            "ready": processor is not None and bool(assigned) and not recovering and loaded,
            "model_version": processor.detector.model.version if processor else None,
            "partitions": assigned,
            # The pulse, feedback and context topics (stream/whole_topics.py) read to where
            # they were at start.
            "pulse_loaded": loaded,
            "tables_loaded": loaded,
            "tables_missing": list(tables.missing) if tables is not None else [],
            "pulse_records_unreadable": processor.pulse.unreadable if processor else 0,
            "verdicts": len(processor.rules.verdicts) if processor else 0,
            "context_entries": len(processor.rules.contexts) if processor else 0,
        }

    async def banner(self) -> None:
        """Start-up banner: broker, topics, model version (partitions are logged on assignment)."""
        batch_processor = self.processor()
        batch_processor.detector.warm_up()
        tune_collector(freeze_existing=True)  # after start-up: see stream/collector.py
        s = self.settings
        log.info(
            "insiderwatch worker: broker=%s events=%s alerts=%s dlq=%s model=%s web=http://%s:%s",
            s.broker,
            s.topic_events,
            s.topic_alerts,
            s.topic_dlq,
            batch_processor.detector.model.version,
            s.web_host,
            s.web_port,
        )

    async def on_assigned(self, sender: Any, assigned: set, **kwargs: Any) -> None:
        topic = self.settings.topic_events
        mine = sorted(tp.partition for tp in assigned if tp.topic == topic)
        log.info("insiderwatch worker: assigned %s partitions %s", topic, mine)
