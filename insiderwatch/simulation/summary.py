"""The demo's closing summary: what was planted, what was caught and how fast, what was not.

Reads the labels the simulator wrote into the live traffic (``sim_label``, ``sim_scenario``,
``sim_instance``; the detector never sees them) and the alerts the worker sent, native or
OCSF, and answers in one screen what a newcomer wants to know after a demo.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from insiderwatch.models.events import parse_timestamp

__all__ = ["DemoSummary", "summarise_demo"]


@dataclass
class _Instance:
    label: str
    scenario: str
    actor_id: str
    start: float
    event_ids: set[str] = field(default_factory=set)


@dataclass
class DemoSummary:
    """The figures of the summary (``text()`` renders them)."""

    events: int
    actor_days: int
    caught: list[tuple[str, str, float | None]]  # (instance, actor, minutes to detect or None)
    incidents: int
    false_incidents: int
    false_on_benign: dict[str, int]

    @property
    def incidents_per_1000_actor_days(self) -> float:
        return 1000.0 * self.incidents / max(self.actor_days, 1)

    def text(self) -> str:
        lines = [
            f"demo summary: {self.events:,} live events, {self.actor_days:,} actor-days",
            "",
            f"{'planted insider behaviour':<32}{'actor':<12}{'caught':<8}time to detect",
        ]
        for instance, actor, minutes in self.caught:
            caught = "yes" if minutes is not None else "no"
            delay = f"{minutes:.1f} min (event time)" if minutes is not None else "-"
            lines.append(f"{instance:<32}{actor:<12}{caught:<8}{delay}")
        found = sum(1 for _, _, minutes in self.caught if minutes is not None)
        benign = ", ".join(f"{name} {n}" for name, n in sorted(self.false_on_benign.items()))
        lines += [
            "",
            f"caught {found} of {len(self.caught)} planted insiders; "
            f"{self.false_incidents} false incidents of {self.incidents}"
            + (f" ({benign} on benign but unusual activity)" if benign else ""),
            f"alert volume: {self.incidents_per_1000_actor_days:.1f} incidents per 1,000 "
            "actor-days",
        ]
        return "\n".join(lines)


def _alert_parts(doc: dict) -> tuple[str, list[str]]:
    """``(alert_id, event ids)`` of a native alert or an OCSF Detection Finding."""
    if "class_uid" in doc:
        info = doc.get("finding_info") or {}
        return info.get("uid", ""), [e.get("uid", "") for e in info.get("related_events") or []]
    return doc.get("alert_id", ""), list(doc.get("event_ids") or [])


def summarise_demo(live_path: Path, alerts: list[dict]) -> DemoSummary:
    """The summary of a demo run from its live traffic file and the alerts it raised.

    >>> import tempfile, orjson
    >>> rows = [{"event_id": "a", "timestamp": "2026-01-26T09:00:00Z", "actor_id": "x",
    ...          "sim_label": "insider", "sim_scenario": "leak", "sim_instance": "leak#0"},
    ...         {"event_id": "b", "timestamp": "2026-01-26T09:03:00Z", "actor_id": "x",
    ...          "sim_label": "insider", "sim_scenario": "leak", "sim_instance": "leak#0"}]
    >>> with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
    ...     _ = f.write(b"\\n".join(orjson.dumps(r) for r in rows))
    ...     _ = f.flush()
    ...     s = summarise_demo(Path(f.name), [{"alert_id": "A1", "event_ids": ["b"]}])
    >>> s.caught, s.false_incidents
    ([('leak#0', 'x', 3.0)], 0)
    """
    instances: dict[str, _Instance] = {}
    event_time: dict[str, float] = {}
    label_of: dict[str, tuple[str, str]] = {}
    actor_days: set[tuple[str, int]] = set()
    events = 0
    for line in live_path.read_bytes().splitlines():
        if not line.strip():
            continue
        doc = orjson.loads(line)
        events += 1
        ts = parse_timestamp(doc["timestamp"])
        actor_days.add((doc["actor_id"], int(ts // 86400)))
        label = doc.get("sim_label", "normal")
        if label == "normal":
            continue
        event_time[doc["event_id"]] = ts
        label_of[doc["event_id"]] = (label, doc.get("sim_scenario", ""))
        instance = instances.setdefault(
            doc["sim_instance"], _Instance(label, doc.get("sim_scenario", ""), doc["actor_id"], ts)
        )
        instance.start = min(instance.start, ts)
        instance.event_ids.add(doc["event_id"])
    return _tally(instances, event_time, label_of, alerts, events, len(actor_days))


def _tally(instances, event_time, label_of, alerts, events, actor_days) -> DemoSummary:
    incident_events: dict[str, set[str]] = defaultdict(set)
    for doc in alerts:
        alert_id, event_ids = _alert_parts(doc)
        incident_events[alert_id].update(event_ids)
    first_alerted: dict[str, float] = {}
    false_on_benign: dict[str, int] = defaultdict(int)
    false_incidents = 0
    for event_ids in incident_events.values():
        labels = [label_of[e] for e in event_ids if e in label_of]
        insider = [e for e in event_ids if label_of.get(e, ("",))[0] == "insider"]
        if not insider:
            false_incidents += 1
            if labels:
                false_on_benign[labels[0][1]] += 1
        for instance_id, instance in instances.items():
            hit = [event_time[e] for e in insider if e in instance.event_ids]
            if hit:
                first_alerted[instance_id] = min(first_alerted.get(instance_id, hit[0]), *hit)
    caught = [
        (
            name,
            instance.actor_id,
            (first_alerted[name] - instance.start) / 60.0 if name in first_alerted else None,
        )
        for name, instance in sorted(instances.items(), key=lambda item: item[1].start)
        if instance.label == "insider"
    ]
    return DemoSummary(
        events=events,
        actor_days=actor_days,
        caught=caught,
        incidents=len(incident_events),
        false_incidents=false_incidents,
        false_on_benign=dict(false_on_benign),
    )
