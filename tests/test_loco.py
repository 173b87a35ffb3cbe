"""Leave-one-class-out: the grid point is chosen without the held-out class."""

from __future__ import annotations

import numpy as np

from insiderwatch.simulation import loco
from insiderwatch.simulation.loco import RISK_GRID, ProfileRun, risk_outcome

TOTALS = {"a": 2, "b": 2}


def _results(special: dict) -> dict:
    base = {point: ({}, 0.5) for point in RISK_GRID}
    base.update(special)
    return base


def test_the_point_is_chosen_on_the_other_classes_within_the_false_alert_target():
    results = _results({(1.0, 0.99): ({"a": 2}, 1.0), (2.0, 0.99): ({"a": 2, "b": 2}, 5.0)})
    # Holding out b, a's recall decides: (1.0, 0.99) catches a within the target; (2.0, 0.99)
    # catches both but over the target.
    assert loco._choose(results, TOTALS, "b") == (1.0, 0.99)
    # Holding out a, no feasible point catches b: the first with the fewest false alerts.
    assert loco._choose(results, TOTALS, "a") == RISK_GRID[0]


def test_without_a_feasible_point_the_fewest_false_alerts_win():
    results = {point: ({"a": 2}, 9.0) for point in RISK_GRID}
    results[(0.5, 0.995)] = ({}, 3.0)
    assert loco._choose(results, TOTALS, "b") == (0.5, 0.995)


def _run() -> ProfileRun:
    """Two actors of one role: a day of history, then a scored day on which actor 1 keeps
    scoring high. Scores are spread so the role's quantiles are well defined."""
    rng = np.random.default_rng(0)
    n = 2000
    ts = np.sort(rng.uniform(0, 2 * 86400, n))
    codes = rng.integers(0, 2, n)
    scores = rng.uniform(0.3, 0.6, n)
    scored = ts >= 86400
    scores[scored & (codes == 1)] = 0.65
    labels = np.where(scored & (codes == 1), "insider", "normal")
    instances = np.where(labels == "insider", "x#0", "")
    return ProfileRun(
        codes=codes,
        ts=ts,
        roles=["r"] * n,
        scores=scores,
        flagged=np.zeros(n, dtype=bool),
        labels=labels,
        instances=instances,
        scenarios=np.where(labels == "insider", "x", ""),
        split_ts=86400.0,
        warm_ts=0.0,
        scored_actor_days=2,
    )


def test_risk_replay_catches_the_actor_whose_scores_stay_high():
    run = _run()
    assert risk_outcome(run, 0.0, 0.99) == (set(), set())  # budget 0: off
    caught, false_actors = risk_outcome(run, 500.0, 0.99)
    assert caught == {"x#0"} and false_actors <= {0}
