"""Entity risk: evidence about one actor accumulated over hours and days, in event time.

A quiet insider's accesses are each only a little unusual: they score in the upper tail of
the role, under the per-event threshold, day after day. Every event adds its *excess* to the
actor's risk: how far its score sits above the role's reference (a high quantile of the
role's training scores, so a role whose work scores higher is not blamed for it). The risk
is two decayed sums of those excesses, over ~24 h and ~7 d (time constants
:data:`RISK_TAU_DAY_S` and :data:`RISK_TAU_WEEK_S`), updated only by events with an excess,
exactly like the windows of :mod:`models.state`. When either sum reaches its limit (both
calibrated at training time so that risk alerts spend their own budget per 1,000
actor-days), the actor gets one alert of kind ``entity_risk``, then none for
``cooldown_s`` of event time.

The same functions run in training (calibration), offline ``score`` and the worker; the
compiled kernel (:mod:`models.compiled`) runs the same arithmetic, held to it bit for bit by
``tests/test_compiled.py``. This is the idea of risk-based alerting (Splunk RBA, Elastic
entity risk scoring), fed by every event's score rather than by hand-written rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from insiderwatch.models.state import DAY_S, RISK_EVIDENCE, ActorState

__all__ = [
    "DEFAULT_RISK_BUDGET",
    "RISK_TAU_DAY_S",
    "RISK_TAU_WEEK_S",
    "RISK_EXCESS_CAP",
    "RISK_DAYS_KEPT",
    "RiskLimits",
    "add_risk",
    "risk_due",
    "days_with_risk",
    "risk_alert_count",
    "risk_alert_indices",
    "risk_excess",
    "calibrate_limits",
    "risk_peaks",
]

# Entity-risk alerts per 1,000 actor-days of training history (0 = off: risk is still kept,
# but no limit is reached). A role-wide surge no longer raises every member's risk at once:
# the volume features subtract the role pulse (models.pulse).
DEFAULT_RISK_BUDGET = 1.0
RISK_TAU_DAY_S = 86400.0
RISK_TAU_WEEK_S = 7 * 86400.0
# An event adds at most this much score excess: many events just above the reference (a
# modest excess day after day) weigh like a few far above it (which mostly raise their own
# alerts anyway).
RISK_EXCESS_CAP = 0.03
RISK_DAYS_KEPT = 7  # days remembered in ActorState.risk_days (and the evidence's horizon)
_DAYS_MASK = (1 << RISK_DAYS_KEPT) - 1
_EVIDENCE_HORIZON_S = RISK_DAYS_KEPT * 86400


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """When an actor's risk raises an alert (from the model's manifest)."""

    day_limit: float
    week_limit: float
    cooldown_s: float


def add_risk(state: ActorState, ts: float, score: float, excess: float, pair_hash: int) -> None:
    """Add one event's ``excess`` (> 0) to the actor's risk and, if it is among the
    strongest of the last week, to the evidence.

    A late event (older than ``state.risk_ts``) is added with the decay it would have had.

    >>> s = ActorState(0.0, 0.0)
    >>> add_risk(s, 86400.0, 0.8, 0.1, 7)
    >>> add_risk(s, 2 * 86400.0, 0.9, 0.2, 7)
    >>> round(s.risk_day, 4), round(s.risk_week, 4), bin(s.risk_days)  # 0.1/e + 0.2
    (0.2368, 0.2867, '0b11')
    >>> s.risk_evidence
    [[86400, 800000, 7], [172800, 900000, 7]]
    """
    dt = ts - state.risk_ts
    day, last_day = int(ts // DAY_S), int(state.risk_ts // DAY_S)
    if dt >= 0:
        state.risk_day = state.risk_day * math.exp(-dt / RISK_TAU_DAY_S) + excess
        state.risk_week = state.risk_week * math.exp(-dt / RISK_TAU_WEEK_S) + excess
        shift = day - last_day
        days = (state.risk_days << shift) & _DAYS_MASK if shift < RISK_DAYS_KEPT else 0
        state.risk_days = days | 1
        state.risk_ts = ts
    else:
        state.risk_day += excess * math.exp(dt / RISK_TAU_DAY_S)
        state.risk_week += excess * math.exp(dt / RISK_TAU_WEEK_S)
        back = last_day - day
        if back < RISK_DAYS_KEPT:
            state.risk_days |= 1 << back
    _keep_evidence(state.risk_evidence, int(ts), int(score * 1e6), pair_hash)


def _keep_evidence(evidence: list[list[int]], seconds: int, micro: int, pair_hash: int) -> None:
    """Keep the :data:`RISK_EVIDENCE` highest-scoring events of the last week: a new event
    replaces one older than a week (the oldest) or else the lowest score (the first of
    equals), if it scores higher."""
    if len(evidence) < RISK_EVIDENCE:
        evidence.append([seconds, micro, pair_hash])
        return
    cutoff = seconds - _EVIDENCE_HORIZON_S
    weakest = min(range(len(evidence)), key=lambda k: _evidence_rank(evidence[k], cutoff))
    stale = evidence[weakest][0] < cutoff
    if stale or micro > evidence[weakest][1]:
        evidence[weakest] = [seconds, micro, pair_hash]


def _evidence_rank(entry: list[int], cutoff: int) -> tuple[int, int]:
    """Entries older than ``cutoff`` go first (the oldest first), then the lowest scores."""
    return (0, entry[0]) if entry[0] < cutoff else (1, entry[1])


def risk_due(state: ActorState, ts: float, limits: RiskLimits) -> bool:
    """Whether the actor's risk, just raised at ``ts``, is due an alert; if so the alert is
    recorded (``risk_alert_ts``). At most one per ``cooldown_s`` of event time.

    >>> s = ActorState(0.0, 0.0, risk_week=2.0, risk_ts=100.0)
    >>> limits = RiskLimits(1.0, 1.5, 86400.0)
    >>> risk_due(s, 100.0, limits), risk_due(s, 200.0, limits)
    (True, False)
    """
    if state.risk_alert_ts > 0.0 and ts - state.risk_alert_ts < limits.cooldown_s:
        return False
    if state.risk_day >= limits.day_limit or state.risk_week >= limits.week_limit:
        state.risk_alert_ts = ts
        return True
    return False


def days_with_risk(state: ActorState) -> int:
    """On how many of the last :data:`RISK_DAYS_KEPT` days (to ``risk_ts``) risk was added."""
    return state.risk_days.bit_count()


def _risk_replay(
    actor_codes: np.ndarray, ts: np.ndarray, excess: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indices, day risk, week risk)`` after each event with an excess, in time order: the
    arithmetic of :func:`add_risk` over a replay (events sorted by time)."""
    last: dict[int, tuple[float, float, float]] = {}
    index = np.flatnonzero(excess > 0.0)
    index = index[np.argsort(ts[index], kind="stable")]
    day_values = np.empty(index.size)
    week_values = np.empty(index.size)
    for k, i in enumerate(index.tolist()):
        actor, t, x = int(actor_codes[i]), float(ts[i]), float(excess[i])
        day, week, at = last.get(actor, (0.0, 0.0, 0.0))
        dt = t - at
        if dt >= 0:
            day = day * math.exp(-dt / RISK_TAU_DAY_S) + x
            week = week * math.exp(-dt / RISK_TAU_WEEK_S) + x
            at = t
        else:
            day += x * math.exp(dt / RISK_TAU_DAY_S)
            week += x * math.exp(dt / RISK_TAU_WEEK_S)
        last[actor] = (day, week, at)
        day_values[k], week_values[k] = day, week
    return index, day_values, week_values


