"""The shipped Grafana dashboard only queries metrics the worker exports."""

from __future__ import annotations

import json
import re

from insiderwatch.stream.metrics import WorkerMetrics
from tests.conftest import REPO


def test_dashboard_queries_exported_metrics():
    dashboard = json.loads((REPO / "docs" / "monitoring" / "grafana-dashboard.json").read_text())
    exported = {m.name for m in WorkerMetrics().registry.collect()}
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"insiderwatch_[a-z_]+", target["expr"]))
    assert used
    for name in used:
        base = re.sub(r"_(total|bucket|sum|count)$", "", name)
        assert base in exported, f"{name} is not exported by the worker"
