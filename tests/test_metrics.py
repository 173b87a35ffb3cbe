"""Bulk histogram observation equals one ``observe`` per value (prometheus-client internals)."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from insiderwatch.stream.metrics import observe_many

BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


def _histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("h", "h", registry=registry, buckets=BUCKETS)


def test_observe_many_matches_observe_one_by_one():
    values = np.random.default_rng(3).exponential(0.5, size=5_000).tolist()
    values += [0.0, 0.01, 0.05, 1.0, 5.0, 5.000001, 1e9]  # on and past the bucket bounds
    one_by_one_registry, one_by_one = _histogram()
    for value in values:
        one_by_one.observe(value)
    bulk_registry, bulk = _histogram()
    observe_many(bulk, values[:1000])
    observe_many(bulk, values[1000:])
    observe_many(bulk, [])
    assert _samples(bulk_registry) == _samples(one_by_one_registry)


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    samples = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name.endswith("_created"):
                continue
            key = sample.name + str(sorted(sample.labels.items()))
            value = sample.value
            samples[key] = round(value, 6)  # the sum is added in another order
    assert any(name.startswith("h_bucket") for name in samples)
    return samples
