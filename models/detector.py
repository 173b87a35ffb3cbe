"""The detection core shared by training, offline ``score`` and the Faust worker.

:func:`observe` advances an actor's state by one event and returns its feature row: it is
the readable definition of the features. :class:`Detector` scores batches of events against a
model, decides, explains and groups alerts into incidents; it runs the same arithmetic compiled
(:mod:`models.compiled`, held to :func:`observe` bit for bit by ``tests/test_compiled.py``).
Both are pure with respect to I/O and the clock (the caller passes ``detected_at``), so a
replay reproduces the live stream's scores and alert ids.

Batches are processed in *waves*: wave k holds the k-th event of every actor in the batch.
Within a wave every actor appears once, so the wave is scored as one forest walk, and
each actor still sees its events strictly in order. The result is identical to scoring one
event at a time, whatever the batch boundaries are, which is what lets flagged events be
kept out of the baseline (the update depends on the score) without losing batching.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from models.artifact import Model
from models.compiled import FLAG_LATE, FLAG_POINT, FLAG_SUSTAINED, PackedBatch, RoleTable, run_waves
from models.events import AccessEvent
from models.explain import explain, summarise
from models.features import (
    MATURE_EVENTS,
    access_surprise,
    actor_pair_probability,
    feature_row,
    is_rare_access,
    role_rarities,
)
from models.forest import path_attribution, score
from models.incidents import SEVERITIES, IncidentSettings, incident_fields, step_incident
from models.peers import PeerBaseline
from models.state import (
    ActorState,
    advance_windows,
    new_state,
    rebaseline_for_new_role,
)

__all__ = ["Scored", "BatchOutcome", "Detector", "observe", "rfc3339", "ALERT_SCHEMA"]

ALERT_SCHEMA = "insiderwatch.alert/v1"
_FLAGGED = FLAG_POINT | FLAG_SUSTAINED
WARMUP_ACTIVE_DAYS = 3


def rfc3339(ts: float) -> str:
    """Epoch seconds as an RFC 3339 UTC string.

    >>> rfc3339(1767605400.0)
    '2026-01-05T09:30:00Z'
    """
    text = datetime.fromtimestamp(ts, UTC).isoformat()
    return text.replace("+00:00", "Z")


def observe(
    event: AccessEvent, states: MutableMapping[str, ActorState], peers: PeerBaseline
) -> tuple[ActorState, bool, bool, list[float]]:
    """Advance the actor's windows with ``event``; return ``(state, is_late, is_rare, features)``.

    ``is_rare`` (:func:`~models.features.is_rare_access`) is for
    :func:`~models.state.count_rare_access`, once the event is known not to be flagged.
    """
    state = states.get(event.actor_id)
    if state is None:
        state = new_state(event)
        states[event.actor_id] = state
    elif event.actor_role != state.role:
        rebaseline_for_new_role(state, event.actor_role, event.ts)
    role = peers.profile(event.actor_role)
    p_pair = actor_pair_probability(event, state, role)  # advance_windows does not change it
    surprise = access_surprise(event, state, role, p_pair)
    is_late, _ = advance_windows(state, event)
    rarities = role_rarities(event, role)  # once: both the rare test and the row use them
    is_rare = is_rare_access(event, role, surprise, rarities)
    return (
        state,
        is_late,
        is_rare,
        feature_row(event, state, peers, surprise, is_rare, rarities, p_pair),
    )


@dataclass(slots=True)
class Scored:
    """One event's verdict."""

    event: AccessEvent
    score: float
    flagged: bool
    late: bool


@dataclass(slots=True)
class BatchOutcome:
    """Verdicts in input order, and alert messages in emission order."""

    scored: list[Scored]
    alerts: list[dict]


