"""Sustained anomalies: an event-time CUSUM of each actor's scores.

An isolation forest scores a burst's events against the most extreme *training* points, so a
long burst can plateau just under the point threshold. The CUSUM adds up how far each of an
actor's scores sits above a reference (a high quantile of training scores), decaying with
event time, and flags the actor when the evidence passes a limit (Page, 1954, "Continuous
inspection schemes", Biometrika). Both the reference and the limit are calibrated on the
training replay so that point and sustained alerts together stay within the alert budget.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["CUSUM_TAU_S", "cusum_step", "cusum_series"]

CUSUM_TAU_S = 600.0


def cusum_step(
    previous: float, previous_ts: float, ts: float, score: float, reference: float
) -> float:
    """One update: decay the evidence to ``ts``, add ``score - reference``, floor at 0.

    >>> round(cusum_step(0.0, 0.0, 0.0, 0.70, 0.60), 6)
    0.1
    >>> round(cusum_step(0.1, 0.0, 600.0, 0.55, 0.60), 6)  # decays one time constant, then drops
    0.0
    """
    dt = ts - previous_ts
    decayed = previous * math.exp(-dt / CUSUM_TAU_S) if dt > 0 else previous
    return max(0.0, decayed + score - reference)


def cusum_series(
    actor_codes: np.ndarray, ts: np.ndarray, scores: np.ndarray, reference: float
) -> np.ndarray:
    """The CUSUM after each event of a replay (events in time order, any actor mix)."""
    state: dict[int, tuple[float, float]] = {}
    out = np.empty(scores.size, dtype=np.float64)
    for i in range(scores.size):
        actor = int(actor_codes[i])
        value, last = state.get(actor, (0.0, ts[i]))
        value = cusum_step(value, last, ts[i], float(scores[i]), reference)
        state[actor] = (value, max(last, ts[i]))
        out[i] = value
    return out
