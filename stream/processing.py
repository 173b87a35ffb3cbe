"""One micro-batch through the detector: decode, route bad input to the DLQ, score, alert.

Thin async shell around :mod:`models`: all math is in :class:`models.detector.Detector`.
Each actor's state is read once and written once per batch (one changelog record per
actor per batch, not per event), into the partition its events came from.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Protocol

import orjson

from insiderwatch.models.analyst import AnalystRules
from insiderwatch.models.detector import BatchOutcome, Detector, rfc3339
from insiderwatch.models.duplicates import CONFLICT, DUPLICATE, DuplicateCheck, duplicate_id_problem
from insiderwatch.models.events import (
    MAX_AHEAD_OF_RECORD_S,
    AccessEvent,
    InvalidEvent,
    ahead_of_record,
    parse_event,
)
from insiderwatch.models.state import ActorState, state_from_bytes, state_to_bytes
from insiderwatch.stream.formats import format_alert
from insiderwatch.stream.metrics import WorkerMetrics, observe_many
from insiderwatch.stream.pulse import PulseTable
from insiderwatch.stream.records import bounded_key, dead_letter_record, score_record

__all__ = [
    "ConsumedRecord",
    "RawMessage",
    "BatchProcessor",
    "encode_stored_state",
    "decode_stored_state",
]

log = logging.getLogger("insiderwatch")
Send = Callable[[bytes | None, bytes], Awaitable[object]]
_POSITION = struct.Struct(">iq")  # input partition and offset the stored state reflects
DECODED_CACHE_ACTORS = 20_000  # most recently written actor states kept decoded


def encode_stored_state(state: ActorState, partition: int, offset: int) -> bytes:
    """Table value: the input position the state reflects, then the state itself."""
    return _POSITION.pack(partition, offset) + state_to_bytes(state)


def decode_stored_state(data: bytes) -> tuple[ActorState, int, int]:
    """Inverse of :func:`encode_stored_state`."""
    partition, offset = _POSITION.unpack_from(data)
    return state_from_bytes(data[_POSITION.size :]), partition, offset


MAX_AHEAD_OF_RECORD_MS = MAX_AHEAD_OF_RECORD_S * 1000.0


def _message_of(event_id: str, outcome: BatchOutcome, messages: Sequence) -> ConsumedRecord:
    """The consumed record of the scored event ``event_id`` (the last one, if repeated)."""
    found = None
    for event, message in zip(outcome.events, messages, strict=True):
        if event.event_id == event_id:
            found = message
    if found is None:
        raise LookupError(f"no scored event {event_id!r} in this batch")
    return found


class ConsumedRecord(Protocol):
    """What the processor reads of a consumed Kafka record. aiokafka's ``ConsumerRecord``
    has this shape, so the worker's intake hands those over as they are (no copy per record);
    :class:`RawMessage` is the same shape for tests and tools."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: int | None  # milliseconds since the epoch, as Kafka stores it


@dataclass(slots=True)
class RawMessage:
    """A consumed Kafka record (see :class:`ConsumedRecord`)."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: int | None


@dataclass(slots=True)
class _SortedBatch:
    """A batch's records sorted out by :meth:`BatchProcessor._sort_out`: the events to score
    (with their records), each actor's loaded state, and what was set aside."""

    events: list[AccessEvent] = field(default_factory=list)
    messages: list[ConsumedRecord] = field(default_factory=list)
    states: dict[str, ActorState] = field(default_factory=dict)
    applied: dict[str, tuple[int, int]] = field(default_factory=dict)  # stored input position
    stored_bytes: dict[str, int] = field(default_factory=dict)
    position_of: dict[str, tuple[int, int]] = field(default_factory=dict)  # last scored record
    counted: list[AccessEvent] = field(default_factory=list)  # every valid event: the pulse
    counted_at: list[tuple[int, int]] = field(default_factory=list)  # their input positions
    replayed: int = 0
    duplicates: int = 0
    duplicate_check: DuplicateCheck = field(init=False)

    def __post_init__(self) -> None:
        self.duplicate_check = DuplicateCheck(self.states)


class StateStore:
    """Interface of the actor-state table as the processor sees it."""

    def get(self, key: bytes) -> bytes | None:  # pragma: no cover - protocol
        raise NotImplementedError

    async def put_many(
        self, records: list[tuple[bytes, bytes, int]]
    ) -> None:  # pragma: no cover - protocol
        """Store ``(key, value, partition)`` records (and queue their changelog records)."""
        raise NotImplementedError


