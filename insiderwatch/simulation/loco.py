"""Leave one behaviour class out: constants chosen without a class, then that class's recall.

The per-event threshold and the CUSUM limit are calibrated on unlabelled training traffic to
an alert budget, so no label can leak into them. What a developer would tune on labels are
the entity-risk constants (:mod:`models.risk`): the budget and the role reference quantile.
For every point of :data:`RISK_GRID` the detector's own scores (history and scored days, as
the evaluation's detector run produced them) are replayed through the risk arithmetic of
:mod:`models.risk`, the limits calibrated on the history alone, exactly as ``train`` does.
For each class, the grid point is chosen on the *other* classes (the highest recall among
points whose worst profile stays within :data:`TARGET_FALSE_ACTORS` false-alert actors per
1,000 actor-days, else the lowest worst profile); that point's recall on the held-out class
is the leave-one-class-out figure.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from insiderwatch.models.risk import (
    RiskLimits,
    calibrate_limits,
    risk_alert_indices,
    risk_excess,
    risk_peaks,
    role_references,
)
from insiderwatch.models.state import DAY_S
from insiderwatch.models.train import RISK_COOLDOWN_S

__all__ = ["RISK_GRID", "TARGET_FALSE_ACTORS", "ProfileRun", "leave_one_class_out"]

# (risk budget per 1,000 actor-days, role reference quantile); budget 0 = risk alerts off.
RISK_GRID: tuple[tuple[float, float], ...] = tuple(
    (budget, quantile) for budget in (0.0, 0.5, 1.0, 2.0) for quantile in (0.98, 0.99, 0.995)
)
TARGET_FALSE_ACTORS = 2.0


@dataclass
class ProfileRun:
    """What one profile's detector run leaves for replays (history and scored days)."""

    codes: np.ndarray  # actor code per event
    ts: np.ndarray
    roles: list[str]
    scores: np.ndarray
    flagged: np.ndarray  # the event raised (or joined) a per-event alert
    labels: np.ndarray  # sim_label, "" on history
    instances: np.ndarray  # sim_instance
    scenarios: np.ndarray  # sim_scenario
    split_ts: float  # first scored second
    warm_ts: float  # history used for calibration starts here (after the warm-up)
    event_caught: set[str] = field(default_factory=set)  # instances caught by event alerts
    event_false_actors: set[int] = field(default_factory=set)
    scored_actor_days: int = 1


def risk_outcome(run: ProfileRun, budget: float, quantile: float) -> tuple[set[str], set[int]]:
    """``(instances caught, false-alert actors)`` of the risk alerts on the scored days."""
    if budget <= 0.0:
        return set(), set()
    history = (run.ts < run.split_ts) & (run.ts >= run.warm_ts)
    roles = np.asarray(run.roles)
    references, default = role_references(list(roles[history]), run.scores[history], quantile)
    excess = risk_excess(run.roles, run.scores, ~run.flagged, references, default)
    days = (run.ts[history] // DAY_S).tolist()
    hist_days = len(set(zip(run.codes[history].tolist(), days, strict=True)))
    day_limit, week_limit = calibrate_limits(
        run.codes[history],
        run.ts[history],
        excess[history],
        budget * hist_days / 1000.0,
        RISK_COOLDOWN_S,
    )
    peaks = risk_peaks(run.codes, run.ts, excess)
    caught, false_actors = set(), set()
    for i in risk_alert_indices(peaks, RiskLimits(day_limit, week_limit, RISK_COOLDOWN_S)):
        if run.ts[i] < run.split_ts:
            continue
        if run.labels[i] == "insider":
            caught.add(str(run.instances[i]))
        else:
            false_actors.add(int(run.codes[i]))
    return caught, false_actors


def _grid_results(runs: list[ProfileRun]) -> dict:
    """Per grid point: caught instances per class (all profiles) and the worst profile's
    false-alert actors per 1,000 actor-days."""
    results = {}
    for point in RISK_GRID:
        caught: dict[str, int] = defaultdict(int)
        worst = 0.0
        for run in runs:
            risk_caught, risk_false = risk_outcome(run, *point)
            for inst in run.event_caught | risk_caught:
                caught[_class_of(run, inst)] += 1
            false_actors = run.event_false_actors | risk_false
            worst = max(worst, 1000.0 * len(false_actors) / max(run.scored_actor_days, 1))
        results[point] = (dict(caught), worst)
    return results


def _class_of(run: ProfileRun, instance: str) -> str:
    return str(run.scenarios[np.flatnonzero(run.instances == instance)[0]])


def _choose(results: dict, totals: dict[str, int], without: str | None) -> tuple:
    """The grid point with the best recall over the classes other than ``without``."""

    def recall(point) -> float:
        caught = results[point][0]
        rates = [caught.get(c, 0) / n for c, n in totals.items() if c != without and n]
        return float(np.mean(rates)) if rates else 0.0

    feasible = [p for p in RISK_GRID if results[p][1] <= TARGET_FALSE_ACTORS]
    if feasible:
        return max(feasible, key=lambda p: (recall(p), -results[p][1]))
    return min(RISK_GRID, key=lambda p: (results[p][1], -recall(p)))


def leave_one_class_out(runs: list[ProfileRun], totals: dict[str, int]) -> dict:
    """``{"held_out": rows, "grid": rows}``. One held-out row per class: the grid point chosen
    without it, its recall there, and the worst profile's false-alert actors per 1,000
    actor-days at that point. One grid row per point: caught instances per class and the
    worst profile's false-alert actors."""
    results = _grid_results(runs)
    grid = [
        {
            "risk_budget": point[0],
            "reference_quantile": point[1],
            "caught": results[point][0],
            "worst_false_actors_per_1000": results[point][1],
        }
        for point in RISK_GRID
    ]
    rows = []
    for cls, instances in totals.items():
        point = _choose(results, totals, cls)
        caught, worst = results[point]
        rows.append(
            {
                "class": cls,
                "risk_budget": point[0],
                "reference_quantile": point[1],
                "caught": caught.get(cls, 0),
                "instances": instances,
                "worst_false_actors_per_1000": worst,
            }
        )
    return {"held_out": rows, "grid": grid}


def format_loco(loco: dict, totals: dict[str, int]) -> str:
    """The held-out table, then the grid: each point's recall per class and worst profile."""
    rows = loco["held_out"]
    lines = [
        "leave one class out (entity-risk budget and reference quantile chosen without the "
        f"class; target <= {TARGET_FALSE_ACTORS:g} false-alert actors / 1k in the worst profile)",
        f"{'held-out class':<26}{'caught':>10}{'recall':>8}{'budget':>8}{'quantile':>10}"
        f"{'worst FA/1k':>13}",
    ]
    for r in rows:
        recall = r["caught"] / r["instances"] if r["instances"] else 0.0
        lines.append(
            f"{r['class']:<26}{r['caught']:>5}/{r['instances']:<4}{recall:>8.0%}"
            f"{r['risk_budget']:>8g}{r['reference_quantile']:>10g}"
            f"{r['worst_false_actors_per_1000']:>13.2f}"
        )
    classes = list(totals)
    lines += [
        "",
        "the grid (caught per class, in the order above; worst profile's false-alert actors/1k)",
    ]
    for g in loco["grid"]:
        caught = " ".join(f"{g['caught'].get(c, 0):>2}/{totals[c]:<2}" for c in classes)
        lines.append(
            f"budget {g['risk_budget']:<4g} quantile {g['reference_quantile']:<6g}{caught}"
            f"{g['worst_false_actors_per_1000']:>9.2f}"
        )
    return "\n".join(lines)
