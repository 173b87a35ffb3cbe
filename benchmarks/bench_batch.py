"""The worker's batch path in-process, against another revision of the code in the same run.

``BatchProcessor.handle`` (parse, dead letters, state load, replay and duplicate checks,
detection, alerts, state store; no broker) over simulated events in batches of 8,000, in two
cases: *dense* (600 actors, ~13 events per actor per batch) and *many actors* (the same
events spread over ~120,000 actors, ~1 event per actor per batch). The reference is a plain
``orjson.loads`` of every message, measured in the same process. With ``--against REV`` the
same measurement runs on a git worktree of REV, alternating with the working tree, so a
change on the hot path is measured as a ratio in one run.

Each revision trains its own model (its own features) on the same simulated history, with
``--trees`` / ``--against-trees`` trees (default 100 each).

``--analyst-rules N`` loads N verdicts (actor_pattern, on the case's actors and others) and N
actor-context entries (watch weight 2) into the working tree's processor before it runs: the
cost of the analyst's loop (:mod:`models.analyst`) on the hot path.

Run: .venv/bin/python benchmarks/bench_batch.py --against 3c88e07 [--events 200000 --repeat 3]
     [--analyst-rules 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".local" / "bench-batch"
BATCH = 8_000
CASES = ("dense", "many")


def _prepare(events: int) -> None:
    """The history and event files, made once with the working tree's simulator (each
    revision trains its own model on the history: :func:`_train`)."""
    sys.path.insert(0, str(REPO))
    import orjson

    from insiderwatch.simulation.simulate import SimulationConfig, simulate

    WORK.mkdir(parents=True, exist_ok=True)
    config = SimulationConfig(actors=600, days=30, seed=11, with_scenarios=False)
    docs = list(simulate(config))
    history, live = docs[: len(docs) // 2], docs[len(docs) // 2 :][:events]
    (WORK / "history.jsonl").write_bytes(b"\n".join(orjson.dumps(d) for d in history))
    (WORK / "dense.jsonl").write_bytes(b"\n".join(orjson.dumps(d) for d in live))
    spread = [{**d, "actor_id": f"{d['actor_id']}-{i % 200}"} for i, d in enumerate(live)]
    (WORK / "many.jsonl").write_bytes(b"\n".join(orjson.dumps(d) for d in spread))


def _part(repo: str, name: str):
    """Module ``name`` (e.g. "models.train") of the code in ``repo``. Revisions before the
    insiderwatch package named its parts models and stream."""
    import importlib

    sys.path.insert(0, repo)
    prefix = "insiderwatch." if (Path(repo) / "insiderwatch").is_dir() else ""
    return importlib.import_module(prefix + name)


def _train(repo: str, model_dir: Path, trees: int) -> None:
    """The model of the revision in ``repo`` (its own features), trained on the history."""
    if (model_dir / "manifest.json").exists():
        return
    parse_event = _part(repo, "models.events").parse_event
    train_model = _part(repo, "models.train").train_model
    lines = (WORK / "history.jsonl").read_bytes().split(b"\n")
    events = [parse_event(line) for line in lines]
    train_model(events, model_dir, n_estimators=trees, warmup_days=5, seed=1)


def _load_rules(rules, messages: list, n: int) -> None:
    """``n`` verdicts and ``n`` context entries, the case's actors first."""
    import orjson

    actors = list(dict.fromkeys(m.key.decode() for m in messages))
    actors += [f"other-{i}" for i in range(max(0, n - len(actors)))]
    for i in range(n):
        actor = actors[i % len(actors)]
        verdict = {
            "alert_id": f"iw-bench-{i}",
            "verdict": "benign_expected",
            "scope": "actor_pattern",
            "actor_id": actor,
            "alert_timestamp": "2026-01-01T00:00:00Z",
            "until": "2030-01-01T00:00:00Z",
            "pattern": {"access": "export customer_contact", "reasons": ["records_vs_role"]},
        }
        assert rules.apply_feedback(None, orjson.dumps(verdict)) is None
        context = {"actor_id": actor, "watch": 2.0}
        assert rules.apply_context(None, orjson.dumps(context)) is None


