"""Feature extraction: one event plus the actor's state and the peer baseline -> one vector.

This is the definition of the features. Training, offline ``score`` and the Faust worker
compute them through :mod:`models.compiled`, the same arithmetic compiled for whole batches,
so a replay yields exactly the live features. A change here must be made there too (and
``FEATURE_VERSION`` bumped): ``tests/test_compiled.py`` fails until the two agree bit for bit. Every feature is
listed in :data:`FEATURES` with its meaning and unit; ratios are natural logs so that
"10x the usual" and "1/10 of the usual" are equally far from 0.

Actor baselines are shrunk towards the role's profile with :data:`PRIOR_EVENTS`
pseudo-events, so a new hire doing what the role does is not "novel", while an
established actor doing something the role never does is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from insiderwatch.models.events import AccessEvent
from insiderwatch.models.peers import PROBABILITY_FLOOR, PeerBaseline, RoleProfile
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
    pair_count_24h,
)

__all__ = [
    "Feature",
    "FEATURES",
    "FEATURE_NAMES",
    "FEATURE_VERSION",
    "feature_row",
    "access_surprise",
    "actor_pair_probability",
    "typical_day",
    "PRIOR_EVENTS",
    "RARE_SURPRISAL",
    "is_rare_access",
    "role_surprise",
    "role_rarities",
]

# Bump when a feature's definition or the peer-baseline layout changes: a model trained on
# other features is refused with one sentence instead of failing to load.
FEATURE_VERSION = 5
PRIOR_EVENTS = 20.0
PRIOR_DAYS = 3.0
MATURE_EVENTS = 30
WORKING_HOURS_PER_DAY = 8.0
# An access with p < 0.1% for the actor (access_surprise) or the role (role_surprise) is rare.
RARE_SURPRISAL = math.log(1000.0)
_TAU_10M, _TAU_1H, _TAU_24H = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Feature:
    """Documentation of one model input."""

    name: str
    unit: str
    meaning: str


FEATURES: tuple[Feature, ...] = (
    Feature(
        "records_vs_role",
        "ln ratio >= 0",
        "records in this access above the role's 99th percentile per access",
    ),
    Feature(
        "events_10m_vs_actor",
        "ln ratio >= 0",
        "accesses in the last ~10 min above the actor's usual pace",
    ),
    Feature(
        "records_1h_vs_actor",
        "ln ratio >= 0",
        "records in the last hour above the actor's usual hour",
    ),
    Feature(
        "new_resources_1h_vs_actor",
        "ln ratio >= 0",
        "distinct, not recently seen records in the last hour above the actor's usual hour",
    ),
    Feature(
        "no_ticket_1h_vs_actor",
        "ln ratio >= 0",
        "accesses without a ticket in the last hour above the actor's usual share",
    ),
    Feature(
        "rare_accesses_1h",
        "ln(1+events)",
        "rare (p < 0.1%) accesses for this actor or the role in the last hour: this one and "
        "earlier ones that raised no alert on their own",
    ),
    Feature(
        "rare_accesses_24h",
        "ln(1+events)",
        "rare (p < 0.1%) accesses for this actor or the role in the last day: this one and "
        "earlier ones that raised no alert on their own",
    ),
    Feature(
        "no_ticket_24h_vs_actor",
        "ln ratio >= 0",
        "accesses without a ticket in the last day above the actor's usual day",
    ),
    Feature(
        "access_role_rarity", "-ln p", "how rare this (action, resource type) pair is for the role"
    ),
    Feature(
        "field_role_rarity",
        "-ln p",
        "rarest sensitive field returned, by the role's share of accesses returning it",
    ),
    Feature(
        "time_novelty",
        "-ln p",
        "how unusual this hour of the day and this day of the week (UTC) are for the actor "
        "(shrunk to the role), taken together",
    ),
    Feature(
        "access_surprise",
        "-ln p",
        "how improbable the whole access is for the actor: the pair, any field the actor never "
        "returned, and a missing ticket, taken together",
    ),
    Feature(
        "new_ip_or_device",
        "count 0..2",
        "an established actor on an IP and/or device never seen before",
    ),
    Feature("denied_1h", "ln(1+events)", "denied or failed accesses in the last hour"),
    Feature(
        "pair_share_24h_vs_actor",
        "ln ratio >= 0",
        "accesses of this kind (action, resource type) in the last day above the actor's usual "
        "share of a day's accesses",
    ),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


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


def feature_row(
    event: AccessEvent,
    state: ActorState,
    peers: PeerBaseline,
    surprise: float,
    is_rare: bool,
    rarities: tuple[float, float] | None = None,
    p_pair: float | None = None,
) -> list[float]:
    """Compute the :data:`FEATURES` vector for ``event``.

    ``state`` must already include ``event`` in its windows (see
    :func:`models.state.advance_windows`) but not yet in its baseline; ``surprise`` is
    :func:`access_surprise` of the event, computed before the windows advanced, and
    ``is_rare`` is :func:`is_rare_access`. The rare-access counts are the actor's earlier
    rare accesses that raised no alert plus this one if it is rare. Volume ratios are
    clipped at 0: an actor doing *less* than usual is not an insider signal, and the clip
    leaves normal traffic concentrated at 0, where the forest isolates any excess quickly.
    ``rarities`` is :func:`role_rarities` of the event and ``p_pair``
    :func:`actor_pair_probability`, computed here when not given (the caller has them already).
    """
    role = peers.profile(event.actor_role)
    log = math.log
    hist_n = state.hist_n
    mature = hist_n >= MATURE_EVENTS

    day_events_typ = typical_day(state, role.median_day_events, state.ewma_day_events)
    day_records_typ = typical_day(state, role.median_day_records, state.ewma_day_records)
    hour_events_typ = day_events_typ / WORKING_HOURS_PER_DAY
    hour_records_typ = day_records_typ / WORKING_HOURS_PER_DAY
    win = state.win
    q = N_QUANTITIES
    events_10m = win[_TAU_10M * q + W_EVENTS]
    events_1h = win[_TAU_1H * q + W_EVENTS]
    records_1h = win[_TAU_1H * q + W_RECORDS]
    new_res_1h = win[_TAU_1H * q + W_NEW_RESOURCES]
    no_ticket_1h = win[_TAU_1H * q + W_NO_TICKET]
    denied_1h = win[_TAU_1H * q + W_DENIED]
    rare_now = 1.0 if is_rare else 0.0
    rare_1h = win[_TAU_1H * q + W_RARE] + rare_now
    rare_24h = win[_TAU_24H * q + W_RARE] + rare_now
    no_ticket_24h = win[_TAU_24H * q + W_NO_TICKET]

    no_ticket_share = (state.no_ticket_n + PRIOR_EVENTS * role.no_ticket_share) / (
        hist_n + PRIOR_EVENTS
    )
    pair_rarity, field_rarity = rarities or role_rarities(event, role)
    new_ip = mature and not is_known(state.ips, event.ip_hash)
    new_device = mature and not is_known(state.devices, event.device_hash)

    # Clipped at 0 inline: a call per clip was 3% of a busy worker.
    if p_pair is None:
        p_pair = actor_pair_probability(event, state, role)
    pair_share = log(
        (1.0 + pair_count_24h(state, event.pair_hash))
        / (1.0 + win[_TAU_24H * q + W_EVENTS] * p_pair)
    )
    records = log((1.0 + event.record_count) / (1.0 + role.p99_records_per_event))
    pace_10m = log((1.0 + events_10m) / (1.0 + hour_events_typ / 6.0))
    records_1h = log((1.0 + records_1h) / (1.0 + hour_records_typ))
    new_res_1h = log((1.0 + new_res_1h) / (1.0 + hour_events_typ))
    no_ticket_1h = log((1.0 + no_ticket_1h) / (1.0 + events_1h * no_ticket_share))
    no_ticket_24h = log((1.0 + no_ticket_24h) / (1.0 + day_events_typ * no_ticket_share))
    return [
        records if records > 0.0 else 0.0,
        pace_10m if pace_10m > 0.0 else 0.0,
        records_1h if records_1h > 0.0 else 0.0,
        new_res_1h if new_res_1h > 0.0 else 0.0,
        no_ticket_1h if no_ticket_1h > 0.0 else 0.0,
        log(1.0 + rare_1h),
        log(1.0 + rare_24h),
        no_ticket_24h if no_ticket_24h > 0.0 else 0.0,
        pair_rarity,
        field_rarity,
        time_novelty(state, role, event.ts),
        surprise,
        float(new_ip) + float(new_device),
        log(1.0 + denied_1h),
        pair_share if pair_share > 0.0 else 0.0,
    ]
