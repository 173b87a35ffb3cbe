"""The quantities the features are computed from, and the helpers that estimate them.

:data:`FEATURE_INPUTS` names each quantity. :func:`feature_inputs` computes them for one
event from an :class:`~insiderwatch.models.state.ActorState` (the Python path); the compiled
kernel (:mod:`insiderwatch.models.compiled`) computes the same quantities from a state row,
in the same order, and ``tests/test_compiled.py`` holds the two to the same bits. The
features themselves are formulas over these quantities, declared once in
:mod:`insiderwatch.models.features`.

Actor baselines are shrunk towards the role's profile with :data:`PRIOR_EVENTS`
pseudo-events, so a new hire doing what the role does is not "novel", while an
established actor doing something the role never does is.
"""

from __future__ import annotations

import math

from insiderwatch.models.events import AccessEvent
from insiderwatch.models.peers import PROBABILITY_FLOOR, RoleProfile
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
    is_known,
    pair_count_3d,
    pair_count_24h,
    subject_writes_24h,
)

__all__ = [
    "FEATURE_INPUTS",
    "MATURE_EVENTS",
    "PRIOR_EVENTS",
    "RARE_SURPRISAL",
    "WORKING_HOURS_PER_DAY",
    "access_surprise",
    "actor_pair_probability",
    "feature_inputs",
    "field_role_rarity",
    "is_rare_access",
    "role_rarities",
    "role_surprise",
    "time_novelty",
    "typical_day",
]

PRIOR_EVENTS = 20.0
PRIOR_DAYS = 3.0
MATURE_EVENTS = 30
WORKING_HOURS_PER_DAY = 8.0
# An access with p < 0.1% for the actor (access_surprise) or the role (role_surprise) is rare.
RARE_SURPRISAL = math.log(1000.0)
_TAU_10M, _TAU_1H, _TAU_24H = 0, 1, 2

# name -> meaning, in the order feature_inputs returns them and the formulas take them.
FEATURE_INPUTS: dict[str, str] = {
    "record_count": "records this access returned",
    "p99_records": "the role's 99th percentile of records per access",
    "events_10m": "the actor's accesses in the last ~10 min (decayed), this one included",
    "events_1h": "the actor's accesses in the last ~1 h (decayed)",
    "events_24h": "the actor's accesses in the last ~24 h (decayed)",
    "records_1h": "records returned to the actor in the last ~1 h (decayed)",
    "new_resources_1h": "distinct records not recently seen, last ~1 h (decayed)",
    "no_ticket_1h": "accesses without a ticket in the last ~1 h (decayed)",
    "no_ticket_24h": "accesses without a ticket in the last ~24 h (decayed)",
    "denied_1h": "denied or failed accesses in the last ~1 h (decayed)",
    "rare_1h": "rare accesses that raised no alert, last ~1 h, plus this one if rare",
    "rare_24h": "rare accesses that raised no alert, last ~24 h, plus this one if rare",
    "pair_count_24h": "accesses of this (action, resource type) in the last ~24 h",
    "pair_count_3d": "accesses of this (action, resource type) in the last ~3 days (decayed)",
    "hour_events_typ": "the actor's usual accesses per working hour (shrunk to the role)",
    "hour_records_typ": "the actor's usual records per working hour (shrunk to the role)",
    "day_events_typ": "the actor's usual accesses per day (shrunk to the role)",
    "no_ticket_share": "the actor's usual share of accesses without a ticket (shrunk)",
    "p_pair": "the actor's usual share of this (action, resource type) (shrunk)",
    "pair_rarity": "-ln of the role's share of this (action, resource type)",
    "field_rarity": "-ln of the role's share of accesses returning the rarest field",
    "time_novelty": "-ln p of this hour of day plus this day of week for the actor",
    "surprise": "-ln p of the whole access for the actor (access_surprise)",
    "new_ip": "1 if an established actor's IP was never seen, else 0",
    "new_device": "1 if an established actor's device was never seen, else 0",
    "subject_writes_24h": "the actor's writes on this access's subject in the last ~24 h "
    "(decayed), this one included; 0 for a read",
    "role_pulse": "how far the role's traffic of the last day runs above its usual level "
    "(ln ratio, models.pulse)",
}


def typical_day(state: ActorState, role_median: float, actor_value: float) -> float:
    """Actor's typical daily amount, shrunk towards the role median when history is short.

    >>> typical_day(ActorState(0.0, 0.0, active_days=0), 40.0, 0.0)
    40.0
    >>> typical_day(ActorState(0.0, 0.0, active_days=9), 40.0, 20.0)
    25.0
    """
    days = state.active_days
    return (actor_value * days + role_median * PRIOR_DAYS) / (days + PRIOR_DAYS)


