"""Quality benchmark: AUC of insiderwatch's scorer vs scikit-learn's (same forests, same seeds)
and the published iForest AUCs (Liu et al. 2008) on the shared ODDS datasets.

Run: .venv/bin/python benchmarks/bench_quality.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import print_table, save  # noqa: E402
from insiderwatch.models.forest import export_forest, score  # noqa: E402

ODDS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "odds"


def published() -> dict[str, float]:
    """Liu et al. 2008 AUCs by file name, read from PUBLISHED_AUC.md."""
    out = {}
    for line in (ODDS / "PUBLISHED_AUC.md").read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 4 and re.fullmatch(r"[0-9.]+", cells[2] or "x"):
            match = re.search(r"(\d+_[\w.-]+\.npz)", cells[4])
            if match:
                out[match.group(1)] = float(cells[2])
    return out


def main() -> None:
    warnings.filterwarnings("ignore", message="max_samples")  # small files: sklearn uses n rows
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    reference = json.loads((ODDS / "SKLEARN_AUC.json").read_text())
    liu = published()
    rows, results = [], []
    worst_gap = 0.0
    for path in sorted(ODDS.glob("*.npz"), key=lambda p: int(p.name.split("_")[0])):
        with np.load(path, allow_pickle=False) as data:
            x, y = data["X"].astype(np.float64), data["y"]
        ours, theirs = [], []
        started = time.perf_counter()
        for seed in range(args.seeds):
            forest = IsolationForest(n_estimators=100, max_samples=256, random_state=seed).fit(x)
            ours.append(roc_auc_score(y, score(export_forest(forest), x)))
            theirs.append(roc_auc_score(y, -forest.score_samples(x)))
        gap = abs(np.mean(ours) - np.mean(theirs))
        worst_gap = max(worst_gap, gap)
        published_auc = liu.get(path.name)
        ref = reference.get(path.name, {}).get("auc_mean")
        results.append(
            {
                "dataset": path.name,
                "ours": float(np.mean(ours)),
                "sklearn": float(np.mean(theirs)),
                "sklearn_reference_file": ref,
                "liu2008": published_auc,
                "seconds": time.perf_counter() - started,
            }
        )
        rows.append(
            [
                path.stem,
                f"{np.mean(ours):.4f}",
                f"{np.mean(theirs):.4f}",
                f"{gap:.1e}",
                "" if ref is None else f"{ref:.4f}",
                "" if published_auc is None else f"{published_auc:.2f}",
                "" if published_auc is None else f"{np.mean(ours) - published_auc:+.3f}",
            ]
        )
    print(
        f"quality: ROC AUC, mean over seeds 0..{args.seeds - 1}, 100 trees, max_samples 256, fit and scored on all rows"
    )
    print_table(
        ["dataset", "ours", "sklearn", "|diff|", "SKLEARN_AUC.json", "Liu08", "ours-Liu08"], rows
    )
    print(f"largest |ours - sklearn| = {worst_gap:.2e}")
    print(
        f"saved {save('quality', {'seeds': args.seeds, 'largest_gap': worst_gap, 'results': results})}"
    )


if __name__ == "__main__":
    main()
