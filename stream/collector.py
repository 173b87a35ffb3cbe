"""The garbage-collector schedule of insiderwatch processes.

Every command allocates millions of small objects that live long (parsed events, actor
states, the model, and in the worker Faust, aiokafka and numba). With Python's default schedule
(a young-generation collection every 700 allocations) the collector kept re-scanning them:
measured with ``gc.callbacks``, a busy worker spent 14% of its time collecting, and
``insiderwatch score`` ran ~8% slower. Garbage without reference cycles is freed at once by
reference counting either way; only cycle detection runs less often.

Why 100,000 and not fewer (measured with ``gc.callbacks`` in the pipeline benchmark's
worker over 300,000 events, ``BENCHMARKS.md``): a young-generation collection scans every live young
container and what it holds, and in the middle of a micro-batch that is the batch itself (8,000
records, events and the flat lists packed for the compiled kernel), so each one cost ~14 ms.
With a young collection every 20,000 allocations the worker spent ~800 ms collecting (52
young collections): **13% of its CPU**. With 100,000: 4 young collections and ~110 ms (~2%),
and 14.8 against 20.5 CPU us per event in back-to-back runs. Between batches the young
generation is nearly empty (a batch's objects are freed by reference counting when it ends),
so the collections that still happen are cheap ones.
"""

from __future__ import annotations

import gc

__all__ = ["GC_THRESHOLDS", "tune_collector"]

GC_THRESHOLDS = (100_000, 20, 10)


def tune_collector(freeze_existing: bool = False) -> None:
    """Collect young objects every 100,000 allocations; optionally freeze what exists now.

    ``freeze_existing`` moves every object alive now out of the collector's reach for good
    (``gc.freeze``): for a long-running worker, after start-up, so that full collections stop
    re-scanning the start-up objects. GC time in a busy worker went from 14% to under 1%.
    """
    if freeze_existing:
        gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
