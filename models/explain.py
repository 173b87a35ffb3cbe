"""Explanations: turn the forest's per-feature attribution into reasons and one sentence.

The *ranking* comes from the model (path attribution minus its training mean, see
:func:`models.forest.path_attribution`); this module only phrases each ranked feature with
the observed value and the actor's or the role's baseline, so an analyst reads "412
accesses in ~1 h (usual for this actor: 9 per hour)" rather than a feature name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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


@dataclass(frozen=True)
class _Usual:
    """What is usual for the actor, shrunk to its role as the features shrink it."""

    what: str  # "read on customer_contact"
    hour: float  # accesses per working hour
    day: float  # accesses per day
    records_hour: float
    no_ticket_share: float
    events_1h: float


def _usual(event: AccessEvent, state: ActorState, role: RoleProfile) -> _Usual:
    day = typical_day(state, role.median_day_events, state.ewma_day_events)
    records_day = typical_day(state, role.median_day_records, state.ewma_day_records)
    no_ticket_share = (state.no_ticket_n + PRIOR_EVENTS * role.no_ticket_share) / (
        state.hist_n + PRIOR_EVENTS
    )
    return _Usual(
        what=f"{event.action} on {event.resource_type}",
        hour=day / WORKING_HOURS_PER_DAY,
        day=day,
        records_hour=records_day / WORKING_HOURS_PER_DAY,
        no_ticket_share=no_ticket_share,
        events_1h=_w(state, 1, W_EVENTS),
    )


Phrase = tuple[float, float, str]
_Describer = Callable[[AccessEvent, ActorState, RoleProfile, _Usual], Phrase]


def _records_vs_role(event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual) -> Phrase:
    expected = role.p99_records_per_event
    text = (
        f"{event.record_count:,} records in one {u.what} (role's 99th percentile: {expected:,.0f})"
    )
    return event.record_count, expected, text


def _events_10m(event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual) -> Phrase:
    value = _w(state, 0, W_EVENTS)
    return (
        value,
        u.hour / 6,
        f"{_accesses(value)} in ~10 min (usual for this actor: {u.hour / 6:.1f})",
    )


def _records_1h(event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual) -> Phrase:
    value = _w(state, 1, W_RECORDS)
    text = f"{value:,.0f} records in ~1 h (usual for this actor: {u.records_hour:,.0f} per hour)"
    return value, u.records_hour, text


def _new_resources_1h(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    value = _w(state, 1, W_NEW_RESOURCES)
    text = (
        f"{value:.0f} distinct records (latest: {event.resource_type}) in ~1 h "
        f"(usual for this actor: {u.hour:.0f} per hour)"
    )
    return value, u.hour, text


def _no_ticket_1h(event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual) -> Phrase:
    value, share = _w(state, 1, W_NO_TICKET), u.no_ticket_share
    text = (
        f"{value:.0f} of {u.events_1h:.0f} accesses in ~1 h without a ticket "
        f"(usual for this actor: {share:.0%} without)"
    )
    return value, u.events_1h * share, text


def _rare_accesses(tau_index: int, span: str) -> _Describer:
    def describe(event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual) -> Phrase:
        value = _w(state, tau_index, W_RARE)
        if is_rare_access(event, role, access_surprise(event, state, role)):
            value += 1.0  # counted like the feature does: this access too (see feature_row)
        text = (
            f"{_accesses(value)} in {span} that {_are(value)} rare for this actor or its role "
            f"(latest: {u.what})"
        )
        return value, 0.0, text

    return describe


def _access_surprise(event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual) -> Phrase:
    surprise = access_surprise(event, state, role)
    fields = f" returning {', '.join(event.fields)}" if event.fields else ""
    if event.ticket_id:
        ticket = " with a ticket"
    else:
        # A missing ticket is news only where tickets are the rule: in a feed that has no
        # tickets (or for an actor who mostly works without), saying so explains nothing.
        ticket = " without a ticket" if u.no_ticket_share < NO_TICKET_NEWS_BELOW else ""
    text = (
        f"{u.what}{fields}{ticket}: about 1 in {math.exp(surprise):,.0f} "
        "of this actor's accesses look like this"
    )
    return surprise, 0.0, text


def _no_ticket_24h(event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual) -> Phrase:
    value, expected = _w(state, 2, W_NO_TICKET), u.day * u.no_ticket_share
    text = (
        f"{_accesses(value)} without a ticket in ~24 h "
        f"(usual for this actor: {expected:.0f} per day)"
    )
    return value, expected, text


def _pair_share_24h(event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual) -> Phrase:
    value = pair_count_24h(state, event.pair_hash)
    day_events = _w(state, 2, W_EVENTS)
    usual_share = actor_pair_probability(event, state, role)
    text = (
        f"{value:,.0f} of {day_events:,.0f} accesses in ~24 h were {u.what} (usual for this "
        f"actor: {usual_share:.0%} of its accesses)"
    )
    return value, day_events * usual_share, text


def _access_role_rarity(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    p = role.pair_probability(event.pair)
    if p <= role.unseen_p:
        return p, 1.0, f"{u.what}: never done by anyone in the role during training"
    return p, 1.0, f"{u.what} is {p:.2%} of the role's accesses"


def _field_role_rarity(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    rarest = min(event.fields, key=role.field_probability, default="")
    p = role.field_probability(rarest) if rarest else 1.0
    if p <= role.unseen_p:
        return p, 1.0, f"returned field '{rarest}', never returned to the role during training"
    return p, 1.0, f"returned field '{rarest}' ({p:.2%} of the role's accesses do)"


def _time_novelty(event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual) -> Phrase:
    seconds, hist_n = int(event.ts), state.hist_n
    hour, weekday = (seconds % DAY_S) // 3600, (seconds // DAY_S + 3) % 7
    at_hour, on_day = state.hours[hour], state.weekdays[weekday]
    text = (
        f"at {hour:02d}:00 UTC on a {_WEEKDAYS[weekday]} (of this actor's {hist_n} past "
        f"accesses, {at_hour} at that hour and {on_day} on that day of the week)"
    )
    return at_hour, hist_n, text


def _new_ip_or_device(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    text = f"from an IP or device never seen for this actor ({event.source_ip}, {event.device_id})"
    return 1.0, 0.0, text


def _denied_1h(event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual) -> Phrase:
    value = _w(state, 1, W_DENIED)
    count = round(value)
    return value, 0.0, f"{count} denied or failed {'access' if count == 1 else 'accesses'} in ~1 h"


# One phrase per feature of models/features.py (FEATURE_NAMES; a test holds the two equal).
DESCRIBERS: dict[str, _Describer] = {
    "records_vs_role": _records_vs_role,
    "events_10m_vs_actor": _events_10m,
    "records_1h_vs_actor": _records_1h,
    "new_resources_1h_vs_actor": _new_resources_1h,
    "no_ticket_1h_vs_actor": _no_ticket_1h,
    "rare_accesses_1h": _rare_accesses(1, "~1 h"),
    "rare_accesses_24h": _rare_accesses(2, "~24 h"),
    "access_surprise": _access_surprise,
    "no_ticket_24h_vs_actor": _no_ticket_24h,
    "pair_share_24h_vs_actor": _pair_share_24h,
    "access_role_rarity": _access_role_rarity,
    "field_role_rarity": _field_role_rarity,
    "time_novelty": _time_novelty,
    "new_ip_or_device": _new_ip_or_device,
    "denied_1h": _denied_1h,
}


def _describe(
    name: str, event: AccessEvent, state: ActorState, role: RoleProfile
) -> tuple[float, float, str]:
    """Observed value, expected value and a phrase for feature ``name``."""
    return DESCRIBERS[name](event, state, role, _usual(event, state, role))


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