def actor_pair_probability(event: AccessEvent, state: ActorState, role: RoleProfile) -> float:
    """The actor's share of accesses that are ``event``'s (action, resource type) pair, shrunk
    towards the role's share with :data:`PRIOR_EVENTS` pseudo-events.

    >>> from insiderwatch.models.peers import RoleProfile
    >>> role = RoleProfile(1, {"view review": 0.25}, [1 / 24] * 24, [1 / 7] * 7, 1, 1, 0.5, 1, {})
    >>> actor_pair_probability(AccessEvent("e", "2026-01-01T00:00:00Z", "a", "view", "review"),
    ...                        ActorState(0.0, 0.0), role)
    0.25
    """
    return (
        state.pairs.get(event.pair_hash, 0) + PRIOR_EVENTS * role.pair_probability(event.pair)
    ) / (state.hist_n + PRIOR_EVENTS)


def access_surprise(
    event: AccessEvent, state: ActorState, role: RoleProfile, p_pair: float | None = None
) -> float:
    """-ln p of the access for this actor: its (action, resource type) pair, its fields and
    its justification, each estimated from the actor's history shrunk towards the role.

    The three parts are treated as independent, so the value adds up small surprises: an
    ordinary pair that returns a field no one in the role returns, without a ticket, is
    more surprising than each part alone. A field counts only if the actor never returned
    it; its surprise is then the role's -ln share of accesses returning it.

    >>> from insiderwatch.models.peers import RoleProfile
    >>> role = RoleProfile(1, {"view review": 0.25}, [1 / 24] * 24, [1 / 7] * 7, 1, 1, 0.5, 1, {})
    >>> round(access_surprise(AccessEvent("e", "2026-01-01T00:00:00Z", "a", "view", "review", ticket_id="T"),
    ...                       ActorState(0.0, 0.0), role), 4)
    1.3863
    """
    if p_pair is None:
        p_pair = actor_pair_probability(event, state, role)
    denominator = state.hist_n + PRIOR_EVENTS
    value = -math.log(p_pair)
    if event.fields:
        field_surprise = 0.0
        for name, name_hash in zip(event.fields, event.field_hashes, strict=True):
            if name_hash not in state.fields_seen:
                field_surprise = max(field_surprise, -math.log(role.field_probability(name)))
        value += field_surprise
    if not event.ticket_id:
        share = (state.no_ticket_n + PRIOR_EVENTS * role.no_ticket_share) / denominator
        value -= math.log(max(share, PROBABILITY_FLOOR))
    return value


def role_surprise(event: AccessEvent, role: RoleProfile) -> float:
    """-ln p of the access for the role: its (action, resource type) pair plus its rarest
    field. Unlike :func:`access_surprise` it does not fade once the actor has done it.

    >>> from insiderwatch.models.peers import RoleProfile
    >>> role = RoleProfile(1, {"view review": 0.25}, [1 / 24] * 24, [1 / 7] * 7, 1, 1, 0.5, 1,
    ...                    {"email": 0.5})
    >>> round(role_surprise(AccessEvent("e", "2026-01-01T00:00:00Z", "a", "view", "review",
    ...                                 fields=("email",)), role), 4)
    2.0794
    """
    pair_rarity, field_rarity = role_rarities(event, role)
    return pair_rarity + field_rarity


def field_role_rarity(event: AccessEvent, role: RoleProfile) -> float:
    """-ln of the role's share of accesses returning the rarest field ``event`` returned.

    >>> from insiderwatch.models.peers import RoleProfile
    >>> role = RoleProfile(1, {}, [1 / 24] * 24, [1 / 7] * 7, 1, 1, 0.5, 1, {"email": 0.5})
    >>> round(field_role_rarity(AccessEvent("e", "2026-01-01T00:00:00Z", "a", "view", "review",
    ...                                     fields=("email",)), role), 4)
    0.6931
    """
    if not event.fields:
        return 0.0
    return max(-math.log(role.field_probability(name)) for name in event.fields)


def role_rarities(event: AccessEvent, role: RoleProfile) -> tuple[float, float]:
    """``(-ln p of the pair for the role, field_role_rarity)``: the two parts of
    :func:`role_surprise`, which :func:`feature_row` also reports one by one.

    >>> from insiderwatch.models.peers import RoleProfile
    >>> role = RoleProfile(1, {"view review": 0.25}, [1 / 24] * 24, [1 / 7] * 7, 1, 1, 0.5, 1,
    ...                    {"email": 0.5})
    >>> [round(v, 4) for v in role_rarities(AccessEvent("e", "2026-01-01T00:00:00Z", "a", "view", "review",
    ...                                                 fields=("email",)), role)]
    [1.3863, 0.6931]
    """
    return -math.log(role.pair_probability(event.pair)), field_role_rarity(event, role)


