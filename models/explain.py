"""Explanations: turn the forest's per-feature attribution into reasons and one sentence.

The *ranking* comes from the model (path attribution minus its training mean, see
:func:`models.forest.path_attribution`); this module only phrases each ranked feature with
the observed value and the actor's or the role's baseline, so an analyst reads "412
accesses in ~1 h (usual for this actor: 9 per hour)" rather than a feature name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from insiderwatch.models.events import AccessEvent
from insiderwatch.models.features import (
    FEATURE_NAMES,
    PRIOR_EVENTS,
    WORKING_HOURS_PER_DAY,
    access_surprise,
    actor_pair_probability,
    is_rare_access,
    typical_day,
)
from insiderwatch.models.peers import RoleProfile
from insiderwatch.models.state import (
    DAY_S,
    N_QUANTITIES,
    W_DENIED,
    W_EVENTS,
    W_NEW_RESOURCES,
    W_NO_TICKET,
    W_RARE,
    W_RECORDS,
    ActorState,
    pair_count_24h,
)

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


# "without a ticket" is said of an access only when the actor's share of accesses without one
# (shrunk to the role's) is below this.
NO_TICKET_NEWS_BELOW = 0.5

_WINDOW_COUNTS = frozenset(
    {
        "events_10m_vs_actor",
        "records_1h_vs_actor",
        "new_resources_1h_vs_actor",
        "no_ticket_1h_vs_actor",
        "rare_accesses_1h",
        "rare_accesses_24h",
        "no_ticket_24h_vs_actor",
        "denied_1h",
    }
)


def _accesses(value: float) -> str:
    """A decayed count in words.

    >>> _accesses(1.2), _accesses(4.6)
    ('1 access', '5 accesses')
    """
    count = round(value)
    return f"{count:,} access" if count == 1 else f"{count:,} accesses"


def _are(value: float) -> str:
    return "is" if round(value) == 1 else "are"


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _w(state: ActorState, tau_index: int, quantity: int) -> float:
    return state.win[tau_index * N_QUANTITIES + quantity]


def _describe(
    name: str, event: AccessEvent, state: ActorState, role: RoleProfile
) -> tuple[float, float, str]:
    """Observed value, expected value and a phrase for feature ``name``."""
    day_typ = typical_day(state, role.median_day_events, state.ewma_day_events)
    hour_typ = day_typ / WORKING_HOURS_PER_DAY
    records_hour_typ = (
        typical_day(state, role.median_day_records, state.ewma_day_records) / WORKING_HOURS_PER_DAY
    )
    hist_n = state.hist_n
    # The actor's share of accesses without a ticket, shrunk to the role's (as the features).
    no_ticket_share = (state.no_ticket_n + PRIOR_EVENTS * role.no_ticket_share) / (
        hist_n + PRIOR_EVENTS
    )
    events_1h = _w(state, 1, W_EVENTS)
    what = f"{event.action} on {event.resource_type}"
    if name == "records_vs_role":
        expected = role.p99_records_per_event
        return (
            event.record_count,
            expected,
            (
                f"{event.record_count:,} records in one {what} (role's 99th percentile: {expected:,.0f})"
            ),
        )
    if name == "events_10m_vs_actor":
        value = _w(state, 0, W_EVENTS)
        return (
            value,
            hour_typ / 6,
            f"{_accesses(value)} in ~10 min (usual for this actor: {hour_typ / 6:.1f})",
        )
    if name == "records_1h_vs_actor":
        value = _w(state, 1, W_RECORDS)
        return (
            value,
            records_hour_typ,
            (
                f"{value:,.0f} records in ~1 h (usual for this actor: {records_hour_typ:,.0f} per hour)"
            ),
        )
    if name == "new_resources_1h_vs_actor":
        value = _w(state, 1, W_NEW_RESOURCES)
        return (
            value,
            hour_typ,
            (
                f"{value:.0f} distinct records (latest: {event.resource_type}) in ~1 h "
                f"(usual for this actor: {hour_typ:.0f} per hour)"
            ),
        )
    if name == "no_ticket_1h_vs_actor":
        value = _w(state, 1, W_NO_TICKET)
        share = no_ticket_share
        return (
            value,
            events_1h * share,
            (
                f"{value:.0f} of {events_1h:.0f} accesses in ~1 h without a ticket (usual for this actor: {share:.0%} without)"
            ),
        )
    if name in ("rare_accesses_1h", "rare_accesses_24h"):
        tau_index, span = (1, "~1 h") if name == "rare_accesses_1h" else (2, "~24 h")
        value = _w(state, tau_index, W_RARE)
        if is_rare_access(event, role, access_surprise(event, state, role)):
            value += 1.0  # counted like the feature does: this access too (see feature_row)
        return (
            value,
            0.0,
            f"{_accesses(value)} in {span} that {_are(value)} rare for this actor or its role "
            f"(latest: {what})",
        )
    if name == "access_surprise":
        surprise = access_surprise(event, state, role)
        fields = f" returning {', '.join(event.fields)}" if event.fields else ""
        if event.ticket_id:
            ticket = " with a ticket"
        else:
            # A missing ticket is news only where tickets are the rule: in a feed that has no
            # tickets (or for an actor who mostly works without), saying so explains nothing.
            ticket = " without a ticket" if no_ticket_share < NO_TICKET_NEWS_BELOW else ""
        return (
            surprise,
            0.0,
            f"{what}{fields}{ticket}: about 1 in {math.exp(surprise):,.0f} "
            "of this actor's accesses look like this",
        )
    if name == "no_ticket_24h_vs_actor":
        value = _w(state, 2, W_NO_TICKET)
        share = no_ticket_share
        return (
            value,
            day_typ * share,
            (
                f"{_accesses(value)} without a ticket in ~24 h (usual for this actor: {day_typ * share:.0f} per day)"
            ),
        )
    if name == "pair_share_24h_vs_actor":
        value = pair_count_24h(state, event.pair_hash)
        day_events = _w(state, 2, W_EVENTS)
        usual_share = actor_pair_probability(event, state, role)
        return (
            value,
            day_events * usual_share,
            f"{value:,.0f} of {day_events:,.0f} accesses in ~24 h were {what} (usual for this "
            f"actor: {usual_share:.0%} of its accesses)",
        )
    if name == "access_role_rarity":
        p = role.pair_probability(event.pair)
        if p <= role.unseen_p:
            return p, 1.0, f"{what}: never done by anyone in the role during training"
        return p, 1.0, f"{what} is {p:.2%} of the role's accesses"
    if name == "field_role_rarity":
        rarest = min(event.fields, key=role.field_probability, default="")
        p = role.field_probability(rarest) if rarest else 1.0
        if p <= role.unseen_p:
            return p, 1.0, f"returned field '{rarest}', never returned to the role during training"
        return p, 1.0, f"returned field '{rarest}' ({p:.2%} of the role's accesses do)"
    if name == "time_novelty":
        seconds = int(event.ts)
        hour, weekday = (seconds % DAY_S) // 3600, (seconds // DAY_S + 3) % 7
        at_hour, on_day = state.hours[hour], state.weekdays[weekday]
        return (
            at_hour,
            hist_n,
            f"at {hour:02d}:00 UTC on a {_WEEKDAYS[weekday]} (of this actor's {hist_n} past "
            f"accesses, {at_hour} at that hour and {on_day} on that day of the week)",
        )
    if name == "new_ip_or_device":
        return (
            1.0,
            0.0,
            f"from an IP or device never seen for this actor ({event.source_ip}, {event.device_id})",
        )
    if name == "denied_1h":
        value = _w(state, 1, W_DENIED)
        return (
            value,
            0.0,
            f"{round(value)} denied or failed {'access' if round(value) == 1 else 'accesses'} in ~1 h",
        )
    raise KeyError(name)


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
        name = FEATURE_NAMES[int(index)]
        observed, expected, text = _describe(name, event, state, role)
        if text in seen_texts or (name in _WINDOW_COUNTS and round(observed) == 0):
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