async def measure_in_slices(
    values: Iterable[bytes], per_slice: int, still_valid: Callable[[], bool]
) -> tuple[int, int] | None:
    """``(count, total bytes)`` of ``values``, yielding to the event loop every ``per_slice``
    values; None when ``still_valid()`` turns false on the way (the partitions moved).

    >>> import asyncio
    >>> asyncio.run(measure_in_slices([b"ab"] * 25, 10, lambda: True))
    (25, 50)
    >>> asyncio.run(measure_in_slices([b"ab"] * 25, 10, lambda: False))
    """
    count = size = 0
    for value in values:
        count += 1
        size += len(value)
        if count % per_slice == 0:
            await asyncio.sleep(0)  # let a batch through
            if not still_valid():
                return None
    return count, size


class BatchProcessor:
    """Processes micro-batches for the worker.

    Parameters
    ----------
    detector:
        The loaded model wrapped in a :class:`Detector`.
    store:
        Actor-state table (bytes keys and values).
    send_alert, send_dlq:
        Coroutines that enqueue a message (key, value) without awaiting its delivery.
    alert_format:
        ``native`` or ``ocsf``.
    """

    def __init__(
        self,
        detector: Detector,
        store: StateStore,
        send_alert: Send,
        send_dlq: Send,
        metrics: WorkerMetrics,
        alert_format: str = "native",
        send_score: Send | None = None,
        pulse: PulseTable | None = None,
        send_pulse: Send | None = None,
        rules: AnalystRules | None = None,
        send_suppressed: Send | None = None,
    ) -> None:
        self.send_score = send_score
        # Analysts' verdicts and actor context (models/analyst.py), read whole from their
        # topics by stream/whole_topics.py; held-back alerts go to send_suppressed.
        self.rules = rules if rules is not None else AnalystRules()
        self.send_suppressed = send_suppressed
        # The role pulse (stream/pulse.py): counted here, published with send_pulse.
        self.pulse = pulse if pulse is not None else PulseTable(detector.model.peers.pulse_usual())
        self.send_pulse = send_pulse
        # Actor id -> (stored bytes, decoded state, partition, offset) of the last write, so a
        # busy actor's state is not decoded again every batch. Entries are taken out while a
        # batch runs (a failed batch leaves none behind) and only used when the table still
        # holds exactly those bytes, so the table stays the one source of truth.
        self._decoded: dict[str, tuple[bytes, ActorState, int, int]] = {}
        # Bytes of actor state held: a running total of this worker's writes, re-based on
        # the store's contents by stream/app.py's periodic recount (after a restart the store
        # holds recovered states this total has not seen).
        self.state_bytes = 0
        self.unreadable_states = 0  # stored states that could not be read (actor restarted)
        self.last_offset: dict[int, int] = {}  # input partition -> last processed offset
        self.detector = detector
        self.store = store
        self.send_alert = send_alert
        self.send_dlq = send_dlq
        self.metrics = metrics
        self.alert_format = alert_format
        metrics.model_info.labels(version=detector.model.version).set(1)

    def swap_detector(self, detector: Detector) -> None:
        """Use a new model from the next batch on (hot reload)."""
        self.metrics.model_info.clear()
        self.metrics.model_info.labels(version=detector.model.version).set(1)
        self.detector = detector
        self.pulse.use_model(detector.model.peers.pulse_usual())

    async def _dead_letter(
        self, message: ConsumedRecord, problem: InvalidEvent, detected_at: str
    ) -> object:
        """Send ``message`` to the DLQ with its reason; return the delivery future."""
        record = dead_letter_record(
            message.value,
            problem,
            message.topic,
            message.partition,
            message.offset,
            message.timestamp,
            detected_at,
            key=message.key,
        )
        delivery = await self.send_dlq(bounded_key(message.key), record)
        self.metrics.dead_lettered.labels(reason=problem.reason).inc()
        return delivery

    def _decode_or_reset(self, actor_id: str, stored: bytes) -> tuple[ActorState | None, int, int]:
        """The stored state and its input position; ``(None, -1, -1)`` when the bytes cannot
        be read (written by a version with another state format, or damaged). The actor then
        starts afresh (its alerts say ``warming_up`` again) instead of stopping the partition.
        """
        try:
            return decode_stored_state(stored)
        except Exception as exc:  # any unreadable bytes, whatever the decoder raised
            self.metrics.state_unreadable.inc()
            self.unreadable_states += 1
            if self.unreadable_states in (1, 10, 100, 1_000, 10_000, 100_000):
                log.warning(
                    "insiderwatch worker: stored state of actor %r is unreadable (%s); the "
                    "actor starts afresh (%d such actors so far)",
                    actor_id,
                    exc,
                    self.unreadable_states,
                )
            return None, -1, -1

    def _load_state(
        self, actor_id: str, states: dict[str, ActorState], stored_bytes: dict[str, int]
    ) -> tuple[int, int]:
        """Put the actor's stored state (if any) into ``states``, its size into
        ``stored_bytes``; return the input position it reflects (``(-1, -1)``: none).

        The decoded copy of the last write is used when the table still holds exactly those
        bytes; it is taken out of the cache while the batch runs (a failed batch leaves none).
        """
        stored = self.store.get(actor_id.encode())
        cached = self._decoded.pop(actor_id, None)
        if stored is None:
            return (-1, -1)
        if cached is not None and cached[0] == stored:
            _, state, partition, offset = cached
        else:
            state, partition, offset = self._decode_or_reset(actor_id, stored)
        if state is not None:
            states[actor_id] = state
        stored_bytes[actor_id] = len(stored)
        return (partition, offset)

    def _process_one_by_one(
        self,
        events: list[AccessEvent],
        messages: list[ConsumedRecord],
        states: dict[str, ActorState],
        detected_at: str,
    ) -> tuple[BatchOutcome, list[ConsumedRecord], list[tuple[ConsumedRecord, InvalidEvent]]]:
        """Score a batch whose :meth:`Detector.process` raised, one event at a time.

        The failed attempt may have changed ``states``, so they are read again from the
        store (nothing of this batch is stored yet). An event that still raises is left out,
        with its actor's state as it was before the event, and returned for the DLQ with
        reason ``processing_error``. Scores of the other events are those of a batch without
        the failing ones (the detector does not depend on batch boundaries), and only they
        join their actors' recent event ids (a failed event's redelivery is not a duplicate).
        """
        for actor_id in list(states):
            stored = self.store.get(actor_id.encode())
            try:  # as stored before the failed attempt
                states[actor_id] = decode_stored_state(stored)[0]  # type: ignore[arg-type]
            except Exception:  # nothing stored, or unreadable: the actor starts afresh
                del states[actor_id]
        outcome, kept, failed = BatchOutcome.empty(), [], []
        recent_ids = DuplicateCheck(states)
        for event, message in zip(events, messages, strict=True):
            before = states.get(event.actor_id)
            snapshot = None if before is None else state_to_bytes(before)
            try:
                one = self.detector.process([event], states, detected_at)
            except Exception as exc:
                if snapshot is None:
                    states.pop(event.actor_id, None)
                else:
                    states[event.actor_id] = state_from_bytes(snapshot)
                detail = f"{type(exc).__name__}: {exc}"[:200]
                failed.append((message, InvalidEvent("processing_error", detail)))
                continue
            outcome.extend(one)
            kept.append(message)
            recent_ids.classify(event, message.value)  # type: ignore[arg-type]
        return outcome, kept, failed

    async def handle(self, messages: Sequence[ConsumedRecord]) -> int:
        """Process one batch; return the number of alert messages sent.

        Every consumed record ends scored, dead-lettered, or counted as a replay or a
        duplicate. Alerts and dead letters are acknowledged before the state that reflects
        them is written, so a crash can lose neither: at worst an alert is sent twice (same
        id).
        """
        started = time.perf_counter()
        now = datetime.now(UTC)
        detected_at = rfc3339(now.timestamp())
        self.metrics.consumed.inc(len(messages))
        pending: list = []  # delivery futures that must resolve before state is written
        batch = await self._sort_out(messages, detected_at, pending)
        self.rules.prepare(batch.counted)  # context: risk weights and peer groups
        await self._count_pulse(batch, pending)
        outcome = await self._score(batch, detected_at, pending)
        await self._send_alerts(outcome, batch.messages, detected_at, pending)
        await self._send_scores(outcome, batch.messages)
        if pending:
            await asyncio.gather(*pending)
        await self._store_states(batch)
        for message in messages:
            self.last_offset[message.partition] = message.offset
        self._observe(outcome, messages, now, started)
        return len(outcome.alerts)

    async def _count_pulse(self, batch: _SortedBatch, pending: list) -> None:
        """Count the batch's events into the role pulse, publish the changed counts (acknowledged
        before the offsets are committed: see :meth:`PulseTable.count`), then give every event
        to score its pulse: this batch's own counts included, as offline counts the whole
        input."""
        records = self.pulse.count(batch.counted, batch.counted_at)
        if self.send_pulse is not None:
            for key, value in records:
                pending.append(await self.send_pulse(key, value))
        self.pulse.set_pulses(batch.events)

    async def _sort_out(
        self, messages: Sequence[ConsumedRecord], detected_at: str, pending: list
    ) -> _SortedBatch:
        """Parse the batch's records, dead-letter the bad ones, load each actor's state once
        and set aside replays and duplicates; what is left is to be scored.

        Each actor's state is loaded once, with the input position it reflects. After a
        crash, Kafka redelivers events whose state update may already be in the changelog;
        re-applying them would double-count, so they are skipped as replays.
        """
        batch = _SortedBatch()
        seen: set[tuple[int, int]] = set()
        classify = batch.duplicate_check.classify
        applied, position_of = batch.applied, batch.position_of
        keep_event, keep_message = batch.events.append, batch.messages.append
        for message in messages:
            # Faust can hand the same record over twice (seen for the last record of a
            # partition); a record is processed once per batch, whatever the consumer does.
            position = (message.partition, message.offset)
            if position in seen:
                batch.replayed += 1
                continue
            seen.add(position)
            event = self._parse(message)
            if isinstance(event, InvalidEvent):
                pending.append(await self._dead_letter(message, event, detected_at))
                continue
            batch.counted.append(event)
            batch.counted_at.append(position)
            actor_id = event.actor_id
            if message.key is not None and message.key != actor_id.encode():
                self.metrics.key_mismatch.inc()
            applied_at = applied.get(actor_id)
            if applied_at is None:  # the actor's first event in this batch
                applied_at = applied[actor_id] = self._load_state(
                    actor_id, batch.states, batch.stored_bytes
                )
            if position[0] == applied_at[0] and position[1] <= applied_at[1]:
                batch.replayed += 1
                await self._send_score_of(message, event, replayed=True)
                continue
            kind = classify(event, message.value)  # type: ignore[arg-type]
            if kind == DUPLICATE:
                batch.duplicates += 1
                await self._send_score_of(message, event, duplicate=True)
                continue
            if kind == CONFLICT:
                problem = duplicate_id_problem(event)
                pending.append(await self._dead_letter(message, problem, detected_at))
                continue
            keep_event(event)
            keep_message(message)
            position_of[actor_id] = position
        if batch.replayed:
            self.metrics.replayed.inc(batch.replayed)
        if batch.duplicates:
            self.metrics.duplicate.inc(batch.duplicates)
        return batch

    @staticmethod
    def _parse(message: ConsumedRecord) -> AccessEvent | InvalidEvent:
        """The record's event, or why it has none (also: an event far ahead of its record).

        :func:`parse_event` returns a reason for any bad input; if it raises all the same (a
        bug), the reason is ``processing_error``: one event goes to the DLQ instead of every
        restart of the worker stopping on the same message.
        """
        value = message.value
        if value is None:
            return InvalidEvent("not_json", "message has no value (tombstone)")
        try:
            event = parse_event(value)
        except Exception as exc:
            return InvalidEvent("processing_error", f"{type(exc).__name__}: {exc}"[:200])
        record_ms = message.timestamp
        if (
            record_ms
            and isinstance(event, AccessEvent)
            and event.ts * 1000.0 - record_ms > MAX_AHEAD_OF_RECORD_MS
        ):
            return ahead_of_record(event, record_ms) or event  # the reason, worded once
        return event

    async def _send_score_of(self, message: ConsumedRecord, event: AccessEvent, **verdict) -> None:
        """Send the score record of one consumed event: its verdict, or that it is a replay or
        a duplicate."""
        if self.send_score is None:
            return
        record = score_record(
            event.event_id, event.actor_id, message.partition, message.offset, **verdict
        )
        await self.send_score(bounded_key(message.key), record)

    async def _score(self, batch: _SortedBatch, detected_at: str, pending: list) -> BatchOutcome:
        """The detector's verdicts on the batch's events; events it fails on go to the DLQ."""
        try:
            outcome = self.detector.process(batch.events, batch.states, detected_at)
        except Exception:  # a bug, not bad input: find the event(s) that trigger it
            log.exception(
                "insiderwatch worker: scoring a batch of %d events failed; "
                "scoring them one by one, failing events go to the DLQ",
                len(batch.events),
            )
            outcome, batch.messages, failed = self._process_one_by_one(
                batch.events, batch.messages, batch.states, detected_at
            )
            for message, problem in failed:
                pending.append(await self._dead_letter(message, problem, detected_at))
            return outcome
        batch.duplicate_check.settle()  # new actors' states now exist
        return outcome

    async def _send_alerts(
        self,
        outcome: BatchOutcome,
        messages: list[ConsumedRecord],
        detected_at: str,
        pending: list,
    ) -> None:
        """Send the batch's alerts; one that cannot be rendered sends its event to the DLQ, one
        that analysts' rules hold back goes to the suppressed topic."""
        unformattable = 0
        route = self.rules.route
        for alert in outcome.alerts:
            routing = route(alert)
            if not routing.send:
                await self._hold_back(alert, routing.scope, routing.rule, pending)
                continue
            try:
                payload = orjson.dumps(format_alert(alert, self.alert_format))
            except Exception as exc:  # a bug in rendering our own alert, not bad input
                unformattable += 1
                if unformattable == 1:
                    log.exception(
                        "insiderwatch worker: alert %s could not be rendered as %r; its event "
                        "goes to the DLQ (processing_error) and the worker goes on",
                        alert.get("alert_id"),
                        self.alert_format,
                    )
                message = _message_of(alert["event_id"], outcome, messages)
                problem = InvalidEvent(
                    "processing_error",
                    f"alert {alert.get('alert_id')} ({alert.get('severity')}, "
                    f"{alert.get('status')}) could not be rendered as {self.alert_format}: "
                    f"{type(exc).__name__}: {exc}"[:400],
                )
                pending.append(await self._dead_letter(message, problem, detected_at))
                continue
            pending.append(await self.send_alert(alert["actor_id"].encode(), payload))
            self.metrics.alerts.labels(severity=alert["severity"], status=alert["status"]).inc()

    async def _hold_back(
        self, alert: dict, scope: str | None, rule: str | None, pending: list
    ) -> None:
        """A suppressed alert: counted, and kept (native JSON) for the actor's timeline."""
        self.metrics.suppressed.labels(scope=scope or "alert").inc()
        if self.send_suppressed is not None:
            alert["suppressed"] = {"scope": scope, "rule": rule}
            pending.append(
                await self.send_suppressed(alert["actor_id"].encode(), orjson.dumps(alert))
            )

    async def _send_scores(self, outcome: BatchOutcome, messages: list[ConsumedRecord]) -> None:
        """One score record per scored event (``--scores-topic``)."""
        if self.send_score is None:
            return
        for event, value, flagged, message in zip(
            outcome.events, outcome.scores, outcome.flagged, messages, strict=True
        ):
            await self._send_score_of(
                message,
                event,
                timestamp=event.timestamp,
                score=value,
                flagged=flagged,
                pulse=event.role_pulse,
            )

    async def _store_states(self, batch: _SortedBatch) -> None:
        """Write each actor's state once, with the input position it now reflects."""
        records = []
        decoded = self._decoded
        for actor_id, (partition, offset) in batch.position_of.items():
            state = batch.states.get(actor_id)
            if state is None:  # a new actor whose only events failed (dead-lettered)
                continue
            value = encode_stored_state(state, partition, offset)
            records.append((actor_id.encode(), value, partition))
            self.state_bytes += len(value) - batch.stored_bytes.get(actor_id, 0)
            decoded[actor_id] = (value, state, partition, offset)
        await self.store.put_many(records)
        overflow = len(decoded) - DECODED_CACHE_ACTORS
        if overflow > 0:  # forget the least recently written first
            # In one pass: deleting the first key one at a time rescans the slots already
            # deleted, quadratic in the batch (13% of the worker with 100,000 actors).
            for actor_id in list(islice(decoded, overflow)):
                del decoded[actor_id]
        self.metrics.state_bytes.set(self.state_bytes)

    def _observe(
        self,
        outcome: BatchOutcome,
        messages: Sequence[ConsumedRecord],
        now: datetime,
        started: float,
    ) -> None:
        """The batch's scores, lags, size and time in the metrics."""
        metrics = self.metrics
        metrics.scored.inc(len(outcome.scores))
        late = outcome.n_late
        if late:
            metrics.late.inc(late)
        observe_many(metrics.scores, outcome.scores)
        now_ms = now.timestamp() * 1000
        observe_many(
            metrics.event_lag_seconds,
            [
                max(0.0, (now_ms - message.timestamp) / 1000)
                for message in messages
                if (message.timestamp or 0) > 0
            ],
        )
        metrics.batch_size.observe(len(messages))
        metrics.batch_seconds.observe(time.perf_counter() - started)