def is_rare_access(
    event: AccessEvent,
    role: RoleProfile,
    surprise: float,
    rarities: tuple[float, float] | None = None,
) -> bool:
    """Whether the access is rare (p < 0.1%) for the actor (``surprise``, see
    :func:`access_surprise`) or for the role (:func:`role_surprise`; pass ``rarities`` from
    :func:`role_rarities` when already computed)."""
    if surprise > RARE_SURPRISAL:
        return True
    pair_rarity, field_rarity = rarities or role_rarities(event, role)
    return pair_rarity + field_rarity > RARE_SURPRISAL


def time_novelty(state: ActorState, role: RoleProfile, ts: float) -> float:
    """Surprisal of the event's hour of day plus that of its day of the week, for this
    actor, each shrunk to the role's (``PRIOR_EVENTS`` pseudo-events of the role's mix).

    A new actor in a role that works every hour of every day alike: 1 in 24 x 1 in 7.

    >>> from insiderwatch.models.peers import RoleProfile
    >>> from insiderwatch.models.state import ActorState
    >>> role = RoleProfile(1, {"view review": 1.0}, [1 / 24] * 24, [1 / 7] * 7, 1, 1, 0.5, 1, {})
    >>> round(time_novelty(ActorState(0.0, 0.0), role, 0.0), 6) == round(math.log(24 * 7), 6)
    True
    """
    seconds = int(ts)
    hour = (seconds % DAY_S) // 3600
    weekday = (seconds // DAY_S + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    denominator = state.hist_n + PRIOR_EVENTS
    return -math.log(
        (state.hours[hour] + PRIOR_EVENTS * role.hour_p[hour]) / denominator
    ) - math.log((state.weekdays[weekday] + PRIOR_EVENTS * role.weekday_p[weekday]) / denominator)


def feature_inputs(
    event: AccessEvent,
    state: ActorState,
    role: RoleProfile,
    surprise: float,
    is_rare: bool,
    rarities: tuple[float, float] | None = None,
    p_pair: float | None = None,
) -> tuple[float, ...]:
    """The :data:`FEATURE_INPUTS` of ``event``, in their order.

    ``state`` must already include ``event`` in its windows (see
    :func:`models.state.advance_windows`) but not yet in its baseline; ``surprise`` is
    :func:`access_surprise` of the event, computed before the windows advanced, and
    ``is_rare`` is :func:`is_rare_access`. ``rarities`` is :func:`role_rarities` of the event
    and ``p_pair`` :func:`actor_pair_probability`, computed here when not given.
    """
    hist_n = state.hist_n
    mature = hist_n >= MATURE_EVENTS
    day_events_typ = typical_day(state, role.median_day_events, state.ewma_day_events)
    day_records_typ = typical_day(state, role.median_day_records, state.ewma_day_records)
    win, q = state.win, N_QUANTITIES
    rare_now = 1.0 if is_rare else 0.0
    pair_rarity, field_rarity = rarities or role_rarities(event, role)
    if p_pair is None:
        p_pair = actor_pair_probability(event, state, role)
    return (
        float(event.record_count),
        role.p99_records_per_event,
        win[_TAU_10M * q + W_EVENTS],
        win[_TAU_1H * q + W_EVENTS],
        win[_TAU_24H * q + W_EVENTS],
        win[_TAU_1H * q + W_RECORDS],
        win[_TAU_1H * q + W_NEW_RESOURCES],
        win[_TAU_1H * q + W_NO_TICKET],
        win[_TAU_24H * q + W_NO_TICKET],
        win[_TAU_1H * q + W_DENIED],
        win[_TAU_1H * q + W_RARE] + rare_now,
        win[_TAU_24H * q + W_RARE] + rare_now,
        float(pair_count_24h(state, event.pair_hash)),
        float(pair_count_3d(state, event.pair_hash)),
        day_events_typ / WORKING_HOURS_PER_DAY,
        day_records_typ / WORKING_HOURS_PER_DAY,
        day_events_typ,
        (state.no_ticket_n + PRIOR_EVENTS * role.no_ticket_share) / (hist_n + PRIOR_EVENTS),
        p_pair,
        pair_rarity,
        field_rarity,
        time_novelty(state, role, event.ts),
        surprise,
        1.0 if mature and not is_known(state.ips, event.ip_hash) else 0.0,
        1.0 if mature and not is_known(state.devices, event.device_hash) else 0.0,
        subject_writes_24h(state, event),
        event.role_pulse,
    )
