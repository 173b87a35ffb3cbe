"""Offline benchmark: events/s of `insiderwatch score` on a simulated file, next to a plain
JSON-decoding loop over the same file (the floor cost of reading it) in the same run.

Run: .venv/bin/python benchmarks/bench_offline.py [--actors 500 --days 10]
(one process, then ``--workers`` = the machine's CPU count)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import print_table, save  # noqa: E402
from insiderwatch.models.events import parse_event  # noqa: E402
from insiderwatch.models.train import train_model  # noqa: E402
from insiderwatch.simulation.simulate import SimulationConfig, simulate, write_jsonl  # noqa: E402

WORK = Path(__file__).resolve().parent.parent / ".local" / "bench-offline"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--actors", type=int, default=500)
    parser.add_argument("--days", type=int, default=10)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    history, live = WORK / "history.jsonl", WORK / "live.jsonl"
    config = SimulationConfig(actors=args.actors, days=args.days + 8, seed=9, scenarios_from_day=8)
    write_jsonl(simulate(SimulationConfig(**{**config.__dict__, "end_day": 8})), str(history))
    count = write_jsonl(
        simulate(SimulationConfig(**{**config.__dict__, "start_day": 8})), str(live)
    )
    train_model(
        [parse_event(line) for line in history.read_bytes().splitlines()],
        WORK / "model",
        warmup_days=3,
    )

    started = time.perf_counter()
    with live.open("rb") as handle:
        for line in handle:
            orjson.loads(line)
    decode_rate = count / (time.perf_counter() - started)

    def score_rate(workers: int) -> float:
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "insiderwatch",
                "score",
                "--model-dir",
                str(WORK / "model"),
                "--events",
                str(live),
                "--out",
                str(WORK / f"alerts-{workers}.jsonl"),
                "--workers",
                str(workers),
            ],
            check=True,
            capture_output=True,
        )
        return count / (time.perf_counter() - started)

    rates = {workers: score_rate(workers) for workers in (1, os.cpu_count() or 1)}
    rows = [["plain orjson decode of the file", f"{decode_rate:,.0f}", "floor: read + parse only"]]
    for workers, rate in rates.items():
        rows.append(
            [
                f"insiderwatch score --workers {workers} (whole command)",
                f"{rate:,.0f}",
                f"{rate / decode_rate:.1%} of decode",
            ]
        )
    print_table(["measure", "events/s", "note"], rows)
    result = {
        "events": count,
        "decode_events_per_s": decode_rate,
        "score_events_per_s": rates[1],
        "score_events_per_s_by_workers": {str(k): v for k, v in rates.items()},
    }
    print(f"saved {save('offline', result)}")


if __name__ == "__main__":
    main()
