"""`insiderwatch evaluate`: simulate -> train -> score, and measure detection honestly.

Reports, for the scored days only: per-scenario detection and time-to-detect (event time),
alert (incident) precision, false incidents per 1,000 actor-days and per benign-unusual group,
and event-level ROC AUC / PR AUC, next to a naive baseline (a per-event IsolationForest on
one-hot action / resource type / role, log record count and hour) on the same data.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import orjson
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score

from insiderwatch.models.artifact import load_model
from insiderwatch.models.detector import Detector
from insiderwatch.models.events import AccessEvent, parse_event
from insiderwatch.models.incidents import DEFAULT_ALERT_BUDGET
from insiderwatch.models.pulse import count_events, set_pulses
from insiderwatch.models.risk import DEFAULT_RISK_BUDGET
from insiderwatch.models.state import ActorState
from insiderwatch.models.train import (
    DEFAULT_WARMUP_DAYS,
    calibrate_threshold,
    group_incidents,
    train_model,
)
from insiderwatch.simulation.loco import ProfileRun, format_loco, leave_one_class_out
from insiderwatch.simulation.simulate import (
    INSIDER_SCENARIOS,
    QUIET_SCENARIOS,
    SimulationConfig,
    simulate,
)

__all__ = [
    "EvaluationConfig",
    "run_evaluation",
    "run_profiles",
    "run_forest_seeds",
    "naive_baseline_scores",
]

BURST_SCENARIOS = {
    "reviewer_email_harvest",
    "seller_metrics_leak",
    "paid_review_deletion",
    "bulk_export_non_analyst",
    "account_takeover",
}


@dataclass
class EvaluationConfig:
    actors: int = 500
    history_days: int = 21
    scored_days: int = 7
    seed: int = 7
    alert_budget: float = DEFAULT_ALERT_BUDGET
    risk_budget: float = DEFAULT_RISK_BUDGET
    max_samples: int = 256
    trees: int = 100
    # The isolation forest's random seed; None = ``seed``. Changing only this refits the same
    # features on the same data: how much a retrain alone moves the results.
    forest_seed: int | None = None
    out_dir: str = ".local/evaluate"
    # A randomised organisation profile (insiderwatch.simulation.profiles); None = the default.
    profile: int | None = None


def _one_hot_matrix(events: list[AccessEvent], vocab: dict[str, dict[str, int]] | None = None):
    if vocab is None:
        vocab = {"action": {}, "resource_type": {}, "role": {}}
        for e in events:
            for key, value in (
                ("action", e.action),
                ("resource_type", e.resource_type),
                ("role", e.actor_role),
            ):
                vocab[key].setdefault(value, len(vocab[key]))
    widths = [len(vocab["action"]), len(vocab["resource_type"]), len(vocab["role"])]
    x = np.zeros((len(events), sum(widths) + 2), dtype=np.float64)
    for i, e in enumerate(events):
        offset = 0
        for key, value, width in (
            ("action", e.action, widths[0]),
            ("resource_type", e.resource_type, widths[1]),
            ("role", e.actor_role, widths[2]),
        ):
            column = vocab[key].get(value)
            if column is not None:
                x[i, offset + column] = 1.0
            offset += width
        x[i, -2] = math.log1p(e.record_count)
        x[i, -1] = (int(e.ts) % 86400) // 3600
    return x, vocab


def naive_baseline_scores(history: list[AccessEvent], scored: list[AccessEvent], seed: int):
    """Per-event IsolationForest on one-hot action/resource/role, log records and hour."""
    x_train, vocab = _one_hot_matrix(history)
    forest = IsolationForest(n_estimators=100, max_samples=256, random_state=seed).fit(x_train)
    x_scored, _ = _one_hot_matrix(scored, vocab)
    return -forest.score_samples(x_train), -forest.score_samples(x_scored)


def _quality(name, scores, flagged_incidents, labels, scenarios, instances, ts, actor_days):
    """Metrics dict for one detector on the scored slice."""
    y = labels == "insider"
    result = {
        "detector": name,
        "roc_auc": float(roc_auc_score(y, scores)),
        "pr_auc": float(average_precision_score(y, scores)),
    }
    true_incidents = false_incidents = 0
    false_by_group: dict[str, int] = defaultdict(int)
    detected_at: dict[str, float] = {}
    for members in flagged_incidents:
        insider_members = [i for i in members if labels[i] == "insider"]
        if insider_members:
            true_incidents += 1
            for i in insider_members:
                inst = instances[i]
                detected_at[inst] = min(detected_at.get(inst, math.inf), ts[i])
        else:
            false_incidents += 1
            group = scenarios[members[0]] if labels[members[0]] == "benign_unusual" else "normal"
            false_by_group[group] += 1
    total = true_incidents + false_incidents
    result["incidents"] = total
    result["precision"] = true_incidents / total if total else 0.0
    result["false_per_1000_actor_days"] = 1000.0 * false_incidents / max(actor_days, 1)
    result["false_by_group"] = dict(sorted(false_by_group.items()))
    per_scenario = {}
    starts: dict[str, float] = {}
    scenario_of: dict[str, str] = {}
    for i in np.flatnonzero(y):
        inst = instances[i]
        starts[inst] = min(starts.get(inst, math.inf), ts[i])
        scenario_of[inst] = scenarios[i]
    for scenario in sorted(set(scenario_of.values()), key=_scenario_order):
        insts = sorted(k for k, v in scenario_of.items() if v == scenario)
        delays = [(detected_at[k] - starts[k]) / 60.0 for k in insts if k in detected_at]
        per_scenario[scenario] = {
            "instances": len(insts),
            "detected": len(delays),
            "median_minutes_to_detect": float(np.median(delays)) if delays else None,
        }
    result["scenarios"] = per_scenario
    return result


def _scenario_order(scenario: str) -> tuple[int, str]:
    known = (*INSIDER_SCENARIOS, *QUIET_SCENARIOS)
    return (known.index(scenario) if scenario in known else len(known), scenario)


def _no_progress(description: str, total: int | None):
    return nullcontext(lambda n: None)


def run_evaluation(config: EvaluationConfig, progress=_no_progress) -> str:
    """Run the evaluation; write JSON and PNGs to ``out_dir``; return the printed report.

    ``progress(description, total)`` is a context manager yielding ``advance(n)`` (the CLI
    passes rich progress bars; models/ itself draws nothing).
    """
    out_dir = Path(config.out_dir)
    run = _simulate_train_score(config, out_dir, progress)
    return _finish(config, out_dir, *run)


def _simulated(config: EvaluationConfig) -> tuple:
    """``config``'s organisation: its documents, events, the first scored second, the history
    and the scored days with their labels, scenarios and instances."""
    total_days = config.history_days + config.scored_days
    sim = SimulationConfig(
        actors=config.actors,
        days=total_days,
        seed=config.seed,
        scenarios_from_day=config.history_days,
        profile=config.profile,
    )
    docs = list(simulate(sim))
    events = [parse_event(orjson.dumps(d)) for d in docs]
    split_ts = sim.start_epoch + config.history_days * 86400
    history = [e for e in events if e.ts < split_ts]
    scored_index = [i for i, e in enumerate(events) if e.ts >= split_ts]
    scored = [events[i] for i in scored_index]
    labels = np.array([docs[i]["sim_label"] for i in scored_index])
    scenarios = np.array([docs[i]["sim_scenario"] for i in scored_index])
    instances = np.array([docs[i]["sim_instance"] for i in scored_index])
    return docs, events, split_ts, history, scored, labels, scenarios, instances


def _simulate_train_score(
    config: EvaluationConfig, out_dir: Path, progress, simulated: tuple | None = None
) -> tuple:
    """Simulate ``config``'s organisation (unless ``simulated``), train on its history, score
    its last days."""
    out_dir.mkdir(parents=True, exist_ok=True)
    docs, events, split_ts, history, scored, labels, scenarios, instances = simulated or _simulated(
        config
    )
    model_dir = out_dir / "model"
    with progress("evaluate: train", len(history)) as advance:
        _train(history, model_dir, config, advance)
    model = load_model(model_dir)
    detector = Detector(model)
    states: dict[str, ActorState] = {}
    ordered = history + scored  # events are in time order: the history is a prefix
    set_pulses(ordered, count_events(ordered), model.peers.pulse_usual())  # as offline score
    replay = Replay(np.empty(len(ordered)), np.zeros(len(ordered), dtype=bool), docs, split_ts)
    alerts = []
    with progress("evaluate: score history + scored days", len(ordered)) as advance:
        for part, offset in ((history, 0), (scored, len(history))):
            for i in range(0, len(part), 5000):
                outcome = detector.process(part[i : i + 5000], states, "evaluate")
                at = slice(offset + i, offset + i + len(outcome.scores))
                replay.scores[at], replay.flagged[at] = outcome.scores, outcome.flagged
                if offset:
                    alerts += outcome.alerts
                advance(len(outcome.scores))
    scores = replay.scores[len(history) :]
    return events, history, scored, labels, scenarios, instances, model, scores, alerts, replay


@dataclass
class Replay:
    """Every event's score and flag from the detector run (history, then the scored days)."""

    scores: np.ndarray
    flagged: np.ndarray
    docs: list[dict]  # the simulated documents, with their labels
    split_ts: float


