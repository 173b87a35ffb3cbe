"""Stored actor-state bytes on a realistic replay (not part of the test run).

Simulates the 500 actors of ``insiderwatch evaluate --profiles`` profile 1 over 28 days
(scenarios from day 21), trains on the first 21 days, replays all 28 through the detector and
reports the stored size of every actor's state (MessagePack plus the 12-byte input position
the worker stores with it): mean, p99 and max. The largest state the event contract allows is
``tests/test_state.py``'s.

Run: .venv/bin/python benchmarks/bench_state_size.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from insiderwatch.models.artifact import load_model  # noqa: E402
from insiderwatch.models.detector import Detector  # noqa: E402
from insiderwatch.models.events import parse_event  # noqa: E402
from insiderwatch.models.state import state_to_bytes  # noqa: E402
from insiderwatch.models.train import train_model  # noqa: E402
from insiderwatch.simulation.simulate import SimulationConfig, simulate  # noqa: E402

POSITION_BYTES = 12  # stream.processing.encode_stored_state's input position


def main() -> None:
    config = SimulationConfig(actors=500, days=28, seed=8, scenarios_from_day=21, profile=1)
    events = [parse_event(orjson.dumps(doc)) for doc in simulate(config)]
    split = config.start_epoch + 21 * 86400
    with tempfile.TemporaryDirectory() as model_dir:
        train_model([e for e in events if e.ts < split], model_dir, seed=8)
        detector = Detector(load_model(model_dir))
    states: dict = {}
    for i in range(0, len(events), 5000):
        detector.process(events[i : i + 5000], states, "bench")
    sizes = np.array([len(state_to_bytes(s)) + POSITION_BYTES for s in states.values()])
    print(
        f"{len(sizes)} actors, {len(events):,} events: stored state mean {sizes.mean():.0f} B, "
        f"p99 {np.quantile(sizes, 0.99):.0f} B, max {sizes.max()} B"
    )


if __name__ == "__main__":
    main()
