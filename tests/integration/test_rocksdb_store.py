"""The production table store: RocksDB on local disk, behind the same changelog.

``rocksdb://`` is what docs/operations.md tells operators to run. Faust's RocksDB store finds
the partition of a write from the event being processed, which the batch intake does not
have; these tests run the real worker on it, kill it, and restart it on the same disk.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.harness import Deployment
from tests.integration.test_faults import (
    N_EVENTS,
    _verify_nothing_lost,
    _workload,
    assert_the_state_gauge_counts_the_whole_store,
)

pytestmark = pytest.mark.integration


def test_kill_9_on_the_rocksdb_store_loses_nothing_and_restarts_from_its_own_disk(
    kafka_broker, small_model, tmp_path, report
):
    deployment = Deployment(
        kafka_broker.bootstrap,
        small_model,
        tmp_path,
        scores_topic=True,
        extra={"store": "rocksdb://"},
    )
    try:
        values = _workload()
        positions = deployment.produce(values)
        first = deployment.start_worker(data_dir="data-rocksdb")
        first.wait_ready()
        first.wait_metric("insiderwatch_events_consumed_total", N_EVENTS * 0.3, timeout_s=180)
        first.kill()  # SIGKILL: no shutdown, no final commit, no producer flush
        killed_at = time.monotonic()
        assert any((tmp_path / "data-rocksdb").rglob("*.sst")) or any(
            (tmp_path / "data-rocksdb").rglob("*.log")
        ), "the worker wrote no RocksDB files"

        second = deployment.start_worker(data_dir="data-rocksdb")
        second.wait_ready()
        _verify_nothing_lost(
            deployment, values, positions, small_model, "rocksdb crash", second, killed_at, report
        )
        assert_the_state_gauge_counts_the_whole_store(deployment, second)
    finally:
        deployment.stop()
