"""Detection of behaviours the simulator does not name, injected into ordinary traffic.

`insiderwatch evaluate` scores the simulator's own insider scenarios, which the features were
built against. This check injects three other behaviours by established customer-support
staff into the scored week of the same simulated traffic (no simulator scenarios at all),
and reports how many instances raised an alert and how many false incidents the rest of the
traffic raised:

- ``slow_drip``: three times the actor's usual daily volume of contact look-ups (email, phone),
  spread evenly over ten working hours, half with one reused ticket id, half without tickets;
- ``weekend_session``: 40 contact look-ups without tickets on a Saturday or Sunday morning by
  someone who works weekdays;
- ``multi_day_creep``: the actor's usual daily volume again as extra contact look-ups without
  tickets, on four working days in a row.

Run: .venv/bin/python benchmarks/bench_unnamed.py [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import print_table, save  # noqa: E402
from insiderwatch.models.artifact import load_model  # noqa: E402
from insiderwatch.models.detector import Detector  # noqa: E402
from insiderwatch.models.events import parse_event  # noqa: E402
from insiderwatch.models.train import train_model  # noqa: E402
from insiderwatch.simulation.simulate import SimulationConfig, simulate  # noqa: E402
from insiderwatch.stream.collector import tune_collector  # noqa: E402

WORK = Path(__file__).resolve().parent.parent / ".local" / "bench-unnamed"
HISTORY_DAYS, SCORED_DAYS = 21, 7
INSTANCES = 6  # per behaviour


def _ts(doc: dict) -> float:
    return datetime.fromisoformat(doc["timestamp"]).timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _lookups(template: dict, start: float, spacing_s: float, n: int, rng, **fields) -> list:
    return [
        {
            **template,
            "timestamp": _iso(start + k * spacing_s),
            "action": "view",
            "resource_type": "customer_contact",
            "record_count": 1,
            "resource_id": f"cust-{rng.randrange(300_000)}",
            **fields,
        }
        for k in range(n)
    ]


def injected_behaviours(docs: list[dict], sim: SimulationConfig, seed: int) -> list[tuple]:
    """``(behaviour, actor_id, instance, events)`` for every injected instance."""
    rng = random.Random(seed)
    split = sim.start_epoch + HISTORY_DAYS * 86400
    history_of: dict[str, list[dict]] = defaultdict(list)
    for doc in docs:
        if _ts(doc) < split:
            history_of[doc["actor_id"]].append(doc)
    staff = []
    for actor, events in history_of.items():
        days = Counter(int(_ts(e) // 86400) for e in events)
        if events[0]["actor_role"] == "customer_support" and len(days) >= 12:
            staff.append((actor, float(np.median(list(days.values())))))
    rng.shuffle(staff)
    days = [sim.start_epoch + (HISTORY_DAYS + i) * 86400 for i in range(SCORED_DAYS)]
    workdays = [d for d in days if datetime.fromtimestamp(d, UTC).weekday() < 5]
    weekend = [d for d in days if datetime.fromtimestamp(d, UTC).weekday() >= 5]
    plans = []
    for n, (actor, daily) in enumerate(staff[:INSTANCES]):
        count = int(3 * daily)
        ticket = "T-reused" if n % 2 == 0 else None
        start = workdays[n % len(workdays)] + 8 * 3600
        plans.append(("slow_drip", actor, start, 36_000 / count, count, ["email", "phone"], ticket))
    for n, (actor, _) in enumerate(staff[INSTANCES : 2 * INSTANCES]):
        plans.append(("weekend_session", actor, weekend[n % len(weekend)] + 10 * 3600, 120, 40))
    for n, (actor, daily) in enumerate(staff[2 * INSTANCES : 3 * INSTANCES]):
        plans.append(("multi_day_creep", actor, n, daily))
    out = []
    for k, plan in enumerate(plans):
        behaviour, actor = plan[0], plan[1]
        template = dict(history_of[actor][-1])
        if behaviour == "slow_drip":
            _, _, start, spacing, count, fields, ticket = plan
            events = _lookups(template, start, spacing, count, rng, fields=fields, ticket_id=ticket)
        elif behaviour == "weekend_session":
            _, _, start, spacing, count = plan
            events = _lookups(
                template, start, spacing, count, rng, fields=["email"], ticket_id=None
            )
        else:
            _, _, n, daily = plan
            events = []
            for day in range(4):
                start = workdays[(n + day) % len(workdays)] + 9 * 3600
                events += _lookups(
                    template,
                    start,
                    28_800 / daily,
                    int(daily),
                    rng,
                    fields=["email"],
                    ticket_id=None,
                )
        instance = f"{behaviour}#{k}"
        for i, event in enumerate(events):
            event["event_id"] = f"unnamed-{instance}-{i}"
        out.append((behaviour, actor, instance, events))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--actors", type=int, default=500)
    args = parser.parse_args()
    tune_collector(freeze_existing=False)
    sim = SimulationConfig(
        actors=args.actors,
        days=HISTORY_DAYS + SCORED_DAYS,
        seed=args.seed,
        scenarios_from_day=HISTORY_DAYS,
        with_scenarios=False,
    )
    docs = list(simulate(sim))
    injected = injected_behaviours(docs, sim, args.seed)
    everything = sorted(docs + [e for *_, events in injected for e in events], key=_ts)
    events = [parse_event(orjson.dumps(d)) for d in everything]
    split = sim.start_epoch + HISTORY_DAYS * 86400
    history = [e for e in events if e.ts < split]
    scored = [e for e in events if e.ts >= split]
    model_dir = WORK / f"model-seed{args.seed}"
    train_model(history, model_dir, seed=args.seed)  # retrained every run: the code may change
    detector = Detector(load_model(model_dir))
    states: dict = {}
    for i in range(0, len(history), 5000):
        detector.process(history[i : i + 5000], states, "bench")
    instance_of = {e["event_id"]: inst for _, _, inst, evs in injected for e in evs}
    top_score: dict[str, float] = defaultdict(float)
    alerted: set[str] = set()
    false_incidents = 0
    for i in range(0, len(scored), 5000):
        outcome = detector.process(scored[i : i + 5000], states, "bench")
        for verdict in outcome.scored:
            instance = instance_of.get(verdict.event.event_id)
            if instance is not None:
                top_score[instance] = max(top_score[instance], verdict.score)
        for alert in outcome.alerts:
            hits = {instance_of[x] for x in alert["event_ids"] if x in instance_of}
            alerted |= hits
            if not hits and alert["status"] == "new":
                false_incidents += 1
    actor_days = len({(e.actor_id, int(e.ts // 86400)) for e in scored})
    rows, results = [], {}
    for behaviour in ("slow_drip", "weekend_session", "multi_day_creep"):
        instances = [inst for b, _, inst, _ in injected if b == behaviour]
        found = sum(1 for inst in instances if inst in alerted)
        scores = [round(top_score[inst], 3) for inst in instances]
        rows.append([behaviour, f"{found}/{len(instances)}", " ".join(map(str, scores))])
        results[behaviour] = {"instances": len(instances), "detected": found, "top_scores": scores}
    rate = false_incidents / actor_days * 1000
    rows.append(["false incidents", f"{rate:.2f} / 1,000 actor-days", f"{false_incidents}"])
    print(f"model {detector.model.version}, threshold {detector.threshold:.4f}, seed {args.seed}")
    print_table(["behaviour", "detected", "top score per instance"], rows)
    path = save(
        "unnamed",
        {
            "seed": args.seed,
            "model_version": detector.model.version,
            "threshold": detector.threshold,
            "behaviours": results,
            "false_incidents": false_incidents,
            "actor_days": actor_days,
        },
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
