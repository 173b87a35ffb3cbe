"""Feature extraction: one event plus the actor's state and the peer baseline -> one vector.

This is the single feature code path: training, offline ``score`` and the Faust worker all
call :func:`feature_row`, so a replay yields exactly the live features. Every feature is
listed in :data:`FEATURES` with its meaning and unit; ratios are natural logs so that
"10x the usual" and "1/10 of the usual" are equally far from 0.

Actor baselines are shrunk towards the role's profile with :data:`PRIOR_EVENTS`
pseudo-events, so a new hire doing what the role does is not "novel", while an
established actor doing something the role never does is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.events import AccessEvent
from models.peers import PeerBaseline, RoleProfile
from models.state import (
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
    stable_hash,
)

__all__ = [
    "Feature",
    "FEATURES",
    "FEATURE_NAMES",
    "feature_row",
    "surprisal",
    "typical_day",
    "PRIOR_EVENTS",
    "RARE_SURPRISAL",
]

PRIOR_EVENTS = 20.0
PRIOR_DAYS = 3.0
MATURE_EVENTS = 30
WORKING_HOURS_PER_DAY = 8.0
# An access whose (action, resource type) has p < 1% for the actor counts as rare.
RARE_SURPRISAL = math.log(100.0)
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
        "events_1h_vs_actor",
        "ln ratio >= 0",
        "accesses in the last hour above the actor's usual hour",
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
        "accesses in the last hour that are rare for this actor (p < 1%)",
    ),
    Feature(
        "no_ticket_24h_vs_actor",
        "ln ratio >= 0",
        "accesses without a ticket in the last day above the actor's usual day",
    ),
    Feature(
        "action_novelty", "-ln p", "how unusual this action is for the actor (shrunk to the role)"
    ),
    Feature(
        "resource_type_novelty",
        "-ln p",
        "how unusual this resource type is for the actor (shrunk to the role)",
    ),
    Feature("action_role_rarity", "-ln p", "how rare this action is for the actor's role"),
    Feature("resource_type_role_rarity", "-ln p", "how rare this resource type is for the role"),
    Feature(
        "field_role_rarity",
        "-ln p",
        "rarest sensitive field returned, by the role's share of accesses returning it",
    ),
    Feature(
        "hour_novelty",
        "-ln p",
        "how unusual this hour of day (UTC) is for the actor (shrunk to the role)",
    ),
    Feature("no_ticket", "flag", "1 when the access carries no ticket (no justification)"),
    Feature(
        "new_ip_or_device",
        "count 0..2",
        "an established actor on an IP and/or device never seen before",
    ),
    Feature(
        "first_time",
        "count 0..3",
        "an established actor's first use of this action / resource type / field",
    ),
    Feature("denied_1h", "ln(1+events)", "denied or failed accesses in the last hour"),
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


def surprisal(event: AccessEvent, state: ActorState, role: RoleProfile) -> float:
    """-ln p of (action, resource type) for this actor, each shrunk towards the role.

    >>> from models.peers import RoleProfile
    >>> role = RoleProfile(1, {"view": 0.5}, {"review": 0.5}, [1 / 24] * 24, [1 / 7] * 7, 1, 1, 0, 1, {})
    >>> round(surprisal(AccessEvent("e", "t", 0.0, "a", "view", "review"), ActorState(0.0, 0.0), role), 4)
    1.3863
    """
    denominator = state.hist_n + PRIOR_EVENTS
    p_action = (
        state.actions.get(event.action, 0) + PRIOR_EVENTS * role.action_probability(event.action)
    ) / denominator
    p_resource = (
        state.resource_types.get(event.resource_type, 0)
        + PRIOR_EVENTS * role.resource_type_probability(event.resource_type)
    ) / denominator
    return -math.log(p_action) - math.log(p_resource)


def feature_row(event: AccessEvent, state: ActorState, peers: PeerBaseline) -> list[float]:
    """Compute the :data:`FEATURES` vector for ``event``.

    ``state`` must already include ``event`` in its windows (see
    :func:`models.state.advance_windows`) but not yet in its baseline. Volume ratios are
    clipped at 0: an actor doing *less* than usual is not an insider signal, and the clip
    leaves normal traffic concentrated at 0, where the forest isolates any excess quickly.
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
    rare_1h = win[_TAU_1H * q + W_RARE]
    no_ticket_24h = win[_TAU_24H * q + W_NO_TICKET]

    no_ticket_share = (state.no_ticket_n + PRIOR_EVENTS * role.no_ticket_share) / (
        hist_n + PRIOR_EVENTS
    )
    denominator = hist_n + PRIOR_EVENTS
    action_count = state.actions.get(event.action, 0)
    resource_count = state.resource_types.get(event.resource_type, 0)
    action_role_p = role.action_probability(event.action)
    resource_role_p = role.resource_type_probability(event.resource_type)
    hour = (int(event.ts) % DAY_S) // 3600
    field_rarity = 0.0
    new_fields = 0
    for name in event.fields:
        field_rarity = max(field_rarity, -log(role.field_probability(name)))
        if mature and stable_hash(name) not in state.fields_seen:
            new_fields = 1
    new_ip = mature and not is_known(state.ips, event.source_ip)
    new_device = mature and not is_known(state.devices, event.device_id)

    return [
        max(0.0, log((1.0 + event.record_count) / (1.0 + role.p99_records_per_event))),
        max(0.0, log((1.0 + events_10m) / (1.0 + hour_events_typ / 6.0))),
        max(0.0, log((1.0 + events_1h) / (1.0 + hour_events_typ))),
        max(0.0, log((1.0 + records_1h) / (1.0 + hour_records_typ))),
        max(0.0, log((1.0 + new_res_1h) / (1.0 + hour_events_typ))),
        max(0.0, log((1.0 + no_ticket_1h) / (1.0 + events_1h * no_ticket_share))),
        log(1.0 + rare_1h),
        max(0.0, log((1.0 + no_ticket_24h) / (1.0 + day_events_typ * no_ticket_share))),
        -log((action_count + PRIOR_EVENTS * action_role_p) / denominator),
        -log((resource_count + PRIOR_EVENTS * resource_role_p) / denominator),
        -log(action_role_p),
        -log(resource_role_p),
        field_rarity,
        -log((state.hours[hour] + PRIOR_EVENTS * role.hour_p[hour]) / denominator),
        0.0 if event.ticket_id else 1.0,
        float(new_ip) + float(new_device),
        float(mature and action_count == 0)
        + float(mature and resource_count == 0)
        + float(new_fields),
        log(1.0 + denied_1h),
    ]
