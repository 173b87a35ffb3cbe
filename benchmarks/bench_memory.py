"""Memory benchmark: one worker's RSS with 100,000 active actors in the memory store.

Pre-fills a topic with ``--actors`` x ``--events-per-actor`` events (simulated accesses of a
500-actor organisation, re-assigned round-robin to distinct actor ids, same roles), runs one
worker over it and records its peak RSS, the actor-state count and the bytes of state it
wrote. Reference in the same run: the RSS of the same worker after its first batch (the
fixed cost of Python, Faust, numba and the model). Also its events/s in this sparse case,
where nearly every event is its actor's only one in its micro-batch, and those of the same
worker with detection taken out (``floor_worker.py``, as in ``bench_pipeline.py``), and of a
plain aiokafka consumer that JSON-decodes the same topic. The worker's and the consumer's
rates are sustained rates (between 10% and 90% of the topic consumed).

With ``--restarts`` it then restarts the worker on the filled store (same data directory and
consumer group) and times start to ``/ready``: after the clean stop of the fill run, then
after a ``kill -9``; the reference is the same worker's start to ready on an empty store.

Run: .venv/bin/python benchmarks/bench_memory.py [--actors 100000 --events-per-actor 3]
[--store rocksdb://] [--restarts] [--profile PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_pipeline import (  # noqa: E402
    FLOOR_WORKER,
    WORK,
    _metric,
    _process_cpu_s,
    _produce,
    _Progress,
    _raw_consume,
    _rss_mb,
    _run_worker,
    _settings,
    _start_profiler,
    _start_worker,
    _stop,
    _wait_ready,
)
from benchmarks.common import bench_broker, print_table, save  # noqa: E402
from insiderwatch.models.artifact import loads_cleanly  # noqa: E402
from insiderwatch.models.events import parse_event  # noqa: E402
from insiderwatch.models.train import train_model  # noqa: E402
from insiderwatch.simulation.simulate import SimulationConfig, simulate  # noqa: E402
from insiderwatch.stream.topics import create_topics  # noqa: E402


def _measure(args: argparse.Namespace, broker) -> None:
    templates = list(simulate(SimulationConfig(actors=500, days=10, seed=5)))
    model_dir = WORK / "model"
    if not loads_cleanly(model_dir):  # missing, or trained on an older feature set
        train_model([parse_event(orjson.dumps(d)) for d in templates], model_dir)
    total = args.actors * args.events_per_actor
    values = []
    for i in range(total):
        doc = dict(templates[i % len(templates)])
        doc["actor_id"] = f"mem-{i % args.actors:07d}"
        doc["event_id"] = f"mem-{i}"
        values.append((doc["actor_id"].encode(), orjson.dumps(doc)))

    tag = uuid.uuid4().hex[:6]
    settings = _settings(broker.bootstrap, tag, model_dir, store=args.store)
    create_topics(settings)
    _produce(settings, values)
    print(f"pre-filled {settings.topic_events} with {total} events of {args.actors} actors")
    # The reference, same topic and run: a plain aiokafka consumer that JSON-decodes it.
    raw_rate, raw_cpu_us = asyncio.run(_raw_consume(settings, total))
    print(f"plain aiokafka consumer: {raw_rate:,.0f} events/s, {raw_cpu_us:.1f} CPU us/event")

    started = time.perf_counter()
    worker = _start_worker(settings, f"worker-{tag}.log")
    profiler = None
    try:
        _wait_ready(6091)
        empty_ready_s = time.perf_counter() - started
        while (first := _metric(6091, "insiderwatch_events_consumed_total")) < 1:
            time.sleep(0.1)
        cpu_start = _process_cpu_s(worker.pid)
        profiler = _start_profiler(worker.pid, args.profile) if args.profile else None
        fixed_rss = _rss_mb(worker.pid)
        peak_rss = fixed_rss
        progress = _Progress(total)  # the consumer's rule: between 10% and 90% consumed
        while (consumed := _metric(6091, "insiderwatch_events_consumed_total")) < total:
            progress.sample(consumed)
            time.sleep(0.5)
            peak_rss = max(peak_rss, _rss_mb(worker.pid))
        progress.sample(consumed)
        # Throughput when nearly every event is the only one of its actor in its batch (each
        # writes its own changelog record), the case bench_pipeline's 500 busy actors avoid.
        rate = progress.rate()
        cpu_us = (_process_cpu_s(worker.pid) - cpu_start) / (total - first) * 1e6
        time.sleep(6)  # the actor-state gauges refresh every 5 s
        peak_rss = max(peak_rss, _rss_mb(worker.pid))
        # On RocksDB the worker counts its actors every 5 minutes only; here every actor id
        # of the topic is in state by construction.
        actors = (
            _metric(6091, "insiderwatch_actor_states")
            if args.store.startswith("memory://")
            else float(args.actors)
        )
        state_bytes = _metric(6091, "insiderwatch_actor_state_bytes")
    finally:
        _stop(worker)
    if profiler is not None:
        profiler.wait(timeout=60)
        print(f"profile of the worker (py-spy, collapsed stacks): {args.profile}")
    recovery = _recovery(settings, tag) if args.restarts else {}
    floor_rate, floor_cpu_us, _, _ = _run_worker(
        _settings(broker.bootstrap, tag, model_dir, app_tag=f"floor-{tag}", store=args.store),
        f"floor-{tag}.log",
        total,
        FLOOR_WORKER,
    )
    rows = [
        ["worker RSS after its first batch", f"{fixed_rss:.0f} MB", "fixed cost (reference)"],
        ["worker peak RSS", f"{peak_rss:.0f} MB", f"{actors:,.0f} actors in state"],
        [
            "RSS per actor above the fixed cost",
            f"{(peak_rss - fixed_rss) * 1024 * 1024 / max(actors, 1):,.0f} B",
            f"stored state: {state_bytes / max(actors, 1):,.0f} B per actor",
        ],
        [
            "worker throughput, one event per actor per batch",
            f"{rate:,.0f} events/s",
            f"{cpu_us:.1f} CPU us/event; every event writes its actor's state",
        ],
        [
            "plain aiokafka consumer that JSON-decodes the topic",
            f"{raw_rate:,.0f} events/s",
            f"{raw_cpu_us:.1f} CPU us/event; the worker runs at {rate / raw_rate:.0%} of it",
        ],
        [
            "same, detection taken out (floor_worker.py)",
            f"{floor_rate:,.0f} events/s",
            f"{floor_cpu_us:.1f} CPU us/event: intake, parse, state load/store, changelog",
        ],
    ]
    for how, seconds in recovery.items():
        rows.append(
            [
                f"start to ready after a {how}",
                f"{seconds:.1f} s",
                f"{actors:,.0f} actors in state; empty store: {empty_ready_s:.1f} s",
            ]
        )
    print_table(["measure", "value", "note"], rows)
    path = save(
        "memory",
        {
            "actors": actors,
            "events": total,
            "store": args.store,
            "fixed_rss_mb": fixed_rss,
            "peak_rss_mb": peak_rss,
            "state_bytes": state_bytes,
            "events_per_s": rate,
            "decoding_consumer_events_per_s": raw_rate,
            "decoding_consumer_cpu_us_per_event": raw_cpu_us,
            "cpu_us_per_event": cpu_us,
            "floor_events_per_s": floor_rate,
            "floor_cpu_us_per_event": floor_cpu_us,
            "empty_store_ready_s": empty_ready_s,
            "ready_s_after": recovery,
        },
    )
    print(f"saved {path}")


def _recovery(settings, tag: str) -> dict[str, float]:
    """Seconds from a worker's start to ``/ready`` on the filled store (same data directory
    and consumer group): after the clean stop of the fill run, then after a ``kill -9``."""
    seconds = {}
    for how in ("clean stop", "kill -9"):
        started = time.perf_counter()
        worker = _start_worker(settings, f"restart-{tag}-{how.replace(' ', '')}.log")
        try:
            _wait_ready(6091, timeout_s=1800)
            seconds[how] = time.perf_counter() - started
            time.sleep(2)
        finally:
            if how == "clean stop":
                os.killpg(worker.pid, signal.SIGKILL)  # the next start recovers from it
                worker.wait()
            else:
                _stop(worker)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--actors", type=int, default=100_000)
    parser.add_argument("--events-per-actor", type=int, default=3)
    parser.add_argument("--port", type=int, default=29092)
    parser.add_argument(
        "--store", default="memory://", help="table store: memory:// or rocksdb:// (production)"
    )
    parser.add_argument("--profile", metavar="PATH", help="py-spy the worker for 15 s into PATH")
    parser.add_argument(
        "--restarts",
        action="store_true",
        help="then time start-to-ready on the filled store after a clean stop and a kill -9",
    )
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    with bench_broker(args.port) as broker:
        _measure(args, broker)


if __name__ == "__main__":
    main()
