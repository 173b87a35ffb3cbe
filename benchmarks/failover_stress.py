"""Back-to-back kill-and-fail-over cycles with two workers, each checked against offline.

Each cycle runs the fail-over test of ``tests/integration/test_faults.py`` on a fresh local
broker: two workers share 6 partitions, 50,000 events (10 of them malformed) are produced,
one worker is killed with SIGKILL after it consumed 15% of them, and the survivor takes every
partition over. The cycle passes when no event is lost, exactly the malformed records are
dead-lettered, every stream score equals the offline ``score`` of the same input (within
1e-12) and the alert ids are the same set. The script prints one line per cycle and a summary,
and exits non-zero if any cycle failed.

    .venv/bin/python benchmarks/failover_stress.py --cycles 10 [--store rocksdb://]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST = "tests/integration/test_faults.py::test_scale_out_and_fail_over_to_the_surviving_worker"


def run_cycle(store: str) -> tuple[bool, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:randomly", f"{TEST}[{store}]"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    output = done.stdout + done.stderr
    details = " ".join(re.findall(r"\[(?:scale-out[^\]]*)\][^\n]*", output))
    if done.returncode != 0:
        failure = [line for line in output.splitlines() if line.startswith(("E ", "FAILED"))]
        details += " | " + " / ".join(failure[:3])
    return done.returncode == 0, details, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--store", default="memory://", choices=["memory://", "rocksdb://"])
    args = parser.parse_args()
    passed = 0
    for cycle in range(1, args.cycles + 1):
        ok, details, seconds = run_cycle(args.store)
        passed += ok
        print(
            f"cycle {cycle:2d}: {'pass' if ok else 'FAIL'} in {seconds:.0f} s  {details}",
            flush=True,
        )
    print(f"{passed}/{args.cycles} cycles with zero lost events and zero score mismatches")
    return 0 if passed == args.cycles else 1


if __name__ == "__main__":
    sys.exit(main())
