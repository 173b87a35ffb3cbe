"""Offline scoring: JSONL files through the same decode/detect code as the worker."""

from __future__ import annotations

import contextlib
import multiprocessing
import shutil
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from insiderwatch.models.analyst import AnalystRules
from insiderwatch.models.detector import Detector, rfc3339
from insiderwatch.models.duplicates import CONFLICT, DUPLICATE, DuplicateCheck, duplicate_id_problem
from insiderwatch.models.events import AccessEvent, InvalidEvent, parse_event
from insiderwatch.models.pulse import count_events
from insiderwatch.models.state import ActorState, stable_hash
from insiderwatch.stream.formats import format_alert
from insiderwatch.stream.pulse import PulseTable
from insiderwatch.stream.records import dead_letter_record

__all__ = ["OfflineResult", "score_files", "read_jsonl", "shard_of"]

CHUNK = 5000


@dataclass
class OfflineResult:
    events: int = 0
    scored: int = 0
    dead_lettered: int = 0
    duplicates: int = 0  # same event id and bytes as one of the actor's recent events
    alerts: int = 0
    incidents: int = 0
    suppressed: int = 0  # alerts held back by a verdict or an exclusion
    reasons: dict[str, int] = field(default_factory=dict)


def read_jsonl(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes) of each non-blank line."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            raw = line.rstrip(b"\r\n")
            if raw.strip():
                yield number, raw


def score_files(
    detector: Detector,
    paths: list[str],
    out_path: str,
    *,
    all_scores_path: str | None = None,
    dlq_path: str | None = None,
    alert_format: str = "native",
    progress=None,
    workers: int = 1,
    recorded_pulses: Mapping[str, float] | None = None,
    rules: AnalystRules | None = None,
    suppressed_path: str | None = None,
) -> OfflineResult:
    """Score ``paths`` in the given order; write alerts (JSONL) to ``out_path``.

    With ``workers > 1`` the events are split by actor, as Kafka partitions split them for
    the stream, and scored in that many forked processes (per-actor state makes the split
    exact: the same scores and alert ids as one process). Outputs are then grouped by worker
    rather than in input order.

    ``recorded_pulses`` (event id -> role pulse, as the worker's scores topic records them)
    replaces counting the input: it replays a stream run with the pulses it scored with, to
    audit one whose partitions did not keep pace (``docs/operations.md``, "Role pulse").

    ``rules`` (verdicts and actor context, :mod:`models.analyst`) are applied as the worker
    applies them once it has read them: held-back alerts go to ``suppressed_path``.
    """
    rules = rules if rules is not None else AnalystRules()
    detected_at = rfc3339(datetime.now(UTC).timestamp())
    usual = detector.model.peers.pulse_usual()
    # The role pulse counts the whole input first (models.pulse), as the stream's workers
    # between them count the whole topic.
    pulse: PulseTable | _RecordedPulses | None = None
    if recorded_pulses is not None:
        pulse = _RecordedPulses(recorded_pulses)
    elif usual:
        pulse = _count_input(paths, usual, rules)
    outputs = (out_path, all_scores_path, dlq_path, suppressed_path)
    if workers <= 1:
        return _score_shard(
            detector, paths, 0, 1, outputs, alert_format, progress, detected_at, pulse, rules
        )
    return _score_in_parallel(
        detector, paths, workers, outputs, alert_format, progress, detected_at, pulse, rules
    )


def _count_input(
    paths: list[str], usual: dict[str, list[float]], rules: AnalystRules
) -> PulseTable:
    """The role pulse's counts of every valid event of ``paths``, as the worker counts the
    topic's records (duplicates included: each is a record of its own)."""
    table = PulseTable(usual)
    events: list[AccessEvent] = []
    for path in paths:
        for _, raw in read_jsonl(path):
            parsed = parse_event(raw)
            if isinstance(parsed, AccessEvent):
                events.append(parsed)
            if len(events) >= CHUNK:
                rules.prepare(events)  # peer groups count as their own role
                count_events(events, table.totals)
                events.clear()
    rules.prepare(events)
    count_events(events, table.totals)
    return table


def shard_of(raw: bytes, shards: int) -> int:
    """The shard of an input line: by actor, like the topic's key; unreadable lines go to 0.

    >>> shard_of(b'{"actor_id": "a"}', 4) == shard_of(b'{"actor_id":"a","x":1}', 4)
    True
    >>> shard_of(b"not json", 4)
    0
    """
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 0
    actor = doc.get("actor_id") if isinstance(doc, dict) else None
    return stable_hash(actor) % shards if isinstance(actor, str) else 0


@dataclass(frozen=True)
class _RecordedPulses:
    """Pulses recorded by a stream run, by event id (see :func:`score_files`)."""

    by_event: Mapping[str, float]

    def set_pulses(self, events: list[AccessEvent]) -> None:
        for event in events:
            event.role_pulse = self.by_event.get(event.event_id, 0.0)


# What a forked worker needs; set in the parent just before forking (never pickled).
_FORK_CONTEXT: dict = {}


def _score_forked_shard(shard: int) -> OfflineResult:
    c = _FORK_CONTEXT
    outputs = tuple(f"{path}.part{shard}" if path else None for path in c["outputs"])
    return _score_shard(
        c["detector"],
        c["paths"],
        shard,
        c["shards"],
        outputs,
        c["format"],
        None,
        c["at"],
        c["pulse"],
        c["rules"],
    )


