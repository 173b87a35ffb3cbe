"""How each feature is put into words for an analyst: observed value, usual value, phrase.

Each function here is the ``describe`` of one feature's declaration in
:mod:`insiderwatch.models.features`; :mod:`insiderwatch.models.explain` ranks the features
and calls them. They recompute what the feature saw from the same state and the helpers of
:mod:`insiderwatch.models.feature_inputs`, so the numbers an alert shows are the ones the
model scored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from insiderwatch.models.events import AccessEvent
from insiderwatch.models.feature_inputs import (
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
    PAIR_TAU_DAYS,
    W_DENIED,
    W_EVENTS,
    W_NEW_RESOURCES,
    W_NO_TICKET,
    W_RARE,
    W_RECORDS,
    ActorState,
    pair_count_3d,
    pair_count_24h,
    subject_writes_24h,
)

__all__ = ["Describer", "Phrase", "describe_with"]

# "without a ticket" is said of an access only when the actor's share of accesses without one
# (shrunk to the role's) is below this.
NO_TICKET_NEWS_BELOW = 0.5


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
Describer = Callable[[AccessEvent, ActorState, RoleProfile, _Usual], Phrase]


def describe_records_vs_role(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    expected = role.p99_records_per_event
    text = (
        f"{event.record_count:,} records in one {u.what} (role's 99th percentile: {expected:,.0f})"
    )
    return event.record_count, expected, text


def describe_events_10m(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    value = _w(state, 0, W_EVENTS)
    return (
        value,
        u.hour / 6,
        f"{_accesses(value)} in ~10 min (usual for this actor: {u.hour / 6:.1f})",
    )


def describe_records_1h(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    value = _w(state, 1, W_RECORDS)
    text = f"{value:,.0f} records in ~1 h (usual for this actor: {u.records_hour:,.0f} per hour)"
    return value, u.records_hour, text


def describe_new_resources_1h(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    value = _w(state, 1, W_NEW_RESOURCES)
    text = (
        f"{value:.0f} distinct records (latest: {event.resource_type}) in ~1 h "
        f"(usual for this actor: {u.hour:.0f} per hour)"
    )
    return value, u.hour, text


def describe_no_ticket_1h(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    value, share = _w(state, 1, W_NO_TICKET), u.no_ticket_share
    text = (
        f"{value:.0f} of {u.events_1h:.0f} accesses in ~1 h without a ticket "
        f"(usual for this actor: {share:.0%} without)"
    )
    return value, u.events_1h * share, text


def describe_rare_accesses(tau_index: int, span: str) -> Describer:
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


def describe_access_surprise(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
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


def describe_no_ticket_24h(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    value, expected = _w(state, 2, W_NO_TICKET), u.day * u.no_ticket_share
    # where tickets are not the rule (a feed without them), this is the day's volume
    ticket = " without a ticket" if u.no_ticket_share < NO_TICKET_NEWS_BELOW else ""
    text = f"{_accesses(value)}{ticket} in ~24 h (usual for this actor: {expected:.0f} per day)"
    return value, expected, text


def describe_pair_share_24h(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    value = pair_count_24h(state, event.pair_hash)
    day_events = _w(state, 2, W_EVENTS)
    usual_share = actor_pair_probability(event, state, role)
    text = (
        f"{value:,.0f} of {day_events:,.0f} accesses in ~24 h were {u.what} (usual for this "
        f"actor: {usual_share:.0%} of its accesses)"
    )
    return value, day_events * usual_share, text


def describe_pair_24h(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    value = pair_count_24h(state, event.pair_hash)
    usual = u.day * actor_pair_probability(event, state, role)
    text = f"{value:,.0f} {u.what} in ~24 h (usual for this actor: {usual:,.1f} a day)"
    return value, usual, text


def describe_pair_3d(event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual) -> Phrase:
    value = pair_count_3d(state, event.pair_hash)
    usual = PAIR_TAU_DAYS * u.day * actor_pair_probability(event, state, role)
    text = (
        f"{value:,.0f} {u.what} in ~{PAIR_TAU_DAYS:g} days (usual for this actor: "
        f"{usual:,.1f} in as many days)"
    )
    return value, usual, text


def describe_subject_writes_24h(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    value = subject_writes_24h(state, event)
    # The subject itself is in the alert's event (pseudonymised there when configured).
    whose = "subject (outside party)" if event.subject_id else "record"
    text = f"{value:,.0f} writes ({event.action}) in ~24 h on the same {whose}"
    return value, 1.0, text


def describe_access_role_rarity(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    p = role.pair_probability(event.pair)
    if p <= role.unseen_p:
        return p, 1.0, f"{u.what}: never done by anyone in the role during training"
    return p, 1.0, f"{u.what} is {p:.2%} of the role's accesses"


def describe_field_role_rarity(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    rarest = min(event.fields, key=role.field_probability, default="")
    p = role.field_probability(rarest) if rarest else 1.0
    if p <= role.unseen_p:
        return p, 1.0, f"returned field '{rarest}', never returned to the role during training"
    return p, 1.0, f"returned field '{rarest}' ({p:.2%} of the role's accesses do)"


def describe_time_novelty(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    seconds, hist_n = int(event.ts), state.hist_n
    hour, weekday = (seconds % DAY_S) // 3600, (seconds // DAY_S + 3) % 7
    at_hour, on_day = state.hours[hour], state.weekdays[weekday]
    text = (
        f"at {hour:02d}:00 UTC on a {_WEEKDAYS[weekday]} (of this actor's {hist_n} past "
        f"accesses, {at_hour} at that hour and {on_day} on that day of the week)"
    )
    return at_hour, hist_n, text


def describe_new_ip_or_device(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    text = f"from an IP or device never seen for this actor ({event.source_ip}, {event.device_id})"
    return 1.0, 0.0, text


def describe_denied_1h(
    event: AccessEvent, state: ActorState, role: RoleProfile, u: _Usual
) -> Phrase:
    value = _w(state, 1, W_DENIED)
    count = round(value)
    return value, 0.0, f"{count} denied or failed {'access' if count == 1 else 'accesses'} in ~1 h"


def describe_with(
    describe: Describer, event: AccessEvent, state: ActorState, role: RoleProfile
) -> Phrase:
    """Run one feature's ``describe`` with what is usual for the actor."""
    return describe(event, state, role, _usual(event, state, role))