def _train(history, model_dir, config, advance) -> None:
    train_model(
        history,
        model_dir,
        alert_budget=config.alert_budget,
        risk_budget=config.risk_budget,
        seed=config.seed if config.forest_seed is None else config.forest_seed,
        n_estimators=config.trees,
        max_samples=config.max_samples,
        progress=advance,
    )


def _incidents_of(scored: list[AccessEvent], alerts: list[dict]):
    """``(alert id -> positions in scored, event times, scored actor-days)``."""
    position = {e.event_id: k for k, e in enumerate(scored)}
    incidents: dict[str, list[int]] = defaultdict(list)
    for alert in alerts:
        incidents[alert["alert_id"]] += [position[x] for x in alert["event_ids"] if x in position]
    ts = np.array([e.ts for e in scored])
    return incidents, ts, len({(e.actor_id, int(e.ts // 86400)) for e in scored})


def _finish(
    config,
    out_dir,
    events,
    history,
    scored,
    labels,
    scenarios,
    instances,
    model,
    scores,
    alerts,
    replay,
) -> str:
    incidents_ours, ts, actor_days = _incidents_of(scored, alerts)
    ours = _quality(
        "insiderwatch",
        scores,
        list(incidents_ours.values()),
        labels,
        scenarios,
        instances,
        ts,
        actor_days,
    )

    train_naive, naive = naive_baseline_scores(history, scored, config.seed)
    actors = {a: k for k, a in enumerate(sorted({e.actor_id for e in events}))}
    hist_codes = np.array([actors[e.actor_id] for e in history])
    hist_ts = np.array([e.ts for e in history])
    hist_actor_days = len({(e.actor_id, int(e.ts // 86400)) for e in history})
    settings = model.manifest.incident
    naive_threshold = calibrate_threshold(
        train_naive, hist_codes, hist_ts, config.alert_budget * hist_actor_days / 1000.0, settings
    )
    codes = np.array([actors[e.actor_id] for e in scored])
    naive_incidents = group_incidents(codes, ts, naive >= naive_threshold, settings)
    baseline = _quality(
        "naive iforest", naive, naive_incidents, labels, scenarios, instances, ts, actor_days
    )

    report = {
        "config": asdict(config),
        "events": len(events),
        "scored_events": len(scored),
        "scored_actor_days": actor_days,
        "model_version": model.version,
        "threshold": model.threshold,
        "results": [ours, baseline],
    }
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
    _plots(out_dir, scores, labels, scenarios, instances, ts, model.threshold)
    return _format(report)


def _plots(out_dir: Path, scores, labels, scenarios, instances, ts, threshold) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    bins = np.linspace(scores.min(), scores.max(), 60)
    for label, color in (
        ("normal", "tab:blue"),
        ("benign_unusual", "tab:orange"),
        ("insider", "tab:red"),
    ):
        mask = labels == label
        if mask.any():
            ax.hist(
                scores[mask],
                bins=bins,
                density=True,
                alpha=0.5,
                label=f"{label} ({mask.sum()})",
                color=color,
            )
    ax.axvline(threshold, color="black", linestyle="--", label="threshold")
    ax.set_xlabel("anomaly score")
    ax.set_ylabel("density")
    ax.set_title("Score distributions on the scored days")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "score_distributions.png", dpi=110)
    plt.close(fig)

    insts = sorted({i for i, lab in zip(instances, labels, strict=True) if lab == "insider"})
    fig, axes = plt.subplots(
        len(insts) or 1, 1, figsize=(8, 1.6 * max(len(insts), 1)), squeeze=False
    )
    for ax, inst in zip(axes[:, 0], insts, strict=False):
        mask = instances == inst
        minutes = (ts[mask] - ts[mask].min()) / 60.0
        ax.plot(minutes, scores[mask], ".", markersize=3, color="tab:red")
        ax.axhline(threshold, color="black", linestyle="--", linewidth=0.8)
        ax.set_ylabel(inst.split("#")[0][:18], fontsize=7, rotation=0, ha="right")
        ax.set_ylim(0.3, 0.9)
    axes[-1, 0].set_xlabel("minutes since the scenario started (event time)")
    fig.suptitle("Insider scenarios: score per event vs. threshold")
    fig.tight_layout()
    fig.savefig(out_dir / "scenario_timelines.png", dpi=110)
    plt.close(fig)


def _format(report: dict) -> str:
    ours, naive = report["results"]
    lines = [
        f"evaluate: {report['events']} events, {report['scored_events']} scored on "
        f"{report['scored_actor_days']} actor-days, model {report['model_version']}, "
        f"threshold {report['threshold']:.4f}",
        "",
        f"{'metric':<34}{'insiderwatch':>14}{'naive iforest':>15}",
    ]
    for key, label, fmt in (
        ("roc_auc", "event ROC AUC", "{:.3f}"),
        ("pr_auc", "event PR AUC", "{:.3f}"),
        ("incidents", "incidents", "{}"),
        ("precision", "alert precision", "{:.2f}"),
        ("false_per_1000_actor_days", "false incidents / 1,000 actor-days", "{:.2f}"),
    ):
        lines.append(f"{label:<34}{fmt.format(ours[key]):>14}{fmt.format(naive[key]):>15}")
    lines.append(
        f"{'PR AUC ratio (ours / naive)':<34}{ours['pr_auc'] / max(naive['pr_auc'], 1e-9):>14.1f}x"
    )
    lines += ["", f"{'scenario':<26}{'detected':>10}{'median TTD min':>16}{'naive detected':>16}"]
    for scenario, stats in ours["scenarios"].items():
        ttd = stats["median_minutes_to_detect"]
        lines.append(
            f"{scenario:<26}{stats['detected']:>5}/{stats['instances']:<4}"
            f"{'-' if ttd is None else f'{ttd:.1f}':>16}"
            f"{naive['scenarios'][scenario]['detected']:>11}/{naive['scenarios'][scenario]['instances']}"
        )
    lines += [
        "",
        "false incidents by group (insiderwatch): " + json.dumps(ours["false_by_group"]),
        "false incidents by group (naive):        " + json.dumps(naive["false_by_group"]),
    ]
    return "\n".join(lines)


def run_profiles(config: EvaluationConfig, profiles: int, progress=_no_progress) -> str:
    """``evaluate --profiles N``: the evaluation on N randomised organisations.

    Profile ``p`` is simulated with ``SimulationConfig(profile=p, seed=config.seed + p)``, so
    roles, volumes, mixes, shifts, ticket habits and teams differ, and quiet insiders are
    planted. Reports per-class recall over all profiles (an instance counts as caught when any
    of its events is in an alert), false incidents and false-alert actors per 1,000 scored
    actor-days per profile, and the worst profile. Writes ``profiles.json`` to ``out_dir``.
    """
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, runs = [], []
    for p in range(1, profiles + 1):
        one = replace(config, profile=p, seed=config.seed + p, out_dir=str(out_dir / f"p{p}"))
        run = _simulate_train_score(one, Path(one.out_dir), progress)
        rows.append(_profile_row(p, one.seed, *run[:-1]))
        runs.append(_profile_run(*run))
    classes: dict[str, list[int]] = {}
    for row in rows:
        for scenario, stats in row["scenarios"].items():
            total = classes.setdefault(scenario, [0, 0])
            total[0] += stats["detected"]
            total[1] += stats["instances"]
    totals = {c: n for c, (_, n) in classes.items()}
    loco = leave_one_class_out(runs, totals)
    report = {"config": asdict(config), "profiles": rows, "classes": classes, "loco": loco}
    (out_dir / "profiles.json").write_text(json.dumps(report, indent=2, default=str))
    return _format_profiles(report) + "\n\n" + format_loco(loco, totals)


def run_forest_seeds(config: EvaluationConfig, seeds: int, progress=_no_progress) -> str:
    """``evaluate --forest-seeds N``: one organisation, N forests fitted with seeds
    ``forest_seed`` (default ``seed``) + 0..N-1 on the same history, each scoring the same
    week. Reports each seed's threshold, false incidents and false-alert actors per 1,000
    actor-days and detected instances, and the max / min ratio of the false-incident rate.
    Writes ``forest_seeds.json`` to ``out_dir``."""
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    simulated = _simulated(config)
    first = config.seed if config.forest_seed is None else config.forest_seed
    rows = []
    for k in range(seeds):
        one = replace(config, forest_seed=first + k, out_dir=str(out_dir / f"forest{first + k}"))
        run = _simulate_train_score(one, Path(one.out_dir), progress, simulated)
        rows.append(_profile_row(config.profile or 0, first + k, *run[:-1]))
    report = {"config": asdict(config), "forest_seeds": rows}
    (out_dir / "forest_seeds.json").write_text(json.dumps(report, indent=2))
    return _format_forest_seeds(rows)


def _format_forest_seeds(rows: list[dict]) -> str:
    lines = [
        f"{'forest seed':<12}{'threshold':>10}{'false inc/1k':>13}{'false actors/1k':>16}"
        f"{'caught':>10}"
    ]
    for r in rows:
        caught = sum(s["detected"] for s in r["scenarios"].values())
        total = sum(s["instances"] for s in r["scenarios"].values())
        lines.append(
            f"{r['seed']:<12}{r['threshold']:>10.4f}{r['false_per_1000_actor_days']:>13.2f}"
            f"{r['false_actors_per_1000_actor_days']:>16.2f}{caught:>6}/{total}"
        )
    rates = [r["false_per_1000_actor_days"] for r in rows]
    if rates and min(rates) > 0:
        lines.append(f"\nfalse incidents, max / min over the seeds: {max(rates) / min(rates):.2f}x")
    elif rates:
        lines.append("\nfalse incidents: some seed had none (max / min undefined)")
    return "\n".join(lines)


def _profile_run(
    events, history, scored, labels, scenarios, instances, model, scores, alerts, replay
) -> ProfileRun:
    """The replayable record of one profile's run (:mod:`insiderwatch.simulation.loco`)."""
    ordered = history + scored
    doc_of = {d["event_id"]: d for d in replay.docs}
    codes_of: dict[str, int] = {}
    codes = np.array([codes_of.setdefault(e.actor_id, len(codes_of)) for e in ordered])
    event_alerts = [a for a in alerts if a.get("kind", "event") == "event"]
    incidents, ts_scored, actor_days = _incidents_of(scored, event_alerts)
    caught, false_actors = set(), set()
    for members in incidents.values():
        insiders = [i for i in members if labels[i] == "insider"]
        caught |= {str(instances[i]) for i in insiders}
        if members and not insiders:
            false_actors.add(codes_of[scored[members[0]].actor_id])
    history_ts = np.array([e.ts for e in history])
    return ProfileRun(
        codes=codes,
        ts=np.array([e.ts for e in ordered]),
        roles=[e.actor_role for e in ordered],
        scores=replay.scores,
        flagged=replay.flagged,
        labels=np.array([doc_of[e.event_id]["sim_label"] for e in ordered]),
        instances=np.array([doc_of[e.event_id]["sim_instance"] for e in ordered]),
        scenarios=np.array([doc_of[e.event_id]["sim_scenario"] for e in ordered]),
        split_ts=replay.split_ts,
        warm_ts=float(history_ts.min()) + DEFAULT_WARMUP_DAYS * 86400
        if history
        else replay.split_ts,
        event_caught=caught,
        event_false_actors=false_actors,
        scored_actor_days=actor_days,
    )


def _profile_row(
    p, seed, events, history, scored, labels, scenarios, instances, model, scores, alerts
):
    incidents, ts, actor_days = _incidents_of(scored, alerts)
    quality = _quality(
        "insiderwatch",
        scores,
        list(incidents.values()),
        labels,
        scenarios,
        instances,
        ts,
        actor_days,
    )
    false_actors = {
        scored[members[0]].actor_id
        for members in incidents.values()
        if members and not any(labels[i] == "insider" for i in members)
    }
    return {
        "profile": p,
        "seed": seed,
        "actors": len({e.actor_id for e in events}),
        "scored_actor_days": actor_days,
        "threshold": model.threshold,
        "false_per_1000_actor_days": quality["false_per_1000_actor_days"],
        "false_actors_per_1000_actor_days": 1000.0 * len(false_actors) / max(actor_days, 1),
        "precision": quality["precision"],
        "scenarios": quality["scenarios"],
    }


def _format_profiles(report: dict) -> str:
    rows = report["profiles"]
    lines = [
        f"evaluate --profiles {len(rows)} (seeds {', '.join(str(r['seed']) for r in rows)})",
        "",
    ]
    lines.append(f"{'behaviour class':<26}{'caught':>10}{'recall':>8}   per profile")
    for scenario, (detected, instances) in report["classes"].items():
        per = " ".join(
            f"{r['scenarios'][scenario]['detected']}/{r['scenarios'][scenario]['instances']}"
            if scenario in r["scenarios"]
            else "-"
            for r in rows
        )
        recall = detected / instances if instances else 0.0
        lines.append(f"{scenario:<26}{detected:>5}/{instances:<4}{recall:>8.0%}   {per}")
    lines += [
        "",
        f"{'profile':<9}{'actors':>7}{'actor-days':>11}{'threshold':>10}"
        f"{'false inc/1k':>13}{'false actors/1k':>16}{'precision':>10}",
    ]
    for r in rows:
        lines.append(
            f"{r['profile']:<9}{r['actors']:>7}{r['scored_actor_days']:>11}{r['threshold']:>10.4f}"
            f"{r['false_per_1000_actor_days']:>13.2f}{r['false_actors_per_1000_actor_days']:>16.2f}"
            f"{r['precision']:>10.2f}"
        )
    worst = max(rows, key=lambda r: r["false_actors_per_1000_actor_days"])
    lines.append(
        f"\nworst profile: {worst['profile']} "
        f"({worst['false_actors_per_1000_actor_days']:.2f} false-alert actors per 1,000 actor-days)"
    )
    return "\n".join(lines)