class Detector:
    """Scores events with a :class:`~models.artifact.Model` and emits explained alerts.

    Parameters
    ----------
    model:
        A verified model (see :func:`models.artifact.load_model`).
    pseudonymize_key:
        When given, ``resource_id`` and ``source_ip`` in alerts are replaced by a keyed
        HMAC-SHA256 pseudonym, so the alerts topic does not become a copy of customer data.
        The actor stays in clear: analysts need it.
    """

    def __init__(self, model: Model, pseudonymize_key: bytes | None = None) -> None:
        self.model = model
        self.threshold = model.threshold
        cuts = model.manifest["severity_thresholds"]
        self._cuts = (self.threshold, cuts["medium"], cuts["high"], cuts["critical"])
        self.incident_settings = IncidentSettings(**model.manifest["incident"])
        sustained = model.manifest.get("sustained") or {}
        self._cusum_reference = float(sustained.get("reference", 1.0))
        self._cusum_limit = float(sustained.get("limit", float("inf")))
        self._pseudonymize_key = pseudonymize_key
        self._roles = RoleTable(model.peers)

    def warm_up(self) -> None:
        """Run the compiled scorer and attribution once, so the first real batch does not pay
        for loading the JIT-compiled code (hundreds of milliseconds of first-alert latency)."""
        row = np.zeros((1, len(self.model.feature_names)), dtype=np.float64)
        score(self.model.forest, row)
        path_attribution(self.model.forest, row)

    def severity_level(self, value: float) -> int:
        """0..3 for low..critical, from the calibrated score cuts."""
        level = 0
        for index in (1, 2, 3):
            if value >= self._cuts[index]:
                level = index
        return level

    def _pseudonym(self, value: str | None) -> str | None:
        if value is None or self._pseudonymize_key is None:
            return value
        digest = hmac.new(self._pseudonymize_key, value.encode(), hashlib.sha256).hexdigest()
        return "hmac:" + digest[:24]

    def process(
        self,
        events: Sequence[AccessEvent],
        states: MutableMapping[str, ActorState],
        detected_at: str,
    ) -> BatchOutcome:
        """Score ``events`` in order, updating ``states`` in place.

        The compiled kernel (:mod:`models.compiled`) runs the waves; after a wave that flagged
        events it hands back, and the flagged events are explained and grouped here, with
        their actors' states as they were at those events.
        """
        if not events:
            return BatchOutcome(scored=[], alerts=[])
        model = self.model
        forest = model.forest
        batch = PackedBatch(events, states, self._roles)
        n = len(events)
        x = np.empty((n, len(model.feature_names)), dtype=np.float64)
        scores = np.empty(n, dtype=np.float64)
        flags = np.zeros(n, dtype=np.int64)
        child, feature, threshold32, tree_depth = forest.layout
        alerts: list[dict] = []
        wave = 0
        while wave < batch.n_waves:
            wave = run_waves(
                batch.states,
                batch.events,
                batch.field_hashes,
                batch.field_rarities,
                batch.roles,
                0.0,
                batch.order,
                batch.starts,
                wave,
                True,
                child,
                feature,
                threshold32,
                tree_depth,
                forest.node_value,
                forest.roots,
                forest.denominator,
                self.threshold,
                self._cusum_reference,
                self._cusum_limit,
                x,
                scores,
                flags,
            )
            in_wave = batch.wave(wave - 1)
            flagged = in_wave[(flags[in_wave] & _FLAGGED) != 0].tolist()
            if flagged:
                alerts.extend(
                    self._settle_flagged(events, batch, flagged, x, scores, flags, detected_at)
                )
        batch.unpack()
        values = scores.tolist()
        bits = flags.tolist()
        return BatchOutcome(
            scored=[
                Scored(event, value, bool(bit & _FLAGGED), bool(bit & FLAG_LATE))
                for event, value, bit in zip(events, values, bits, strict=True)
            ],
            alerts=alerts,
        )

    def _settle_flagged(
        self,
        events: Sequence[AccessEvent],
        batch: PackedBatch,
        flagged: list[int],
        x: np.ndarray,
        scores: np.ndarray,
        flags: np.ndarray,
        detected_at: str,
    ) -> list[dict]:
        """Incident steps and alerts of one wave's flagged events (input order)."""
        batch.unpack([batch.slots[events[j].actor_id] for j in flagged])
        attributions = path_attribution(self.model.forest, x[flagged])
        alerts = []
        for j, attribution in zip(flagged, attributions, strict=True):
            event = events[j]
            state = batch.actors[batch.slots[event.actor_id]]
            value = float(scores[j])
            step = step_incident(
                state.incident,
                event.actor_id,
                event.event_id,
                event.ts,
                value,
                self.severity_level(value),
                self.incident_settings,
            )
            state.incident = step.incident
            if step.emit:
                trigger = "point" if flags[j] & FLAG_POINT else "sustained"
                alerts.append(
                    self._alert(
                        event,
                        state,
                        value,
                        bool(flags[j] & FLAG_LATE),
                        step,
                        attribution,
                        detected_at,
                        trigger,
                        x[j],
                    )
                )
        return alerts

    def _alert(
        self, event, state, value, is_late, step, attribution, detected_at, trigger, features
    ) -> dict:
        model = self.model
        role = model.peers.profile(event.actor_role)
        warming_up = state.hist_n < MATURE_EVENTS or state.active_days < WARMUP_ACTIVE_DAYS
        # Older models have medians only: a weaker bar (half of normal traffic is above it).
        typical = model.manifest.get("feature_p95") or model.manifest.get("feature_medians")
        reasons = explain(
            event,
            state,
            role,
            attribution,
            model.attribution_baseline,
            features,
            None if typical is None else np.asarray(typical),
        )
        incident = incident_fields(step.incident)
        confidence = min(1.0, state.hist_n / (4.0 * MATURE_EVENTS))
        return {
            "schema": ALERT_SCHEMA,
            "alert_id": step.alert_id,
            "status": step.status,
            "event_id": event.event_id,
            "event_ids": incident["event_ids"],
            "actor_id": event.actor_id,
            "actor_role": event.actor_role,
            "actor_team": event.actor_team,
            "timestamp": rfc3339(event.ts),
            "first_seen": rfc3339(incident["first_ts"]),
            "last_seen": rfc3339(incident["last_ts"]),
            "detected_at": detected_at,
            "score": round(value, 6),
            "threshold": round(self.threshold, 6),
            "severity": SEVERITIES[incident["level"]],
            "model_version": model.version,
            "event_count": incident["count"],
            "max_score": incident["max_score"],
            "warming_up": warming_up,
            "confidence": round(confidence, 3),
            "late": is_late,
            "trigger": trigger,
            "sustained_evidence": round(state.cusum, 4),
            "reasons": [reason.as_dict() for reason in reasons],
            "summary": summarise(event, reasons, warming_up, trigger == "sustained"),
            "event": {
                "action": event.action,
                "resource_type": event.resource_type,
                "resource_id": self._pseudonym(event.resource_id),
                "record_count": event.record_count,
                "fields": list(event.fields),
                "ticket_id": event.ticket_id,
                "source_ip": self._pseudonym(event.source_ip),
                "device_id": event.device_id,
                "outcome": event.outcome,
            },
        }