def _score_in_parallel(
    detector, paths, workers, outputs, alert_format, progress, detected_at, pulse, rules
):
    _FORK_CONTEXT.update(
        pulse=pulse,
        rules=rules,
        detector=detector,
        paths=paths,
        shards=workers,
        outputs=outputs,
        format=alert_format,
        at=detected_at,
    )
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            parts = list(pool.map(_score_forked_shard, range(workers)))
    finally:
        _FORK_CONTEXT.clear()
    for path in outputs:
        if not path:
            continue
        with open(path, "wb") as merged:
            for shard in range(workers):
                part = Path(f"{path}.part{shard}")
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, merged)
                part.unlink()
    total = OfflineResult()
    for part in parts:
        total.events += part.events
        total.scored += part.scored
        total.dead_lettered += part.dead_lettered
        total.duplicates += part.duplicates
        total.alerts += part.alerts
        total.incidents += part.incidents
        total.suppressed += part.suppressed
        for reason, count in part.reasons.items():
            total.reasons[reason] = total.reasons.get(reason, 0) + count
    if progress is not None:
        progress(total.events)
    return total


def _score_shard(
    detector: Detector,
    paths: list[str],
    shard: int,
    shards: int,
    outputs: tuple[str | None, ...],
    alert_format: str,
    progress,
    detected_at: str,
    pulse: PulseTable | _RecordedPulses | None = None,
    rules: AnalystRules | None = None,
) -> OfflineResult:
    """Score the lines of ``paths`` that belong to ``shard`` of ``shards`` (``pulse``: the
    role pulse's counts of the whole input, or None when the model has no pulse)."""
    with contextlib.ExitStack() as files:
        out, scores_out, dlq_out, suppressed_out = (
            files.enter_context(open(path, "wb")) if path else None for path in outputs
        )
        scorer = _ShardScorer(
            detector,
            (out, scores_out, dlq_out, suppressed_out),
            alert_format,
            progress,
            detected_at,
            pulse,
            rules if rules is not None else AnalystRules(),
        )
        for path in paths:
            for line_number, raw in read_jsonl(path):
                if shards == 1 or shard_of(raw, shards) == shard:
                    scorer.take(raw, str(path), line_number)
            scorer.flush()
    return scorer.result


class _ShardScorer:
    """The lines of one shard, as the worker treats a partition's records: parsed,
    dead-lettered or set aside as duplicates, and scored in chunks of :data:`CHUNK`."""

    def __init__(
        self, detector, outputs, alert_format, progress, detected_at, pulse, rules
    ) -> None:
        self.pulse: PulseTable | _RecordedPulses | None = pulse
        self.rules: AnalystRules = rules
        self.detector, self.alert_format = detector, alert_format
        self.out, self.scores_out, self.dlq_out, self.suppressed_out = outputs
        self.progress, self.detected_at = progress, detected_at
        self.result = OfflineResult()
        self.states: dict[str, ActorState] = {}
        self.recent_ids = DuplicateCheck(self.states)
        self.buffer: list[AccessEvent] = []

    def take(self, raw: bytes, path: str, line_number: int) -> None:
        """One input line."""
        result = self.result
        result.events += 1
        parsed = parse_event(raw)
        if isinstance(parsed, InvalidEvent):
            self._dead_letter(raw, parsed, path, line_number)
            return
        kind = self.recent_ids.classify(parsed, raw)
        if kind == DUPLICATE:
            result.duplicates += 1
        elif kind == CONFLICT:
            self._dead_letter(raw, duplicate_id_problem(parsed), path, line_number)
        else:
            self.buffer.append(parsed)
            if len(self.buffer) >= CHUNK:
                self.flush()

    def flush(self) -> None:
        """Score the buffered events; write their alerts and scores."""
        buffer, result = self.buffer, self.result
        if not buffer:
            return
        self.rules.prepare(buffer)
        if self.pulse is not None:
            self.pulse.set_pulses(buffer)
        outcome = self.detector.process(buffer, self.states, self.detected_at)
        self.recent_ids.settle()
        for alert in outcome.alerts:
            routing = self.rules.route(alert)
            if not routing.send:
                result.suppressed += 1
                if self.suppressed_out is not None:
                    alert["suppressed"] = {"scope": routing.scope, "rule": routing.rule}
                    self.suppressed_out.write(orjson.dumps(alert) + b"\n")
                continue
            self.out.write(orjson.dumps(format_alert(alert, self.alert_format)) + b"\n")
            result.alerts += 1
            result.incidents += alert["status"] == "new"
        if self.scores_out is not None:
            for verdict in outcome.scored:
                event = verdict.event
                record = {
                    "event_id": event.event_id,
                    "actor_id": event.actor_id,
                    "timestamp": event.timestamp,
                    "score": verdict.score,
                    "flagged": verdict.flagged,
                    "late": verdict.late,
                }
                self.scores_out.write(orjson.dumps(record) + b"\n")
        result.scored += len(outcome.scores)
        if self.progress is not None:
            self.progress(len(buffer))
        buffer.clear()

    def _dead_letter(self, raw: bytes, problem: InvalidEvent, path: str, line_number: int) -> None:
        result = self.result
        result.dead_lettered += 1
        result.reasons[problem.reason] = result.reasons.get(problem.reason, 0) + 1
        if self.dlq_out is not None:
            record = dead_letter_record(raw, problem, path, 0, line_number, None, self.detected_at)
            self.dlq_out.write(record + b"\n")
