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

from insiderwatch.models.artifact import Model
from insiderwatch.models.compiled import (
    FLAG_LATE,
    FLAG_POINT,
    FLAG_RISK,
    FLAG_SUSTAINED,
    Detection,
    PackedBatch,
    RoleTable,
)
from insiderwatch.models.events import AccessEvent
from insiderwatch.models.explain import explain, summarise
from insiderwatch.models.features import (
    MATURE_EVENTS,
    access_surprise,
    actor_pair_probability,
    feature_row,
    is_rare_access,
    role_rarities,
)
from insiderwatch.models.forest import path_attribution, score
from insiderwatch.models.incidents import (
    SEVERITIES,
    incident_fields,
    step_incident,
)
from insiderwatch.models.peers import PeerBaseline
from insiderwatch.models.risk import RISK_EXCESS_CAP, RiskLimits, add_risk, risk_due
from insiderwatch.models.risk_alert import (
    evidence_timeline,
    risk_alert_id,
    risk_fields,
    risk_summary,
)
from insiderwatch.models.state import (
    ActorState,
    absorb_into_baseline,
    advance_windows,
    count_rare_access,
    new_state,
    rebaseline_for_new_role,
)
from insiderwatch.models.sustained import cusum_step

__all__ = ["Scored", "BatchOutcome", "Detector", "observe", "rfc3339", "ALERT_SCHEMA"]

ALERT_SCHEMA = "insiderwatch.alert/v1"
_FLAGGED = FLAG_POINT | FLAG_SUSTAINED
_HANDED_BACK = _FLAGGED | FLAG_RISK  # the events the kernel hands back to be settled here
# Batches with at least this many events per actor run compiled (see Detector.process).
COMPILED_MIN_EVENTS_PER_ACTOR = 2.0
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
    """Verdicts in input order, as columns, and alert messages in emission order.

    Columns rather than one :class:`Scored` per event: the worker only counts and sums the
    verdicts, and building (then freeing) 8,000 objects per batch was 5% of its time.
    :attr:`scored` gives them as objects when a caller wants them.

    >>> outcome = BatchOutcome.empty()
    >>> outcome.scored, outcome.n_late
    ([], 0)
    """

    events: list[AccessEvent]
    scores: list[float]
    flagged: list[bool]
    late: list[bool]
    alerts: list[dict]

    @classmethod
    def empty(cls) -> BatchOutcome:
        return cls([], [], [], [], [])

    @property
    def scored(self) -> list[Scored]:
        """One :class:`Scored` per event, in input order."""
        return [
            Scored(*verdict)
            for verdict in zip(self.events, self.scores, self.flagged, self.late, strict=True)
        ]

    @property
    def n_late(self) -> int:
        return sum(self.late)

    def extend(self, other: BatchOutcome) -> None:
        """Append ``other``'s verdicts and alerts (for outcomes of consecutive events)."""
        self.events += other.events
        self.scores += other.scores
        self.flagged += other.flagged
        self.late += other.late
        self.alerts += other.alerts


