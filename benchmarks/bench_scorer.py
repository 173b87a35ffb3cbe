"""Scorer benchmark: insiderwatch's array scorer vs scikit-learn, same forest, same run.

Run: .venv/bin/python benchmarks/bench_scorer.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import best_time, print_table, save  # noqa: E402
from insiderwatch.models.forest import export_forest, path_attribution, score  # noqa: E402

N_FEATURES = 24


def main() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(20_000, N_FEATURES))
    forest = IsolationForest(n_estimators=100, max_samples=256, random_state=0).fit(train)
    arrays = export_forest(forest)
    probe = rng.normal(size=(10_000, N_FEATURES)) * 1.5
    assert np.max(np.abs(score(arrays, probe) + forest.score_samples(probe))) <= 1e-9
    rows, results = [], []
    for size in (1, 100, 1_000, 10_000):
        batch = probe[:size]
        number = {1: 200, 100: 20, 1_000: 5, 10_000: 1}[size]
        ours = best_time(lambda b=batch: score(arrays, b), repeat=5, number=number)
        theirs = best_time(
            lambda b=batch: forest.score_samples(b), repeat=3, number=max(1, number // 20)
        )
        attribution = best_time(
            lambda b=batch: path_attribution(arrays, b), repeat=3, number=max(1, number // 5)
        )
        results.append(
            {
                "batch": size,
                "ours_s": ours,
                "sklearn_s": theirs,
                "attribution_s": attribution,
                "speedup": theirs / ours,
                "ours_events_per_s": size / ours,
                "sklearn_events_per_s": size / theirs,
            }
        )
        rows.append(
            [
                size,
                f"{ours * 1e6:,.1f}",
                f"{theirs * 1e6:,.1f}",
                f"{theirs / ours:,.1f}x",
                f"{size / ours:,.0f}",
                f"{size / theirs:,.0f}",
                f"{attribution * 1e6:,.1f}",
            ]
        )
    print(f"scorer: 100 trees, max_samples 256, {N_FEATURES} features; times are per call (us)")
    print_table(
        ["batch", "ours us", "sklearn us", "speedup", "ours ev/s", "sklearn ev/s", "attrib us"],
        rows,
    )
    print(f"saved {save('scorer', {'n_features': N_FEATURES, 'results': results})}")


if __name__ == "__main__":
    main()
