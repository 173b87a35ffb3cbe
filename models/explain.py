"""Explanations: turn the forest's per-feature attribution into reasons and one sentence.

The *ranking* comes from the model (path attribution minus its training mean, see
:func:`models.forest.path_attribution`); this module only phrases each ranked feature with
the observed value and the actor's or the role's baseline, so an analyst reads "412
accesses in ~1 h (usual for this actor: 9 per hour)" rather than a feature name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from insiderwatch.models.events import AccessEvent
from insiderwatch.models.feature_phrases import Phrase, describe_with
from insiderwatch.models.features import FEATURE_NAMES, FEATURES
from insiderwatch.models.peers import RoleProfile
from insiderwatch.models.state import ActorState

__all__ = ["Reason", "explain", "summarise"]


@dataclass(frozen=True, slots=True)
class Reason:
    """One contributing feature: what was seen, what is normal, and how much it mattered."""

    feature: str
    observed: float
    expected: float
    contribution: float
    text: str

    def as_dict(self) -> dict:
        return {
            "feature": self.feature,
            "observed": round(self.observed, 3),
            "expected": round(self.expected, 3),
            "contribution": round(self.contribution, 4),
            "text": self.text,
        }


def _describe(name: str, event: AccessEvent, state: ActorState, role: RoleProfile) -> Phrase:
    """Observed value, expected value and a phrase for feature ``name``."""
    return describe_with(FEATURES[FEATURE_NAMES.index(name)].describe, event, state, role)


def explain(
    event: AccessEvent,
    state: ActorState,
    role: RoleProfile,
    attribution: np.ndarray,
    attribution_baseline: np.ndarray,
    features: np.ndarray | None = None,
    typical: np.ndarray | None = None,
    top_k: int = 3,
) -> list[Reason]:
    """Top ``top_k`` features by attribution above their training mean, phrased.

    Every feature is "higher = more unusual". A feature whose value is not above what is
    common in training (``typical``: the 95th percentile of each feature over the training
    events) did not make this event unusual, even if the forest split on it along the way
    ("search on seller_account is 12% of the role's accesses" explains nothing), so it is
    not reported, unless no feature is above it; then the top features by attribution are.
    """
    excess = np.asarray(attribution) - np.asarray(attribution_baseline)
    order = [int(i) for i in np.argsort(-excess, kind="stable")]
    if features is not None and typical is not None:
        unusual = [i for i in order if features[i] > typical[i]]
        order = unusual or order
    reasons: list[Reason] = []
    seen_texts: set[str] = set()
    for index in order:
        if len(reasons) >= top_k:
            break
        if excess[index] <= 0 and reasons:
            break
        feature = FEATURES[int(index)]
        name = feature.name
        observed, expected, text = describe_with(feature.describe, event, state, role)
        if text in seen_texts or (feature.window_count and round(observed) == 0):
            # A decayed window that rounds to "0 accesses" explains nothing to an analyst.
            continue
        seen_texts.add(text)
        reasons.append(Reason(name, float(observed), float(expected), float(excess[index]), text))
    return reasons


def summarise(
    event: AccessEvent, reasons: list[Reason], warming_up: bool, sustained: bool = False
) -> str:
    """One plain sentence for the analyst.

    >>> from insiderwatch.models.events import AccessEvent
    >>> e = AccessEvent("e1", "2026-01-05T02:00:00Z", "alice", "export", "customer_contact",
    ...                 actor_role="customer_support")
    >>> summarise(e, [Reason("no_ticket", 1, 0, 0.1, "export on customer_contact without a ticket")], False)
    'customer_support alice: export on customer_contact without a ticket.'
    """
    who = f"{event.actor_role} {event.actor_id}"
    body = (
        "; ".join(reason.text for reason in reasons)
        or f"unusual {event.action} on {event.resource_type}"
    )
    suffix = " (little history for this actor yet: low confidence)" if warming_up else ""
    lead = "sustained unusual activity; " if sustained else ""
    return f"{who}: {lead}{body}{suffix}."
