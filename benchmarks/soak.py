"""Soak: one worker at a steady rate near its capacity for a bounded time (default 10 min).

Every 10 s it records the worker's RSS, its consumer lag (from /metrics) and the consumed
rate, then writes ``results/soak.csv`` and ``results/soak.png`` and reports the RSS slope over
the second half of the run (the first half includes state growth as actors appear).

Run: .venv/bin/python benchmarks/soak.py [--minutes 10] [--rate 10000]
"""

from __future__ import annotations

import argparse
import csv
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_pipeline import (  # noqa: E402
    WORK,
    _metric,
    _rss_mb,
    _settings,
    _start_worker,
    _stop,
    _wait_ready,
)
from benchmarks.common import RESULTS, bench_broker, save  # noqa: E402
from insiderwatch.models.artifact import loads_cleanly  # noqa: E402
from insiderwatch.models.events import parse_event  # noqa: E402
from insiderwatch.models.train import train_model  # noqa: E402
from insiderwatch.simulation.simulate import SimulationConfig, simulate  # noqa: E402
from insiderwatch.stream.topics import create_topics  # noqa: E402


def _producer_loop(
    settings, docs: list[dict], span_s: float, rate: float, stop: threading.Event
) -> None:
    """Offer ``rate`` events/s until stopped: the simulated days repeat, shifted forward in event time."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=settings.broker, acks=1, linger_ms=5, batch_size=512 * 1024
    )
    start, sent = time.monotonic(), 0
    while not stop.is_set():
        cycle, index = divmod(sent, len(docs))
        doc = docs[index]
        if cycle:
            shifted = datetime.fromisoformat(doc["timestamp"]).timestamp() + cycle * span_s
            doc = {
                **doc,
                "event_id": f"{doc['event_id']}-c{cycle}",
                "timestamp": datetime.fromtimestamp(shifted, UTC)
                .isoformat()
                .replace("+00:00", "Z"),
            }
        producer.send(settings.topic_events, key=doc["actor_id"].encode(), value=orjson.dumps(doc))
        sent += 1
        ahead = sent / rate - (time.monotonic() - start)
        if ahead > 0.002:
            time.sleep(ahead)
    producer.flush()
    producer.close()


def _measure(args: argparse.Namespace, broker) -> None:
    days = 10  # 1,000 actors x 10 days, replayed in a loop shifted forward in event time
    # Day 0 in 2001 (a Monday, like the default start): the loop shifts event time forward by
    # `days` per cycle, and the worker refuses events far ahead of their Kafka record's
    # timestamp, so even an hours-long soak must stay in the past.
    docs = list(simulate(SimulationConfig(actors=1000, days=days, seed=21, start="2001-01-01")))
    span_s = days * 86400.0
    model_dir = WORK / "soak-model"
    if not loads_cleanly(model_dir):  # missing, or trained on an older feature set
        train_model([parse_event(orjson.dumps(d)) for d in docs], model_dir, warmup_days=3)
    settings = _settings(broker.bootstrap, "soak" + uuid.uuid4().hex[:6], model_dir)
    create_topics(settings)
    worker = _start_worker(settings, "soak-worker.log")
    stop = threading.Event()
    rows = []
    try:
        _wait_ready(6091)
        thread = threading.Thread(
            target=_producer_loop, args=(settings, docs, span_s, args.rate, stop), daemon=True
        )
        thread.start()
        started = time.monotonic()
        last_consumed, last_t = 0.0, started
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(10)
            now = time.monotonic()
            consumed = _metric(6091, "insiderwatch_events_consumed_total")
            rows.append(
                {
                    "t_s": round(now - started, 1),
                    "rss_mb": round(_rss_mb(worker.pid), 1),
                    "lag": _metric(6091, "insiderwatch_consumer_lag"),
                    "events_per_s": round((consumed - last_consumed) / (now - last_t), 1),
                    "actors": _metric(6091, "insiderwatch_actor_states"),
                }
            )
            last_consumed, last_t = consumed, now
            print(rows[-1], flush=True)
    finally:
        stop.set()
        _stop(worker)
    RESULTS.mkdir(exist_ok=True)
    with (RESULTS / "soak.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    t = np.array([r["t_s"] for r in rows])
    rss = np.array([r["rss_mb"] for r in rows])
    half = t >= t.max() / 2
    slope = float(np.polyfit(t[half], rss[half], 1)[0] * 60) if half.sum() > 2 else 0.0
    _plot(rows)
    summary = {
        "minutes": args.minutes,
        "offered_rate": args.rate,
        "rss_start_mb": float(rss[0]),
        "rss_end_mb": float(rss[-1]),
        "rss_slope_second_half_mb_per_min": slope,
        "mean_events_per_s": float(np.mean([r["events_per_s"] for r in rows])),
        "max_lag": float(max(r["lag"] for r in rows)),
        "samples": len(rows),
    }
    print(summary)
    print(f"saved {save('soak', summary)}, {RESULTS / 'soak.csv'}, {RESULTS / 'soak.png'}")


def _plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t_s"] / 60 for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    for ax, key, label in zip(
        axes,
        ("rss_mb", "lag", "events_per_s"),
        ("worker RSS (MB)", "consumer lag", "events/s"),
        strict=True,
    ):
        ax.plot(t, [r[key] for r in rows])
        ax.set_ylabel(label)
    axes[-1].set_xlabel("minutes")
    fig.suptitle("insiderwatch soak")
    fig.tight_layout()
    fig.savefig(RESULTS / "soak.png", dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--rate",
        type=float,
        default=10_000.0,
        help="offered events/s (a worker sustains ~30,000; this producer tops out near 10,500)",
    )
    parser.add_argument("--port", type=int, default=29092)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    with bench_broker(args.port) as broker:
        _measure(args, broker)


if __name__ == "__main__":
    main()