def risk_peaks(actor_codes: np.ndarray, ts: np.ndarray, excess: np.ndarray):
    """The replay of :func:`_risk_replay`, for :func:`risk_alert_count` and calibration."""
    return (actor_codes, ts, *_risk_replay(actor_codes, ts, excess))


def risk_alert_count(peaks, limits: RiskLimits) -> int:
    """How many entity-risk alerts :func:`risk_due` raises over a replay (:func:`risk_peaks`).

    >>> codes, ts = np.array([0, 0, 1]), np.array([0.0, 10.0, 5.0])
    >>> peaks = risk_peaks(codes, ts, np.array([0.6, 0.6, 0.5]))
    >>> risk_alert_count(peaks, RiskLimits(1.0, 9.0, 86400.0))
    1
    """
    return len(risk_alert_indices(peaks, limits))


def risk_alert_indices(peaks, limits: RiskLimits) -> list[int]:
    """The events (indices into the replayed arrays) at which :func:`risk_due` raises an
    alert over a replay (:func:`risk_peaks`), in time order."""
    actor_codes, ts, index, day_values, week_values = peaks
    alerted: dict[int, float] = {}
    crossing = []
    for i, day, week in zip(index.tolist(), day_values.tolist(), week_values.tolist(), strict=True):
        if day < limits.day_limit and week < limits.week_limit:
            continue
        actor, t = int(actor_codes[i]), float(ts[i])
        previous = alerted.get(actor, 0.0)
        if previous > 0.0 and t - previous < limits.cooldown_s:
            continue
        alerted[actor] = t
        crossing.append(i)
    return crossing


