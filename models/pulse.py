"""The role pulse: how far a whole role's traffic runs above its usual week, in event time.

When every agent of a role works harder (a sale, a season, an outage), each one's volume
features rise together, and an isolation forest that judges actors one at a time sees a
hundred insiders. The pulse measures the role's own rise, so an individual is judged against
the peers' rise in the same hours: the volume features subtract it (see ``role_pulse`` in
:mod:`insiderwatch.models.features`).

Definition, for an event in hour ``H`` (``floor(ts / 3600)``) of role ``R``::

    actual   = events of R in hours H-8 .. H-3      (PULSE_SPAN_HOURS, PULSE_LAG_HOURS old)
    expected = the same hours of R's usual week      (mean per hour of the week in training)
    pulse    = ln(actual / expected) - ln 1.1, between 0 and PULSE_CAP

The usual week follows the role's hours and weekdays, so a Monday morning is compared with
Monday mornings; a rise within 10 % is noise (:data:`PULSE_DEAD_ZONE`), and a window expected
to hold fewer than :data:`PULSE_MIN_EXPECTED` events (nights) has no pulse. Roles with fewer
than :data:`PULSE_MIN_ACTORS` actors in training have none either: one actor's own excess
would be most of a small role's rise. The cap bounds how much any rise can excuse.

The counts are a sum over every partition's events. Offline, :func:`count_events` counts the
whole input before :func:`set_pulses`, so the value does not depend on input order. The
worker counts its partitions' events and reads every other worker's counts from a compacted
topic (``stream/pulse.py``); because only hours that closed at least
:data:`PULSE_LAG_HOURS` before the event's hour began are read, the stream gives the offline
value while no partition trails another by more than that in event time and no event arrives
later than that.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from insiderwatch.models.events import AccessEvent

__all__ = [
    "HOURS_PER_WEEK",
    "PULSE_CAP",
    "PULSE_DEAD_ZONE",
    "PULSE_LAG_HOURS",
    "PULSE_MIN_ACTORS",
    "PULSE_MIN_EXPECTED",
    "PULSE_SPAN_HOURS",
    "HourlyCounts",
    "count_events",
    "expected_in_window",
    "fit_usual",
    "hour_of",
    "hour_of_week",
    "pulse",
    "set_pulses",
    "window",
]

PULSE_LAG_HOURS = 2
PULSE_SPAN_HOURS = 6
PULSE_MIN_ACTORS = 10
PULSE_MIN_EXPECTED = 20.0  # events the window is expected to hold; below, no pulse
PULSE_DEAD_ZONE = math.log(1.1)  # a rise within 10 % of the usual week is noise
PULSE_CAP = math.log(3.0)
HOURS_PER_WEEK = 168


def hour_of(ts: float) -> int:
    """The event-time hour index of ``ts`` (epoch seconds).

    >>> hour_of(7199.9), hour_of(7200.0)
    (1, 2)
    """
    return int(ts // 3600)


def hour_of_week(hour: int) -> int:
    """0..167 from Monday 00:00 UTC (1970-01-01, hour 0, was a Thursday).

    >>> hour_of_week(0), hour_of_week(24 * 4)
    (72, 0)
    """
    return ((hour // 24 + 3) % 7) * 24 + hour % 24


def window(hour: int) -> range:
    """The hours an event in ``hour`` reads: ``hour - 8 .. hour - 3``.

    >>> list(window(10))
    [2, 3, 4, 5, 6, 7]
    """
    last = hour - PULSE_LAG_HOURS - 1
    return range(last - PULSE_SPAN_HOURS + 1, last + 1)


def pulse(actual: float, expected: float) -> float:
    """The pulse of a role that had ``actual`` events where its usual week has ``expected``.

    >>> round(pulse(198.0, 100.0), 6) == round(math.log(1.8), 6)
    True
    >>> pulse(105.0, 100.0), pulse(1e4, 100.0) == PULSE_CAP, pulse(50.0, 10.0)
    (0.0, True, 0.0)
    """
    if expected < PULSE_MIN_EXPECTED or actual <= 0.0:
        return 0.0
    value = math.log(actual / expected) - PULSE_DEAD_ZONE
    return min(value, PULSE_CAP) if value > 0.0 else 0.0


class HourlyCounts:
    """Events per (role, event-time hour), and the window sums the pulse reads.

    >>> counts = HourlyCounts()
    >>> counts.add("support", 2, 5.0); counts.add("support", 7, 7.0)
    >>> counts.in_window("support", 10), counts.in_window("support", 11), counts.in_window("x", 10)
    (12.0, 7.0, 0.0)
    """

    def __init__(self) -> None:
        self._by_role: dict[str, dict[int, float]] = defaultdict(dict)

    def add(self, role: str, hour: int, count: float) -> None:
        hours = self._by_role[role]
        hours[hour] = hours.get(hour, 0.0) + count

    def in_window(self, role: str, hour: int) -> float:
        """Events of ``role`` in the hours an event in ``hour`` reads (:func:`window`)."""
        hours = self._by_role.get(role)
        if not hours:
            return 0.0
        return float(sum(hours.get(h, 0.0) for h in window(hour)))

    def forget_before(self, hour: int) -> None:
        """Drop hours before ``hour``."""
        for hours in self._by_role.values():
            for h in [h for h in hours if h < hour]:
                del hours[h]


def expected_in_window(week: Sequence[float], hour: int) -> float:
    """The role's usual events (``week``: per hour of the week) in the window of ``hour``.

    >>> expected_in_window([1.0] * 168, 500)
    6.0
    """
    return float(sum(week[hour_of_week(h)] for h in window(hour)))


def fit_usual(
    hour_counts: Mapping[str, Mapping[int, int]], actors_by_role: Mapping[str, int]
) -> dict[str, list[float]]:
    """Each role's usual week: its mean events in each hour of the week (Monday 00:00 UTC
    first) over the history, for roles with at least :data:`PULSE_MIN_ACTORS` actors
    (``hour_counts``: role -> hour -> events).

    >>> counts = {"support": {h: 10 for h in range(336)}, "tiny": {h: 10 for h in range(336)}}
    >>> usual = fit_usual(counts, {"support": 12, "tiny": 2})
    >>> list(usual), set(usual["support"])
    (['support'], {10.0})
    """
    active = [hours for hours in hour_counts.values() if hours]
    if not active:
        return {}
    first, last = min(min(h) for h in active), max(max(h) for h in active)
    covered = np.zeros(HOURS_PER_WEEK)  # times the history covers each hour of the week
    for hour in range(first, last + 1):
        covered[hour_of_week(hour)] += 1
    usual: dict[str, list[float]] = {}
    for role, counts in sorted(hour_counts.items()):
        if actors_by_role.get(role, 0) < PULSE_MIN_ACTORS or not counts:
            continue
        week = np.zeros(HOURS_PER_WEEK)
        for hour, n in counts.items():
            week[hour_of_week(hour)] += n
        usual[role] = [float(v) for v in week / np.maximum(covered, 1.0)]
    return usual


def count_events(events: Iterable[AccessEvent], counts: HourlyCounts | None = None) -> HourlyCounts:
    """Add ``events`` to ``counts`` (a new table when None) and return it."""
    counts = counts if counts is not None else HourlyCounts()
    by_key: dict[tuple[str, int], int] = defaultdict(int)
    for event in events:
        by_key[(event.actor_role, hour_of(event.ts))] += 1
    for (role, hour), n in by_key.items():
        counts.add(role, hour, float(n))
    return counts


def set_pulses(
    events: Iterable[AccessEvent], counts: HourlyCounts, usual: Mapping[str, Sequence[float]]
) -> None:
    """Give each event its pulse (:attr:`AccessEvent.role_pulse`) from ``counts`` before
    detection; computed once per (role, hour).

    >>> from insiderwatch.models.events import AccessEvent
    >>> def at(hour):
    ...     return AccessEvent(event_id=str(hour), timestamp=f"2026-01-0{1 + hour // 24}T"
    ...                        f"{hour % 24:02d}:00:00Z", actor_id="a", action="v",
    ...                        resource_type="r", actor_role="support")
    >>> events = [at(0) for _ in range(60)] + [at(4)]  # the usual week: 5 an hour
    >>> set_pulses(events, count_events(events), {"support": [5.0] * 168})
    >>> events[0].role_pulse, round(events[-1].role_pulse, 4)  # ln(60 / 30) - ln 1.1
    (0.0, 0.5978)
    """
    if not usual:
        return
    memo: dict[tuple[str, int], float] = {}
    for event in events:
        key = (event.actor_role, int(event.ts // 3600))  # hour_of, inline: once per event
        value = memo.get(key)
        if value is None:
            week = usual.get(key[0])
            value = 0.0
            if week is not None:
                value = pulse(counts.in_window(*key), expected_in_window(week, key[1]))
            memo[key] = value
        event.role_pulse = value