def _measure(repo: str, case: str, model_dir: Path, analyst_rules: int = 0) -> dict:
    """CPU seconds per event of ``handle`` and of a plain JSON decode, in this process."""
    import orjson

    def part(name: str):
        return _part(repo, name)

    load_model = part("models.artifact").load_model
    Detector = part("models.detector").Detector
    tune_collector = part("stream.collector").tune_collector
    WorkerMetrics = part("stream.metrics").WorkerMetrics
    BatchProcessor = part("stream.processing").BatchProcessor
    RawMessage = part("stream.processing").RawMessage

    class Store:
        def __init__(self) -> None:
            self.data: dict[bytes, bytes] = {}

        def get(self, key: bytes) -> bytes | None:
            return self.data.get(key)

        async def put_many(self, records) -> None:
            for key, value, _ in records:
                self.data[key] = value

    async def send(key, value):
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    values = (WORK / f"{case}.jsonl").read_bytes().split(b"\n")
    messages = []
    for offset, value in enumerate(values):
        doc = orjson.loads(value)
        messages.append(RawMessage(doc["actor_id"].encode(), value, "events", 0, offset, None))
    detector = Detector(load_model(model_dir))
    detector.warm_up()
    tune_collector(freeze_existing=True)  # as the worker does after start-up
    processor = BatchProcessor(detector, Store(), send, send, WorkerMetrics())
    if analyst_rules:
        _load_rules(processor.rules, messages, analyst_rules)
    batches = [messages[i : i + BATCH] for i in range(0, len(messages), BATCH)]
    asyncio.run(processor.handle(batches[0]))  # first batch: loading, not timed
    started = time.process_time()
    for batch in batches[1:]:
        asyncio.run(processor.handle(batch))
    worker_s = time.process_time() - started
    timed = sum(len(batch) for batch in batches[1:])
    started = time.process_time()
    for value in values:
        orjson.loads(value)
    decode_s = time.process_time() - started
    return {
        "worker_us": worker_s / timed * 1e6,
        "decode_us": decode_s / len(values) * 1e6,
        "scored": processor.metrics.scored._value.get(),
        "events": len(values),
    }


def _run_child(repo: Path, case: str, model_dir: Path, analyst_rules: int = 0) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(repo), "--case", case, "--model", str(model_dir)]
        + ["--analyst-rules", str(analyst_rules)],
        check=True,
        capture_output=True,
        text=True,
        cwd=repo,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _worktree(revision: str) -> Path:
    path = REPO / ".local" / f"bench-worktree-{revision}"
    if not path.exists():
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), revision],
            check=True,
            capture_output=True,
        )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", help="git revision to compare with (a worktree is made)")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--trees", type=int, default=100, help="working tree's forest size")
    parser.add_argument(
        "--against-trees", type=int, default=100, help="forest size of the --against revision"
    )
    parser.add_argument(
        "--analyst-rules",
        type=int,
        default=0,
        help="verdicts and context entries loaded into the working tree's processor",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--train-trees", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.train_trees:
        _train(args.child, Path(args.model), args.train_trees)
        return
    if args.child:
        print(json.dumps(_measure(args.child, args.case, Path(args.model), args.analyst_rules)))
        return
    if args.repeat < 1 or args.trees < 1 or args.against_trees < 1:
        parser.error("--repeat, --trees and --against-trees must be at least 1")
    _prepare(args.events)
    working_model = WORK / f"model-working-tree-{args.trees}"
    shutil.rmtree(working_model, ignore_errors=True)  # the working tree changes: retrain
    trees = {"working tree": (REPO, working_model)}
    if args.against:
        model = WORK / f"model-{args.against}-{args.against_trees}"
        trees[args.against] = (_worktree(args.against), model)
    for path, model in trees.values():
        count = args.trees if path == REPO else args.against_trees
        subprocess.run(
            [sys.executable, __file__, "--child", str(path), "--model", str(model)]
            + ["--train-trees", str(count)],
            check=True,
            cwd=path,
        )
    results: dict = {case: {name: [] for name in trees} for case in CASES}
    for _ in range(args.repeat):
        for case in CASES:
            for name, (path, model) in trees.items():  # alternating: drift hits both alike
                rules = args.analyst_rules if path == REPO else 0
                results[case][name].append(_run_child(path, case, model, rules))
    _report(results, args)


def _report(results: dict, args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO))
    from benchmarks.common import print_table, save

    rows, summary = [], {}
    for case, by_tree in results.items():
        medians = {}
        for name, runs in by_tree.items():
            worker = statistics.median(r["worker_us"] for r in runs)
            decode = statistics.median(r["decode_us"] for r in runs)
            medians[name] = worker
            rows.append(
                [
                    case,
                    name,
                    f"{worker:.2f}",
                    f"{decode:.2f}",
                    f"{decode / worker:.1%}",
                    " ".join(f"{r['worker_us']:.2f}" for r in runs),
                ]
            )
        summary[case] = {name: medians[name] for name in by_tree}
        if args.against:
            rows.append(
                [
                    case,
                    "ratio",
                    f"{medians['working tree'] / medians[args.against]:.3f}",
                    "",
                    "",
                    "working tree / " + args.against,
                ]
            )
    print_table(["case", "code", "CPU us/event", "decode us/event", "decode/worker", "runs"], rows)
    save("bench_batch", {"args": vars(args), "results": results, "median_us": summary})


if __name__ == "__main__":
    main()
