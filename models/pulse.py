"""The role pulse: how far a whole role's traffic runs above its usual level, in event time.

When every agent of a role works harder (a sale, a season, an outage), each one's volume
features rise together, and an isolation forest that judges actors one at a time sees a
hundred insiders. The pulse measures the role's own rise, so an individual is judged against
the peers' rise in the same hours: the volume features subtract it (see ``role_pulse`` in
:mod:`insiderwatch.models.features`).

Definition, for an event in hour ``H`` (``floor(ts / 3600)``) of role ``R``::

    trailing = events of R in hours H-26 .. H-3     (PULSE_SPAN_HOURS, PULSE_LAG_HOURS old)
    pulse    = min(ln(trailing / usual_R), PULSE_CAP)   when trailing > usual_R, else 0

``usual_R`` is the 75th percentile of the same trailing count over the training history
(:func:`fit_usual`); roles with fewer than :data:`PULSE_MIN_ACTORS` actors in training have no
pulse (``usual_R = 0``): one actor's own excess would be most of a small role's rise. The cap
bounds how much any rise can excuse.

The counts are a sum over every partition's events. Offline, :func:`count_events` counts the
whole input before :func:`set_pulses`, so the value does not depend on input order. The
worker counts its partitions' events and reads every other worker's counts from a compacted topic (``stream/pulse.py``);
because only hours that closed at least :data:`PULSE_LAG_HOURS` before the event's hour began
are used, the stream gives the offline value while no partition trails another by more than
that in event time and no event arrives later than that.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping

import numpy as np

from insiderwatch.models.events import AccessEvent

__all__ = [
    "PULSE_CAP",
    "PULSE_LAG_HOURS",
    "PULSE_MIN_ACTORS",
    "PULSE_SPAN_HOURS",
    "PULSE_USUAL_QUANTILE",
    "HourlyCounts",
    "fit_usual",
    "count_events",
    "hour_of",
    "pulse",
    "set_pulses",
]

PULSE_LAG_HOURS = 2
PULSE_SPAN_HOURS = 24
PULSE_MIN_ACTORS = 10
PULSE_USUAL_QUANTILE = 0.75
PULSE_CAP = math.log(3.0)


def hour_of(ts: float) -> int:
    """The event-time hour index of ``ts`` (epoch seconds).

    >>> hour_of(7199.9), hour_of(7200.0)
    (1, 2)
    """
    return int(ts // 3600)


def pulse(trailing: float, usual: float) -> float:
    """The pulse of a role whose trailing count is ``trailing`` against ``usual``.

    >>> pulse(180.0, 100.0) == math.log(1.8), pulse(90.0, 100.0), pulse(900.0, 100.0) == PULSE_CAP
    (True, 0.0, True)
    >>> pulse(500.0, 0.0)  # a role without a pulse
    0.0
    """
    if usual <= 0.0 or trailing <= usual:
        return 0.0
    return min(math.log(trailing / usual), PULSE_CAP)


class HourlyCounts:
    """Events per (role, event-time hour), and the trailing sums the pulse reads.

    >>> counts = HourlyCounts()
    >>> counts.add("support", 10, 5.0); counts.add("support", 12, 7.0)
    >>> counts.trailing("support", 15), counts.trailing("support", 14), counts.trailing("x", 15)
    (12.0, 5.0, 0.0)
    """

    def __init__(self) -> None:
        self._by_role: dict[str, dict[int, float]] = defaultdict(dict)

    def add(self, role: str, hour: int, count: float) -> None:
        hours = self._by_role[role]
        hours[hour] = hours.get(hour, 0.0) + count

    def trailing(self, role: str, hour: int) -> float:
        """Events of ``role`` in hours ``hour - 26 .. hour - 3``."""
        hours = self._by_role.get(role)
        if not hours:
            return 0.0
        last = hour - PULSE_LAG_HOURS - 1
        return float(sum(hours.get(h, 0.0) for h in range(last - PULSE_SPAN_HOURS + 1, last + 1)))

    def forget_before(self, hour: int) -> None:
        """Drop hours before ``hour`` (no event at or after ``hour + 3`` reads them)."""
        for hours in self._by_role.values():
            for h in [h for h in hours if h < hour]:
                del hours[h]


def fit_usual(
    hour_counts: Mapping[str, Mapping[int, int]], actors_by_role: Mapping[str, int]
) -> dict[str, float]:
    """Each role's usual trailing count: :data:`PULSE_USUAL_QUANTILE` of it over the hours
    in which the role was active (``hour_counts``: role -> hour -> events), for roles with at
    least :data:`PULSE_MIN_ACTORS` actors.

    Hours in the first ``PULSE_LAG_HOURS + PULSE_SPAN_HOURS`` of the history have an incomplete
    trailing window and are left out.

    >>> counts = {"support": {h: 10 for h in range(100)}, "tiny": {h: 10 for h in range(100)}}
    >>> fit_usual(counts, {"support": 12, "tiny": 2})
    {'support': 240.0}
    """
    if not hour_counts:
        return {}
    first = min(min(hours) for hours in hour_counts.values() if hours)
    first += PULSE_LAG_HOURS + PULSE_SPAN_HOURS
    usual: dict[str, float] = {}
    for role, counts in sorted(hour_counts.items()):
        if actors_by_role.get(role, 0) < PULSE_MIN_ACTORS or not counts:
            continue
        hours = np.fromiter(counts, dtype=np.int64, count=len(counts))
        weights = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        active = hours[hours >= first]
        if active.size:
            trailing = _trailing_sums(hours, weights)(active)
            usual[role] = float(np.quantile(trailing, PULSE_USUAL_QUANTILE))
    return usual


def _trailing_sums(role_hours: np.ndarray, weights: np.ndarray | None = None):
    """A function from hour indices to the role's trailing count (as
    :meth:`HourlyCounts.trailing`), from the hour index of each of the role's events (or of
    each hour, with ``weights`` its events)."""
    base = int(role_hours.min())
    counts = np.bincount(role_hours - base, weights=weights).astype(np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    n = counts.size

    def trailing(hours: np.ndarray) -> np.ndarray:
        end = np.clip(hours - base - PULSE_LAG_HOURS, 0, n)  # exclusive: hour H-3 is the last
        start = np.clip(end - PULSE_SPAN_HOURS, 0, n)
        return cumulative[end] - cumulative[start]

    return trailing


def count_events(events: Iterable[AccessEvent], counts: HourlyCounts | None = None) -> HourlyCounts:
    """Add ``events`` to ``counts`` (a new table when None) and return it."""
    counts = counts if counts is not None else HourlyCounts()
    by_key: dict[tuple[str, int], int] = defaultdict(int)
    for event in events:
        by_key[(event.actor_role, int(event.ts // 3600))] += 1
    for (role, hour), n in by_key.items():
        counts.add(role, hour, float(n))
    return counts


def set_pulses(
    events: Iterable[AccessEvent], counts: HourlyCounts, usual: Mapping[str, float]
) -> None:
    """Give each event its pulse (:attr:`AccessEvent.role_pulse`) from ``counts`` before
    detection; computed once per (role, hour).

    >>> from insiderwatch.models.events import AccessEvent
    >>> def at(hour):
    ...     return AccessEvent(event_id=str(hour), timestamp=f"2026-01-0{1 + hour // 24}T"
    ...                        f"{hour % 24:02d}:00:00Z", actor_id="a", action="v",
    ...                        resource_type="r", actor_role="support")
    >>> events = [at(0), at(0), at(0), at(4)]
    >>> set_pulses(events, count_events(events), {"support": 2.0})
    >>> [round(e.role_pulse, 4) for e in events]
    [0.0, 0.0, 0.0, 0.4055]
    """
    if not usual:
        return
    memo: dict[tuple[str, int], float] = {}
    for event in events:
        key = (event.actor_role, int(event.ts // 3600))
        value = memo.get(key)
        if value is None:
            role_usual = usual.get(key[0], 0.0)
            value = pulse(counts.trailing(*key), role_usual) if role_usual > 0.0 else 0.0
            memo[key] = value
        event.role_pulse = value