def calibrate_limits(
    actor_codes: np.ndarray, ts: np.ndarray, excess: np.ndarray, allowed: float, cooldown_s: float
) -> tuple[float, float]:
    """``(day_limit, week_limit)`` that raise at most ``allowed`` alerts over the replay of
    ``excess`` (half each); infinite when ``allowed`` is 0 (risk alerts off)."""
    if allowed <= 0.0:
        return math.inf, math.inf
    peaks = risk_peaks(actor_codes, ts, excess)
    week_limit = calibrate_limit(peaks, allowed / 2, cooldown_s, "week")
    day_limit = calibrate_limit(peaks, allowed / 2, cooldown_s, "day")
    return day_limit, week_limit


def calibrate_limit(
    peaks, allowed: float, cooldown_s: float, which: str, other: float = math.inf
) -> float:
    """The lowest ``which`` ("day" or "week") limit whose replay raises at most ``allowed``
    alerts, the other limit held at ``other`` (infinite: no risk at all without a peak)."""
    values = peaks[3] if which == "day" else peaks[4]
    candidates = np.unique(values)[::-1][: max(2000, int(allowed * 200))]
    if candidates.size == 0:
        return math.inf

    def count(limit: float) -> int:
        pair = (limit, other) if which == "day" else (other, limit)
        return risk_alert_count(peaks, RiskLimits(*pair, cooldown_s))

    # When even the highest peak is over budget, the limit sits just above it: more risk
    # than any actor built up in training.
    best, lo, hi = float(np.nextafter(candidates[0], math.inf)), 0, candidates.size - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if count(float(candidates[mid])) <= allowed:
            best = float(candidates[mid])
            lo = mid + 1
        else:
            hi = mid - 1
    return best


def risk_excess(
    roles: Sequence[str],
    scores: np.ndarray,
    unflagged: np.ndarray,
    references: dict[str, float],
    default: float,
) -> np.ndarray:
    """Each event's excess over its role's reference, at most :data:`RISK_EXCESS_CAP` (0 for a
    flagged event: it raises its own alert), the input of :func:`risk_peaks`.

    >>> risk_excess(["a", "b", "a"], np.array([0.62, 0.66, 0.9]), np.array([True, True, True]),
    ...             {"a": 0.6}, 0.65)
    array([0.02, 0.01, 0.03])
    """
    reference = np.fromiter(
        (references.get(role, default) for role in roles), dtype=np.float64, count=len(roles)
    )
    excess = np.minimum(np.maximum(scores - reference, 0.0), RISK_EXCESS_CAP)
    return np.where(unflagged, excess, 0.0)


def role_references(
    roles: Sequence[str], scores: np.ndarray, quantile: float, min_events: int = 1000
) -> tuple[dict[str, float], float]:
    """``(reference per role, default)``: each role's ``quantile`` of ``scores``, never below
    the quantile over all roles (the default, also used for roles with fewer than
    ``min_events`` events or none).

    >>> refs, default = role_references(["a"] * 4 + ["b"] * 4,
    ...                                 np.array([.1, .2, .3, .4, .5, .6, .7, .8]), 0.5, 1)
    >>> {k: round(v, 3) for k, v in refs.items()}, round(default, 3)
    ({'a': 0.45, 'b': 0.65}, 0.45)
    """
    default = float(np.quantile(scores, quantile))
    names = np.asarray(roles)
    references = {}
    for role in sorted(set(roles)):
        mine = scores[names == role]
        if mine.size >= min_events:
            references[role] = max(default, float(np.quantile(mine, quantile)))
    return references, default
