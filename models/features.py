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
from models.peers import PeerBaseline
from models.state import (
    DAY_S,
    W_DENIED,
    W_EVENTS,
    W_NEW_RESOURCES,
    W_NO_TICKET,
    W_RECORDS,
    ActorState,
    is_known,
    window_value,
)

__all__ = ["Feature", "FEATURES", "FEATURE_NAMES", "feature_row", "typical_day", "PRIOR_EVENTS"]

PRIOR_EVENTS = 20.0
PRIOR_DAYS = 3.0
MATURE_EVENTS = 30
WORKING_HOURS_PER_DAY = 8.0
_TAU_10M, _TAU_1H, _TAU_24H = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Feature:
    """Documentation of one model input."""

    name: str
    unit: str
    meaning: str


FEATURES: tuple[Feature, ...] = (
    Feature("log_record_count", "ln(1+records)", "records returned or changed by this access"),
    Feature("sensitive_field_count", "fields", "sensitive fields returned (e.g. email, phone)"),
    Feature("no_ticket", "flag", "1 when the access carries no ticket (no justification)"),
    Feature("events_10m", "ln(1+events)", "accesses by the actor in the last ~10 minutes"),
    Feature(
        "events_1h_vs_actor", "ln ratio", "accesses in the last hour vs. the actor's usual hour"
    ),
    Feature(
        "records_1h_vs_actor", "ln ratio", "records in the last hour vs. the actor's usual hour"
    ),
    Feature(
        "records_24h_vs_role", "ln ratio", "records in the last day vs. a typical day of the role"
    ),
    Feature(
        "new_resources_1h", "ln(1+records)", "distinct, not recently seen records in the last hour"
    ),
    Feature(
        "new_resources_1h_vs_actor",
        "ln ratio",
        "distinct records in the last hour vs. the actor's usual hour",
    ),
    Feature(
        "no_ticket_1h_vs_actor",
        "ln ratio",
        "no-ticket accesses in the last hour vs. the actor's usual share",
    ),
    Feature("denied_1h", "ln(1+events)", "denied or failed accesses in the last hour"),
    Feature("day_events_vs_actor", "ln ratio", "accesses today vs. the actor's typical day"),
    Feature("day_events_vs_role", "ln ratio", "accesses today vs. the role's typical day"),
    Feature("action_novelty", "-ln p", "how unusual this action is for the actor"),
    Feature("resource_type_novelty", "-ln p", "how unusual this resource type is for the actor"),
    Feature("action_role_rarity", "-ln p", "how rare this action is for the actor's role"),
    Feature("resource_type_role_rarity", "-ln p", "how rare this resource type is for the role"),
    Feature("hour_novelty", "-ln p", "how unusual this hour of day (UTC) is for the actor"),
    Feature("hour_role_rarity", "-ln p", "how rare this hour of day is for the role"),
    Feature("weekday_novelty", "-ln p", "how unusual this day of week is for the actor"),
    Feature("new_ip", "flag", "1 when an established actor uses an IP not seen before"),
    Feature("new_device", "flag", "1 when an established actor uses a device not seen before"),
    Feature(
        "first_time_action",
        "flag",
        "1 when an established actor does this action for the first time",
    ),
    Feature(
        "first_time_resource_type",
        "flag",
        "1 when an established actor first touches this resource type",
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


def feature_row(
    event: AccessEvent, state: ActorState, peers: PeerBaseline, is_new_resource: bool
) -> list[float]:
    """Compute the :data:`FEATURES` vector for ``event``.

    ``state`` must already include ``event`` in its windows (see
    :func:`models.state.advance_windows`) but not yet in its baseline.
    """
    del is_new_resource  # reflected in the windows already; kept for a stable signature
    role = peers.profile(event.actor_role)
    log = math.log
    hist_n = state.hist_n
    mature = hist_n >= MATURE_EVENTS

    day_events_typ = typical_day(state, role.median_day_events, state.ewma_day_events)
    day_records_typ = typical_day(state, role.median_day_records, state.ewma_day_records)
    hour_events_typ = day_events_typ / WORKING_HOURS_PER_DAY
    hour_records_typ = day_records_typ / WORKING_HOURS_PER_DAY

    win = state.win
    events_10m = win[_TAU_10M * 5 + W_EVENTS]
    events_1h = win[_TAU_1H * 5 + W_EVENTS]
    records_1h = win[_TAU_1H * 5 + W_RECORDS]
    new_res_1h = win[_TAU_1H * 5 + W_NEW_RESOURCES]
    no_ticket_1h = win[_TAU_1H * 5 + W_NO_TICKET]
    denied_1h = win[_TAU_1H * 5 + W_DENIED]
    records_24h = window_value(state, _TAU_24H, W_RECORDS)

    no_ticket_share = (state.no_ticket_n + PRIOR_EVENTS * role.no_ticket_share) / (
        hist_n + PRIOR_EVENTS
    )
    denominator = hist_n + PRIOR_EVENTS
    action_count = state.actions.get(event.action, 0)
    resource_count = state.resource_types.get(event.resource_type, 0)
    action_role_p = role.action_probability(event.action)
    resource_role_p = role.resource_type_probability(event.resource_type)
    hour = (int(event.ts) % DAY_S) // 3600
    weekday = (int(event.ts // DAY_S) + 3) % 7
    day_events = state.day_events if int(event.ts // DAY_S) == state.day else 1

    return [
        log(1.0 + event.record_count),
        float(len(event.fields)),
        0.0 if event.ticket_id else 1.0,
        log(1.0 + events_10m),
        log((1.0 + events_1h) / (1.0 + hour_events_typ)),
        log((1.0 + records_1h) / (1.0 + hour_records_typ)),
        log((1.0 + records_24h) / (1.0 + role.median_day_records)),
        log(1.0 + new_res_1h),
        log((1.0 + new_res_1h) / (1.0 + hour_events_typ)),
        log((1.0 + no_ticket_1h) / (1.0 + events_1h * no_ticket_share)),
        log(1.0 + denied_1h),
        log((1.0 + day_events) / (1.0 + day_events_typ)),
        log((1.0 + day_events) / (1.0 + role.median_day_events)),
        -log((action_count + PRIOR_EVENTS * action_role_p) / denominator),
        -log((resource_count + PRIOR_EVENTS * resource_role_p) / denominator),
        -log(action_role_p),
        -log(resource_role_p),
        -log((state.hours[hour] + PRIOR_EVENTS * role.hour_p[hour]) / denominator),
        -log(role.hour_p[hour]),
        -log((state.weekdays[weekday] + PRIOR_EVENTS * role.weekday_p[weekday]) / denominator),
        1.0 if mature and not is_known(state.ips, event.source_ip) else 0.0,
        1.0 if mature and not is_known(state.devices, event.device_id) else 0.0,
        1.0 if mature and action_count == 0 else 0.0,
        1.0 if mature and resource_count == 0 else 0.0,
    ]
