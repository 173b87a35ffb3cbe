"""The insiderwatch worker with detection taken out: a reference for ``bench_pipeline.py``.

Everything but detection is the real worker, started the way ``insiderwatch worker`` starts:
Faust's consumer group and partition assignment, the batch intake, ``parse_event`` and the
dead-letter path, per-actor state loaded and written back to the changelog-backed table once
per batch, metrics and offset commits. Only :meth:`models.detector.Detector.process` is
replaced: it keeps a fresh state for each new actor and scores nothing (no windows, features,
forest, explanations or alerts). The rate of this process bounds what *any* detector can reach
in this architecture, so the gap between it and the real worker is what detection costs.

Run by ``bench_pipeline.py`` (not a product entry point):
``python benchmarks/floor_worker.py worker`` with the worker's ``INSIDERWATCH_*`` settings.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import insiderwatch.models.detector as detector  # noqa: E402
from insiderwatch.models.events import AccessEvent  # noqa: E402
from insiderwatch.models.state import ActorState, new_state  # noqa: E402


def _no_detection(
    self: detector.Detector,
    events: Sequence[AccessEvent],
    states: MutableMapping[str, ActorState],
    detected_at: str,
) -> detector.BatchOutcome:
    for event in events:
        if event.actor_id not in states:
            states[event.actor_id] = new_state(event)
    n = len(events)
    return detector.BatchOutcome(list(events), [0.0] * n, [False] * n, [False] * n, [])


if __name__ == "__main__":
    detector.Detector.process = _no_detection  # type: ignore[method-assign]
    from insiderwatch.stream.cli import main

    sys.exit(main(sys.argv[1:]))
