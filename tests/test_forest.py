"""The array scorer equals scikit-learn's score_samples, on random data and on ODDS datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from insiderwatch.models.forest import export_forest, path_attribution, score

ODDS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "odds"
ODDS_FILES = sorted(ODDS.glob("*.npz"))
MAX_SCORED_ROWS = 20_000


@pytest.mark.parametrize("max_features", [1.0, 0.5])
def test_parity_on_random_data(max_features):
    rng = np.random.default_rng(4)
    train = rng.normal(size=(4000, 24))
    forest = IsolationForest(
        n_estimators=100, max_samples=256, max_features=max_features, random_state=2
    ).fit(train)
    probe = np.vstack([rng.normal(size=(2000, 24)) * 3, train[:500]])
    ours = score(export_forest(forest), probe)
    assert np.max(np.abs(ours + forest.score_samples(probe))) <= 1e-9


def test_shared_odds_datasets_are_present():
    assert len(ODDS_FILES) >= 40, f"expected the ODDS datasets in {ODDS}"


@pytest.mark.parametrize("path", ODDS_FILES, ids=[p.stem for p in ODDS_FILES])
def test_parity_on_odds_dataset(path):
    with np.load(path, allow_pickle=False) as data:
        x = data["X"].astype(np.float64)
    forest = IsolationForest(n_estimators=100, max_samples=256, random_state=0).fit(x)
    rows = (
        x
        if len(x) <= MAX_SCORED_ROWS
        else x[np.random.default_rng(0).choice(len(x), MAX_SCORED_ROWS, replace=False)]
    )
    ours = score(export_forest(forest), rows)
    assert np.max(np.abs(ours + forest.score_samples(rows))) <= 1e-9


def test_attribution_credits_the_feature_that_isolates():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(3000, 5))
    forest = export_forest(IsolationForest(n_estimators=100, random_state=0).fit(train))
    outlier = np.zeros((1, 5))
    outlier[0, 3] = 12.0
    shares = path_attribution(forest, outlier)[0]
    baseline = path_attribution(forest, train[:500]).mean(axis=0)
    assert int(np.argmax(shares - baseline)) == 3
    assert 0 < shares.sum() <= 1.0


def test_scorer_refuses_wrong_width():
    rng = np.random.default_rng(0)
    forest = export_forest(
        IsolationForest(n_estimators=5, random_state=0).fit(rng.normal(size=(100, 3)))
    )
    with pytest.raises(ValueError, match="shape"):
        score(forest, np.zeros((2, 4)))