def _waves(events: Sequence[AccessEvent]) -> list[list[int]]:
    """Group event indices so that wave k holds each actor's k-th event (input order kept)."""
    position: dict[str, int] = {}
    waves: list[list[int]] = []
    for index, event in enumerate(events):
        k = position.get(event.actor_id, 0)
        position[event.actor_id] = k + 1
        if k == len(waves):
            waves.append([])
        waves[k].append(index)
    return waves


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

    Examples
    --------
    Train on a simulated history, then score a burst of exports by one actor:

    >>> import tempfile, orjson
    >>> from insiderwatch.models.artifact import load_model
    >>> from insiderwatch.models.events import parse_event
    >>> from insiderwatch.models.train import train_model
    >>> from insiderwatch.simulation.simulate import SimulationConfig, simulate
    >>> config = SimulationConfig(actors=40, days=10, seed=3, with_scenarios=False)
    >>> history = [parse_event(orjson.dumps(event)) for event in simulate(config)]
    >>> with tempfile.TemporaryDirectory() as model_dir:
    ...     _ = train_model(history, model_dir, n_estimators=20, warmup_days=3)
    ...     detector = Detector(load_model(model_dir))
    >>> last = history[-1]
    >>> burst = [
    ...     parse_event(orjson.dumps({
    ...         "event_id": f"x{i}", "timestamp": "2026-01-15T03:00:0" + str(i) + "Z",
    ...         "actor_id": last.actor_id, "actor_role": last.actor_role,
    ...         "action": "export", "resource_type": "customer_contact",
    ...         "record_count": 50_000,
    ...     }))
    ...     for i in range(3)
    ... ]
    >>> outcome = detector.process(burst, {}, detected_at="2026-01-15T03:00:10Z")
    >>> len(outcome.scores), all(outcome.flagged)
    (3, True)
    >>> outcome.alerts[0]["actor_id"] == last.actor_id
    True
    """

    def __init__(self, model: Model, pseudonymize_key: bytes | None = None) -> None:
        self.model = model
        self.threshold = model.threshold
        manifest = model.manifest
        cuts = manifest.severity_thresholds
        self._cuts = (self.threshold, cuts["medium"], cuts["high"], cuts["critical"])
        self.incident_settings = manifest.incident
        self._cusum_reference = manifest.sustained.reference
        self._cusum_limit = manifest.sustained.limit
        self._pseudonymize_key = pseudonymize_key
        risk = manifest.risk
        self._risk_limits = RiskLimits(risk.day_limit, risk.week_limit, risk.cooldown_s)
        self._roles = RoleTable(model.peers, risk.references, risk.default_reference)
        self._pair_names = model.peers.pair_names()

    def warm_up(self) -> None:
        """Run the compiled scorer, attribution and detection kernel once, so the first real
        batch does not pay for loading the JIT-compiled code (hundreds of milliseconds of
        first-alert latency)."""
        row = np.zeros((1, len(self.model.feature_names)), dtype=np.float64)
        score(self.model.forest, row)
        path_attribution(self.model.forest, row)
        probe = [
            AccessEvent(
                event_id=f"warm-up-{i}",
                timestamp=f"2026-01-01T00:00:0{i}Z",
                actor_id="warm-up",
                action="view",
                resource_type="warm-up",
            )
            for i in range(2)
        ]
        self._process_compiled(probe, {}, "warm-up")

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

        Two equal paths (``tests/test_compiled.py`` holds them to the same bits): the compiled
        kernel (:mod:`models.compiled`) for batches where actors have several events each,
        and the Python definition where nearly every event is its actor's only one, because
        packing a state into the kernel's row and back costs about one Python event (~20 us)
        and is paid per actor (measured: 100,000 actors, one event each per batch of 8,000,
        36 us per event compiled against 20 in Python; 500 actors, 16 events each, 6 against 20).
        """
        if not events:
            return BatchOutcome.empty()
        actors = len({event.actor_id for event in events})
        if len(events) >= COMPILED_MIN_EVENTS_PER_ACTOR * actors:
            return self._process_compiled(events, states, detected_at)
        return self._process_in_python(events, states, detected_at)

    def _process_compiled(
        self,
        events: Sequence[AccessEvent],
        states: MutableMapping[str, ActorState],
        detected_at: str,
    ) -> BatchOutcome:
        """The kernel runs the waves; after a wave that flagged events it hands back, and they
        are explained and grouped here with their actors' states as they were at the event."""
        model = self.model
        forest = model.forest
        batch = PackedBatch(events, states, self._roles)
        n = len(events)
        x = np.empty((n, len(model.feature_names)), dtype=np.float64)
        scores = np.empty(n, dtype=np.float64)
        flags = np.zeros(n, dtype=np.int64)
        detection = Detection.of(
            forest, self.threshold, self._cusum_reference, self._cusum_limit, self._risk_limits
        )
        alerts: list[dict] = []
        wave = 0
        while wave < batch.n_waves:
            wave = batch.run(wave, x, scores, flags, detection)
            in_wave = batch.wave(wave - 1)
            flagged = in_wave[(flags[in_wave] & _HANDED_BACK) != 0].tolist()
            if not flagged:
                continue
            batch.unpack([batch.slots[events[j].actor_id] for j in flagged])
            attributions = path_attribution(forest, x[flagged])
            for j, attribution in zip(flagged, attributions, strict=True):
                flag = int(flags[j])
                trigger = "point" if flag & FLAG_POINT else "sustained"
                alerts += self._settle(
                    events[j],
                    batch.actors[batch.slots[events[j].actor_id]],
                    float(scores[j]),
                    bool(flag & FLAG_LATE),
                    trigger if flag & _FLAGGED else None,
                    bool(flag & FLAG_RISK),
                    attribution,
                    x[j],
                    detected_at,
                )
        batch.unpack()
        return BatchOutcome(
            list(events),  # a copy: callers reuse their buffers
            scores.tolist(),
            ((flags & _FLAGGED) != 0).tolist(),
            ((flags & FLAG_LATE) != 0).tolist(),
            alerts,
        )

    def _process_in_python(
        self,
        events: Sequence[AccessEvent],
        states: MutableMapping[str, ActorState],
        detected_at: str,
    ) -> BatchOutcome:
        """The same waves through the Python definition (:func:`observe` and the state
        functions), for batches of mostly one event per actor."""
        model = self.model
        peers = model.peers
        n = len(events)
        scores, flagged_at, late = [0.0] * n, [False] * n, [False] * n
        alerts: list[dict] = []
        for wave in _waves(events):
            rows = []
            wave_states = []
            for index in wave:
                state, is_late, is_rare, row = observe(events[index], states, peers)
                rows.append(row)
                wave_states.append((state, is_late, is_rare))
            matrix = np.asarray(rows, dtype=np.float64)
            wave_scores = score(model.forest, matrix).tolist()
            # Unflagged events (nearly all) are settled in this pass; flagged ones need the
            # wave's attributions first. Each actor is in a wave once, so the order in which
            # different actors are settled does not change any result.
            flagged: list[tuple[int, str | None, bool]] = []
            for position, index in enumerate(wave):
                event = events[index]
                state, is_late, is_rare = wave_states[position]
                value = wave_scores[position]
                trigger = self._judge(event, state, value)
                risky = trigger is None and self._raise_risk(event, state, value)
                if trigger is None:
                    scores[index], late[index] = value, is_late
                    absorb_into_baseline(state, event)
                    if is_rare and not is_late:
                        count_rare_access(state, event)
                if trigger is not None or risky:
                    flagged.append((position, trigger, risky))
            if not flagged:
                continue
            attributions = path_attribution(model.forest, matrix[[f[0] for f in flagged]])
            for (position, trigger, risky), attribution in zip(flagged, attributions, strict=True):
                index = wave[position]
                state, is_late, _ = wave_states[position]
                value = wave_scores[position]
                if trigger is not None:
                    scores[index], flagged_at[index], late[index] = value, True, is_late
                alerts += self._settle(
                    events[index],
                    state,
                    value,
                    is_late,
                    trigger,
                    risky,
                    attribution,
                    matrix[position],
                    detected_at,
                )
        return BatchOutcome(list(events), scores, flagged_at, late, alerts)

    def _judge(self, event: AccessEvent, state: ActorState, value: float) -> str | None:
        """Advance the actor's CUSUM by the event's score; ``"point"``, ``"sustained"`` or
        None (the event is not flagged)."""
        state.cusum = cusum_step(
            state.cusum, state.cusum_ts, event.ts, value, self._cusum_reference
        )
        if event.ts > state.cusum_ts:
            state.cusum_ts = event.ts
        if value >= self.threshold:
            return "point"
        if state.cusum >= self._cusum_limit:
            return "sustained"
        return None

    def _raise_risk(self, event: AccessEvent, state: ActorState, value: float) -> bool:
        """Add an unflagged event's excess over its role's reference, times the actor's risk
        weight (:mod:`models.analyst`: leavers, watchlists), to the actor's risk (a flagged
        event is reported by its own alert); whether the risk is now due an
        entity-risk alert (:mod:`models.risk`)."""
        excess = min(value - self._roles.risk_reference(event.actor_role), RISK_EXCESS_CAP)
        excess *= event.risk_weight
        if excess <= 0.0:
            return False
        add_risk(state, event.ts, value, excess, event.pair_hash)
        return risk_due(state, event.ts, self._risk_limits)

    def _settle(
        self,
        event: AccessEvent,
        state: ActorState,
        value: float,
        is_late: bool,
        trigger: str | None,
        risky: bool,
        attribution: np.ndarray,
        features: np.ndarray,
        detected_at: str,
    ) -> list[dict]:
        """The alerts a handed-back event raises: its incident's (when flagged), then its
        actor's entity-risk alert (when the risk is due one)."""
        alerts = []
        if trigger is not None:
            alert = self._settle_flagged(
                event, state, value, is_late, trigger, attribution, features, detected_at
            )
            if alert is not None:
                alerts.append(alert)
        if risky:
            alerts.append(
                self._risk_alert(event, state, value, is_late, attribution, features, detected_at)
            )
        return alerts

    def _settle_flagged(
        self,
        event: AccessEvent,
        state: ActorState,
        value: float,
        is_late: bool,
        trigger: str,
        attribution: np.ndarray,
        features: np.ndarray,
        detected_at: str,
    ) -> dict | None:
        """Open, extend or escalate the actor's incident; the alert message, if one is due."""
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
        if not step.emit:
            return None
        return self._alert(
            event, state, value, is_late, step, attribution, detected_at, trigger, features
        )

    def _alert(
        self, event, state, value, is_late, step, attribution, detected_at, trigger, features
    ) -> dict:
        model = self.model
        role = model.peers.profile(event.actor_role)
        warming_up = state.hist_n < MATURE_EVENTS or state.active_days < WARMUP_ACTIVE_DAYS
        typical = model.manifest.feature_p95
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
            "kind": "event",
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
            "event": self._event_fields(event),
        }

    def _event_fields(self, event: AccessEvent) -> dict:
        """The alert's copy of the triggering access (ids pseudonymised when configured)."""
        return {
            "action": event.action,
            "resource_type": event.resource_type,
            "resource_id": self._pseudonym(event.resource_id),
            "subject_id": self._pseudonym(event.subject_id),
            "record_count": event.record_count,
            "fields": list(event.fields),
            "ticket_id": event.ticket_id,
            "source_ip": self._pseudonym(event.source_ip),
            "device_id": event.device_id,
            "outcome": event.outcome,
        }

    def _risk_alert(
        self,
        event: AccessEvent,
        state: ActorState,
        value: float,
        is_late: bool,
        attribution: np.ndarray,
        features: np.ndarray,
        detected_at: str,
    ) -> dict:
        """The entity-risk alert (:mod:`models.risk_alert`) raised at ``event``."""
        model = self.model
        risk = model.manifest.risk
        typical = model.manifest.feature_p95
        reasons = explain(
            event,
            state,
            model.peers.profile(event.actor_role),
            attribution,
            model.attribution_baseline,
            features,
            None if typical is None else np.asarray(typical),
        )
        evidence = evidence_timeline(state, self._pair_names, rfc3339)
        scored = risk_fields(state, risk)
        first = evidence[0]["timestamp"] if evidence else rfc3339(event.ts)
        leading = reasons[0].text if reasons else None
        return {
            "schema": ALERT_SCHEMA,
            "kind": "entity_risk",
            "alert_id": risk_alert_id(event.actor_id, event.event_id),
            "status": "new",
            "event_id": event.event_id,
            "event_ids": [event.event_id],
            "actor_id": event.actor_id,
            "actor_role": event.actor_role,
            "actor_team": event.actor_team,
            "timestamp": rfc3339(event.ts),
            "first_seen": min(first, rfc3339(event.ts)),
            "last_seen": rfc3339(event.ts),
            "detected_at": detected_at,
            "score": scored["score"],
            "threshold": 0.5,
            "severity": scored["severity"],
            "model_version": model.version,
            "event_count": len(evidence),
            "max_score": max([item["score"] for item in evidence], default=round(value, 6)),
            "warming_up": state.active_days < WARMUP_ACTIVE_DAYS,
            "confidence": round(min(1.0, state.hist_n / (4.0 * MATURE_EVENTS)), 3),
            "late": is_late,
            "trigger": "entity_risk",
            "sustained_evidence": round(state.cusum, 4),
            "risk": scored["risk"],
            "evidence": evidence,
            "reasons": [reason.as_dict() for reason in reasons],
            "summary": risk_summary(event.actor_id, state, risk, evidence, leading),
            "event": self._event_fields(event),
        }
