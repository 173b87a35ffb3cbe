"""Offline scoring: JSONL files through the same decode/detect code as the worker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from models.detector import Detector, rfc3339
from models.events import AccessEvent, InvalidEvent, parse_event
from models.state import ActorState
from stream.dlq import dead_letter_record
from stream.formats import format_alert

__all__ = ["OfflineResult", "score_files", "read_jsonl"]

CHUNK = 5000


@dataclass
class OfflineResult:
    events: int = 0
    scored: int = 0
    dead_lettered: int = 0
    alerts: int = 0
    incidents: int = 0
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
) -> OfflineResult:
    """Score ``paths`` in the given order; write alerts (JSONL) to ``out_path``."""
    result = OfflineResult()
    states: dict[str, ActorState] = {}
    detected_at = rfc3339(datetime.now(UTC).timestamp())
    out = open(out_path, "wb")  # noqa: SIM115
    scores_out = open(all_scores_path, "wb") if all_scores_path else None  # noqa: SIM115
    dlq_out = open(dlq_path, "wb") if dlq_path else None  # noqa: SIM115
    try:

        def flush(buffer: list[AccessEvent]) -> None:
            outcome = detector.process(buffer, states, detected_at)
            for alert in outcome.alerts:
                out.write(orjson.dumps(format_alert(alert, alert_format)) + b"\n")
                result.alerts += 1
                result.incidents += alert["status"] == "new"
            if scores_out is not None:
                for verdict in outcome.scored:
                    scores_out.write(
                        orjson.dumps(
                            {
                                "event_id": verdict.event.event_id,
                                "actor_id": verdict.event.actor_id,
                                "timestamp": verdict.event.timestamp,
                                "score": verdict.score,
                                "flagged": verdict.flagged,
                                "late": verdict.late,
                            }
                        )
                        + b"\n"
                    )
            result.scored += len(outcome.scored)
            if progress is not None:
                progress(len(buffer))
            buffer.clear()

        for path in paths:
            buffer: list[AccessEvent] = []
            for line_number, raw in read_jsonl(path):
                result.events += 1
                parsed = parse_event(raw)
                if isinstance(parsed, InvalidEvent):
                    result.dead_lettered += 1
                    result.reasons[parsed.reason] = result.reasons.get(parsed.reason, 0) + 1
                    if dlq_out is not None:
                        dlq_out.write(
                            dead_letter_record(
                                raw, parsed, str(path), 0, line_number, None, detected_at
                            )
                            + b"\n"
                        )
                    continue
                buffer.append(parsed)
                if len(buffer) >= CHUNK:
                    flush(buffer)
            if buffer:
                flush(buffer)
    finally:
        out.close()
        if scores_out is not None:
            scores_out.close()
        if dlq_out is not None:
            dlq_out.close()
    return result
