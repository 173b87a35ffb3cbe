"""One actor's current windows against its baseline, as an analyst reads them.

The worker's ``/actors/ACTOR_ID`` page and ``insiderwatch actor`` show this: what the actor
did over the last ~10 minutes, hour and day (decayed counts, as the features see them, as of
the actor's last event) next to what is usual for it (its own history shrunk to the role),
its entity risk against the limits, its open incident and its most frequent accesses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from insiderwatch.models.feature_inputs import WORKING_HOURS_PER_DAY, typical_day
from insiderwatch.models.manifest import Risk
from insiderwatch.models.peers import RoleProfile
from insiderwatch.models.risk_alert import risk_fields
from insiderwatch.models.state import (
    W_DENIED,
    W_EVENTS,
    W_NO_TICKET,
    W_RARE,
    W_RECORDS,
    ActorState,
    window_value,
)

__all__ = ["actor_view"]

_WINDOWS = (("10m", 0), ("1h", 1), ("24h", 2))
_QUANTITIES = (
    ("events", W_EVENTS),
    ("records", W_RECORDS),
    ("no_ticket", W_NO_TICKET),
    ("denied", W_DENIED),
    ("rare", W_RARE),
)


def actor_view(
    actor_id: str,
    state: ActorState,
    role: RoleProfile,
    risk: Risk,
    pair_names: Mapping[int, str],
    rfc3339: Callable[[float], str],
) -> dict:
    """The actor's windows, usual amounts, risk, incident and top accesses (JSON-ready).

    >>> from insiderwatch.models.peers import RoleProfile
    >>> role = RoleProfile(3, {}, [1 / 24] * 24, [1 / 7] * 7, 40.0, 40.0, 0.5, 1.0, {})
    >>> view = actor_view("a", ActorState(0.0, 0.0), role,
    ...                   Risk(1.0, 0.99, {}, 0.5, 1.0, 2.0, 604800.0, 86400.0, 604800.0, 3),
    ...                   {}, str)
    >>> view["usual"]["events_per_day"], view["windows"]["24h"]["events"]
    (40.0, 0.0)
    """
    day = typical_day(state, role.median_day_events, state.ewma_day_events)
    no_ticket = state.no_ticket_n / state.hist_n if state.hist_n else role.no_ticket_share
    total = max(1, sum(state.pairs.values()))
    top = sorted(state.pairs.items(), key=lambda item: -item[1])[:5]
    incident = state.incident
    return {
        "actor_id": actor_id,
        "peer_group": state.role,
        "first_seen": rfc3339(state.first_ts),
        "last_seen": rfc3339(state.last_ts),
        "windows_as_of": rfc3339(state.win_ts),
        "events_learnt": state.hist_n,
        "active_days": state.active_days,
        "windows": {
            name: {q: round(window_value(state, tau, index), 3) for q, index in _QUANTITIES}
            for name, tau in _WINDOWS
        },
        "usual": {
            "events_per_day": round(day, 3),
            "events_per_working_hour": round(day / WORKING_HOURS_PER_DAY, 3),
            "no_ticket_share": round(no_ticket, 4),
            "role_events_per_day": role.median_day_events,
        },
        "top_accesses": [
            {"access": pair_names.get(pair, f"pair {pair}"), "share": round(n / total, 4)}
            for pair, n in top
        ],
        "risk": risk_fields(state, risk)["risk"],
        "open_incident": incident is not None,
        "sustained_evidence": round(state.cusum, 4),
    }
