"""Shared helpers for the benchmarks: timing, machine facts, result files, the local broker."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


@contextmanager
def bench_broker(port: int) -> Iterator:
    """The benchmarks' local Kafka broker on ``port`` (controller on ``port + 1``), stopped on
    the way out also when a step fails, so no run leaves a broker behind."""
    from insiderwatch.stream.broker import LocalKafka

    broker = LocalKafka(
        REPO / ".local" / "bench-kafka", port=port, controller_port=port + 1, heap_mb=1024
    )
    # Empty data for every run: topics of earlier runs (29 GB after a few sessions) made the
    # broker busier (log cleaner, thousands of partitions) and the figures drift.
    print(f"broker: {broker.start(fresh=True)}")
    try:
        yield broker
    finally:
        broker.stop()


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    try:
        with open("/proc/cpuinfo") as handle:
            info["cpu"] = next(
                line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return info


def best_time(fn: Callable[[], object], repeat: int = 5, number: int = 1) -> float:
    """Median seconds per call over ``repeat`` rounds of ``number`` calls (after a warm-up)."""
    fn()
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - start) / number)
    return statistics.median(rounds)


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2))
    return path


def print_table(headers: list[str], rows: list[list]) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(str(h).rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))
