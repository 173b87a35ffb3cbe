"""The entity-risk alert: what an analyst reads when an actor's risk crosses its limit.

It is an alert of the same contract as a per-event alert (``stream/alert.schema.json``), with
``kind: "entity_risk"`` and ``trigger: "entity_risk"``, plus the risk itself (``risk``) and
the evidence as a timeline (``evidence``: the strongest contributing events of the last
week, with their time, access and score). Its id depends only on the actor and the event
that crossed the limit, so a replay gives the same id.
"""

from __future__ import annotations

import hashlib
import math

from insiderwatch.models.manifest import Risk
from insiderwatch.models.risk import RISK_DAYS_KEPT, days_with_risk
from insiderwatch.models.state import ActorState

__all__ = ["risk_alert_id", "risk_fields", "risk_summary", "evidence_timeline", "RISK_SEVERITY"]

# Severity by how far the risk is past its limit (ratio of risk to limit).
RISK_SEVERITY = ((4.0, "critical"), (2.0, "high"), (1.25, "medium"), (0.0, "low"))


def risk_alert_id(actor_id: str, event_id: str) -> str:
    """Deterministic id of the entity-risk alert raised at ``event_id``.

    >>> risk_alert_id("alice", "evt-9")
    'iwr-0e2e04fc4252a5a38ce4a18671d1279e'
    """
    digest = hashlib.sha256(f"{actor_id}\x1fentity_risk\x1f{event_id}".encode()).hexdigest()
    return "iwr-" + digest[:32]


def risk_ratio(state: ActorState, risk: Risk) -> float:
    """How far past its limit the actor's risk is (the larger of the day and week ratios)."""
    return max(state.risk_day / risk.day_limit, state.risk_week / risk.week_limit)


def risk_fields(state: ActorState, risk: Risk) -> dict:
    """The alert's ``risk`` object, and its ``score`` and ``severity``.

    ``score`` maps the ratio r to r / (1 + r): 0.5 at the limit, towards 1 beyond it.

    >>> r = Risk(1.0, 0.99, {}, 0.5, 1.0, 2.0, 604800.0, 86400.0, 604800.0, 3)
    >>> fields = risk_fields(ActorState(0.0, 0.0, risk_day=0.5, risk_week=5.0, risk_days=7), r)
    >>> fields["score"], fields["severity"], fields["risk"]["days_with_risk"]
    (0.714286, 'high', 3)
    """
    ratio = risk_ratio(state, risk)
    severity = next(name for floor, name in RISK_SEVERITY if ratio >= floor)
    return {
        "score": round(ratio / (1.0 + ratio), 6),
        "severity": severity,
        "risk": {
            "day": round(state.risk_day, 6),
            "week": round(state.risk_week, 6),
            "day_limit": round(risk.day_limit, 6),
            "week_limit": round(risk.week_limit, 6),
            "ratio": round(ratio, 4),
            "days_with_risk": days_with_risk(state),
            "days_considered": RISK_DAYS_KEPT,
        },
    }


def evidence_timeline(
    state: ActorState, pair_names: dict[int, str], rfc3339
) -> list[dict[str, object]]:
    """The kept evidence in time order: ``{"timestamp", "access", "score"}``; ``access`` is
    the (action, resource type) pair when the model knows its name.

    >>> s = ActorState(0.0, 0.0, risk_evidence=[[90, 700000, 5], [30, 650000, 6]])
    >>> evidence_timeline(s, {5: "view customer_contact"}, str)
    [{'timestamp': '30.0', 'access': 'an access of a kind the role never made in training', 'score': 0.65}, {'timestamp': '90.0', 'access': 'view customer_contact', 'score': 0.7}]
    """
    return [
        {
            "timestamp": rfc3339(float(seconds)),
            "access": pair_names.get(pair, "an access of a kind the role never made in training"),
            "score": micro / 1e6,
        }
        for seconds, micro, pair in sorted(state.risk_evidence)
    ]


def risk_summary(
    actor_id: str, state: ActorState, risk: Risk, evidence: list[dict], leading: str | None
) -> str:
    """The sentence an analyst reads first.

    >>> r = Risk(1.0, 0.99, {}, 0.5, 1.0, 2.0, 604800.0, 86400.0, 604800.0, 3)
    >>> s = ActorState(0.0, 0.0, risk_day=0.4, risk_week=3.0, risk_days=0b1011)
    >>> ev = [{"timestamp": "t", "access": "view customer_contact", "score": 0.7}]
    >>> risk_summary("bob", s, r, ev, "42 view on customer_contact in ~24 h (usual: 20)")
    'bob: unusual accesses on 3 of the last 7 days add up to 1.5x the risk limit (mostly view customer_contact); now: 42 view on customer_contact in ~24 h (usual: 20)'
    """
    ratio = risk_ratio(state, risk)
    days = days_with_risk(state)
    span = "today" if days <= 1 else f"on {days} of the last {RISK_DAYS_KEPT} days"
    accesses = [item["access"] for item in evidence]
    common = max(accesses, key=accesses.count) if accesses else None
    text = f"{actor_id}: unusual accesses {span} add up to {_times(ratio)} the risk limit"
    if common:
        text += f" (mostly {common})"
    if leading:
        text += f"; now: {leading}"
    return text


def _times(ratio: float) -> str:
    return f"{math.floor(ratio * 10) / 10:.1f}x"
