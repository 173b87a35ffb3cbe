"""The ``insiderwatch`` command: broker, topics, simulate, train, worker, replay, tail, score.

Every user error ends in one sentence on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from insiderwatch.models.incidents import DEFAULT_ALERT_BUDGET
from insiderwatch.models.manifest import Manifest
from insiderwatch.models.risk import DEFAULT_RISK_BUDGET
from insiderwatch.stream.collector import tune_collector
from insiderwatch.stream.settings import (
    SETTINGS_DOC,
    Settings,
    SettingsError,
    UserError,
    flag_name,
)

__all__ = ["main", "build_parser"]

# Settings that never get a CLI flag (secrets come from env vars or files only).
_NO_FLAG = {"pseudonymize.key", "sasl.password"}
_SECURITY_SETTINGS = (
    "security.protocol",
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
    "sasl.password.file",
    "ssl.cafile",
    "ssl.certfile",
    "ssl.keyfile",
)
_BROKER_SETTINGS = (
    "broker",
    "topic.events",
    "topic.alerts",
    "topic.dlq",
    "topic.scores",
    "topic.pulse",
    "topic.feedback",
    "topic.context",
    "topic.suppressed",
    "topic.partitions",
    "topic.replication",
) + _SECURITY_SETTINGS
_KAFKA_SETTINGS = ("kafka.home", "kafka.port", "kafka.controller.port", "kafka.heap.mb")
_WORKER_SETTINGS = _BROKER_SETTINGS + (
    "app.id",
    "model.dir",
    "batch.max.events",
    "batch.max.ms",
    "store",
    "data.dir",
    "web.host",
    "web.port",
    "alert.format",
    "log.level",
    "log.format",
)


def _add_settings(parser: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    group = parser.add_argument_group("settings (flag > INSIDERWATCH_* env var > default)")
    for name in names:
        if name in _NO_FLAG:
            continue
        default, meaning = SETTINGS_DOC[name]
        group.add_argument(
            flag_name(name),
            dest="setting:" + name,
            metavar="VALUE",
            help=f"{meaning} (default: {default})",
        )


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        k.split(":", 1)[1]: v
        for k, v in vars(args).items()
        if k.startswith("setting:") and v is not None
    }
    if getattr(args, "model_dir", None):
        overrides["model.dir"] = args.model_dir
    return Settings.load(overrides)


def _existing_file(path: str) -> str:
    if not Path(path).is_file():
        raise UserError(f"file {path} does not exist")
    return path


def _count_lines(path: str) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


# -- commands -------------------------------------------------------------------------------


def cmd_kafka(args: argparse.Namespace) -> int:
    from insiderwatch.stream.broker import BrokerError, LocalKafka

    s = _settings(args)
    broker = LocalKafka(
        Path(s.kafka_home),
        port=s.kafka_port,
        controller_port=s.kafka_controller_port,
        heap_mb=s.kafka_heap_mb,
    )
    try:
        if args.action == "start":
            started = time.monotonic()
            message = broker.start()
            print(f"kafka: {message} ({time.monotonic() - started:.1f} s)")
        elif args.action == "stop":
            print(f"kafka: {broker.stop()}")
        else:
            print(f"kafka: {broker.status()}")
            return 0 if broker.pid() is not None else 3
    except BrokerError as exc:
        raise UserError(str(exc)) from None
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from insiderwatch.stream.topics import create_topics

    s = _settings(args)
    created = create_topics(s)
    names = (s.topic_events, s.topic_alerts, s.topic_dlq)
    print(
        f"topics: {', '.join(names)} ready on {s.broker} ({len(created)} created, "
        f"{s.topic_partitions} partitions each); role pulse on {s.topic_pulse} (compacted)"
    )
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from insiderwatch.simulation.simulate import SimulationConfig, simulate, write_jsonl

    config = SimulationConfig(
        actors=args.actors,
        days=args.days,
        start=args.start,
        seed=args.seed,
        scenarios_from_day=args.scenarios_from_day,
        start_day=args.from_day,
        end_day=args.to_day,
        with_scenarios=not args.no_scenarios,
    )
    if args.actors < 10 or args.days < 1:
        raise UserError("simulate needs at least 10 actors and 1 day")
    started = time.monotonic()
    from insiderwatch.stream.progress import progress

    end_day = args.to_day or args.days
    estimate = args.actors * max(1, end_day - args.from_day) * 70  # ~events per actor-day

    with progress("simulate", estimate) as advance:

        def ticking(events):
            for n, event in enumerate(events, start=1):
                if n % 1000 == 0:
                    advance(1000)
                yield event

        count = write_jsonl(ticking(simulate(config)), args.out)
    print(
        f"simulate: wrote {count} events ({args.actors} actors, days {args.from_day}..{args.to_day or args.days}) "
        f"to {args.out} in {time.monotonic() - started:.1f} s"
    )
    return 0


def _parse_events(
    records, since: float | None = None, until: float | None = None
) -> tuple[list, int]:
    """Valid events in event-time order (within [since, until) when given), and the count of
    records skipped (invalid, or an actor's event id seen before: a producer's retry must not
    count twice in the baselines, as it does not in the stream).

    ``records`` are ``(raw bytes, Kafka record timestamp in ms or None)``; an event the worker
    would refuse as from the future (:func:`models.events.ahead_of_record`) counts as bad."""
    from insiderwatch.models.events import InvalidEvent, ahead_of_record, parse_event

    events, bad, seen = [], 0, set()
    for raw, record_ms in records:
        parsed = parse_event(raw)
        if isinstance(parsed, InvalidEvent) or ahead_of_record(parsed, record_ms) is not None:
            bad += 1
            continue
        key = (parsed.actor_id, parsed.event_id)
        if key in seen:
            bad += 1
        elif (since is None or parsed.ts >= since) and (until is None or parsed.ts < until):
            seen.add(key)
            events.append(parsed)
    # (time, id): the same history gives the same model whatever order it was read in
    # (a topic interleaves its partitions differently from the file it was replayed from).
    events.sort(key=lambda e: (e.ts, e.event_id))
    return events, bad


def _load_events(
    paths: list[str], since: float | None = None, until: float | None = None
) -> tuple[list, int]:
    from insiderwatch.stream.offline import read_jsonl

    records = ((raw, None) for path in paths for _, raw in read_jsonl(_existing_file(path)))
    return _parse_events(records, since, until)


def _event_time(flag: str, value: str | None) -> float | None:
    from insiderwatch.models.events import parse_timestamp

    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        raise UserError(
            f"{flag} must be an RFC 3339 time such as 2026-10-01T00:00:00Z, got {value!r}"
        ) from None


def cmd_train(args: argparse.Namespace) -> int:
    from insiderwatch.stream.progress import progress

    started = time.monotonic()
    since = _event_time("--since", args.since)
    until = _event_time("--until", args.until)
    if bool(args.events) == bool(args.from_topic):
        raise UserError("train needs either --events FILE or --from-topic")
    if not args.risk_budget >= 0.0:
        raise UserError(f"--risk-budget must be 0 (off) or more, got {args.risk_budget}")
    if args.from_topic:
        from insiderwatch.stream.history import read_topic_snapshot

        s = _settings(args)
        with progress(f"train (reading {s.topic_events})", None) as advance:
            events, bad = _parse_events(read_topic_snapshot(s, progress=advance), since, until)
        source = f"topic {s.topic_events}"
    else:
        events, bad = _load_events(args.events, since, until)
        source = ", ".join(args.events)
    rules = _analyst_rules(args.feedback, args.context)
    rules.prepare(events)  # privileged and service accounts train their own peer groups
    confirmed = rules.excluded_event_ids()
    kept = [event for event in events if event.event_id not in confirmed]
    with progress("train (replaying history)", len(kept)) as advance:
        manifest = _train(args, kept, advance)
    _print_trained(args, manifest, kept, bad, started, source)
    if args.feedback or args.context:
        print(
            f"train: used {len(rules.verdicts)} verdicts ({rules.true_positives()} true "
            f"positives: {len(events) - len(kept)} of their events left out of the baselines) "
            f"and {len(rules.contexts)} context entries"
        )
    return 0


def _train(args: argparse.Namespace, events: list, advance) -> Manifest:
    from insiderwatch.models.incidents import IncidentSettings
    from insiderwatch.models.train import train_model

    try:
        return train_model(
            events,
            args.model_dir,
            alert_budget=args.alert_budget,
            risk_budget=args.risk_budget,
            n_estimators=args.trees,
            max_samples=args.max_samples,
            seed=args.seed,
            model_version=args.model_version,
            incident=IncidentSettings(
                gap_s=args.incident_gap_min * 60.0, max_duration_s=args.incident_max_hours * 3600.0
            ),
            warmup_days=args.warmup_days,
            progress=advance,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _print_trained(
    args: argparse.Namespace,
    manifest: Manifest,
    events: list,
    bad: int,
    started: float,
    source: str,
) -> None:
    print(
        f"train: model {manifest.model_version} from {len(events)} events of {source} "
        f"({bad} invalid or repeated event ids skipped), "
        f"{manifest.actor_count} actors, threshold {manifest.threshold:.4f} "
        f"({manifest.training_incidents_at_threshold} incidents in {manifest.actor_days} actor-days), "
        f"written to {args.model_dir} in {time.monotonic() - started:.1f} s"
    )


def _analyst_rules(feedback: str | None, context: str | None):
    """Verdicts and context from JSONL files (the topics' record formats); the first record
    that cannot be read is the error."""
    from insiderwatch.models.analyst import AnalystRules
    from insiderwatch.stream.offline import read_jsonl

    rules = AnalystRules()

    def lines(path: str | None) -> list[bytes]:
        return [raw for _, raw in read_jsonl(_existing_file(path))] if path else []

    refused = rules.load(lines(feedback), lines(context))
    if refused:
        raise UserError(f"{refused[0]} ({len(refused)} records refused)")
    return rules


def _load_detector(settings: Settings):
    from insiderwatch.models.artifact import ArtifactError, load_model
    from insiderwatch.models.detector import Detector

    try:
        model = load_model(settings.model_dir)
    except ArtifactError as exc:
        raise UserError(str(exc)) from None
    key = settings.pseudonymize_key.encode() or None
    return Detector(model, pseudonymize_key=key)


def cmd_score(args: argparse.Namespace) -> int:
    from insiderwatch.stream.offline import score_files
    from insiderwatch.stream.progress import progress

    s = _settings(args)
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    detector = _load_detector(s)
    for path in args.events:
        _existing_file(path)
    rules = _analyst_rules(args.feedback, args.context)
    started = time.monotonic()
    total = sum(_count_lines(p) for p in args.events) if sys.stderr.isatty() else None
    with progress("score", total) as advance:
        result = score_files(
            detector,
            args.events,
            args.out,
            all_scores_path=args.all_scores,
            dlq_path=args.dlq_out,
            alert_format=s.alert_format,
            progress=advance,
            workers=args.workers,
            rules=rules,
            suppressed_path=args.suppressed_out,
        )
    elapsed = time.monotonic() - started
    print(
        f"score: {result.events} events: {result.scored} scored, {result.dead_lettered} dead-lettered "
        f"{dict(sorted(result.reasons.items()))}, {result.duplicates} duplicates; "
        f"{result.incidents} incidents, {result.alerts} alert messages, "
        f"{result.suppressed} held back by verdicts or exclusions "
        f"-> {args.out} ({result.events / max(elapsed, 1e-9):,.0f} events/s, model {detector.model.version})"
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from insiderwatch.stream.replay import replay_file

    s = _settings(args)
    _existing_file(args.file)
    started = time.monotonic()
    from insiderwatch.stream.progress import progress

    total = _count_lines(args.file) if sys.stderr.isatty() else None
    if total is not None and args.limit is not None:
        total = min(total, args.limit)
    with progress("replay", total) as advance:
        sent = replay_file(s, args.file, rate=args.rate, limit=args.limit, progress=advance)
    elapsed = time.monotonic() - started
    print(
        f"replay: {sent} events -> {s.topic_events} on {s.broker} ({sent / max(elapsed, 1e-9):,.0f} events/s)"
    )
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from insiderwatch.stream.tail import TailFilter, tail_alerts

    s = _settings(args)
    severities = None
    if args.severity:
        severities = frozenset(x.strip() for x in args.severity.split(","))
        unknown = severities - {"low", "medium", "high", "critical"}
        if unknown:
            raise UserError(
                f"--severity takes low, medium, high or critical, got {', '.join(sorted(unknown))}"
            )
    start = args.start
    if start not in ("beginning", "end"):
        from insiderwatch.models.events import parse_timestamp

        try:
            parse_timestamp(start)
        except ValueError:
            raise UserError(
                f"--from takes beginning, end or an RFC 3339 timestamp, got {start!r}"
            ) from None
    tail_alerts(
        s,
        start,
        TailFilter(severities, args.actor, args.role),
        args.json,
        args.max,
        args.idle_timeout,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from insiderwatch.stream.topics import missing_topics

    s = _settings(args)
    detector = _load_detector(s)  # fail fast on a bad model, before Faust starts
    missing = missing_topics(s)
    if missing:
        raise UserError(
            f"topic {missing[0]} does not exist on {s.broker}; run 'insiderwatch topics create'"
        )
    del detector
    return run_worker(s)


def run_worker(s: Settings) -> int:
    """Build the worker from ``s`` and run it until it stops (Faust's public ``Worker``)."""
    import faust

    from insiderwatch.stream.app import Worker
    from insiderwatch.stream.faust_seam import SeamError, check_seam

    worker = Worker(s)
    try:
        check_seam(worker.app)
    except SeamError as exc:
        raise UserError(str(exc)) from None
    app = worker.app
    app.finalize()
    app.worker_init()
    app.worker_init_post_autodiscover()
    level = {"debug": "debug", "info": "info", "warning": "warn", "error": "error"}[
        s.log_level.lower()
    ]
    # Faust prints its start-up banner on stdout; with JSON logs they must be the only output.
    faust.Worker(app, loglevel=level, quiet=s.log_format == "json").execute_from_commandline()
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    from insiderwatch.models.artifact import ArtifactError, publish_model, rollback_model

    try:
        if args.action == "publish":
            if not args.to:
                raise UserError("model publish needs --to LIVE_DIR (the workers' model.dir)")
            new, previous = publish_model(args.dir, args.to)
            print(
                f"model: {args.to} now serves {new} (previous: {previous or 'none'}); "
                "workers switch within 10 s"
            )
            return 0
        if args.action == "rollback":
            restored, replaced = rollback_model(args.dir)
            print(
                f"model: {args.dir} rolled back to {restored} (was {replaced}); workers switch within 10 s"
            )
            return 0
    except ArtifactError as exc:
        raise UserError(str(exc)) from None
    return cmd_model_show(args)


def cmd_model_show(args: argparse.Namespace) -> int:
    import json

    from insiderwatch.models.artifact import ArtifactError, load_model

    try:
        model = load_model(args.dir)
    except ArtifactError as exc:
        raise UserError(str(exc)) from None
    m = model.manifest.to_json()
    view = {
        k: m[k]
        for k in (
            "model_version",
            "training_window",
            "calibration_window",
            "event_count",
            "actor_count",
            "actor_days",
            "alert_budget_per_1000_actor_days",
            "threshold",
            "risk",
            "severity_thresholds",
            "score_quantiles",
            "incident",
            "forest",
            "feature_names",
        )
        if k in m
    }
    print(json.dumps(view, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from insiderwatch.simulation.evaluate import (
        EvaluationConfig,
        run_evaluation,
        run_forest_seeds,
        run_profiles,
    )
    from insiderwatch.stream.progress import progress

    if args.trees < 1:
        raise UserError(f"--trees must be at least 1, got {args.trees}")
    if not args.risk_budget >= 0.0:
        raise UserError(f"--risk-budget must be 0 (off) or more, got {args.risk_budget}")
    if args.profiles < 0:
        raise UserError(f"--profiles must be 0 or more, got {args.profiles}")
    if args.forest_seeds < 0:
        raise UserError(f"--forest-seeds must be 0 or more, got {args.forest_seeds}")
    if args.profiles and args.forest_seeds:
        raise UserError("use --profiles or --forest-seeds, not both (--profile P picks one)")
    if args.profile is not None and args.profile < 1:
        raise UserError(f"--profile must be 1 or more, got {args.profile}")
    config = EvaluationConfig(
        actors=args.actors,
        history_days=args.history_days,
        scored_days=args.scored_days,
        seed=args.seed,
        alert_budget=args.alert_budget,
        risk_budget=args.risk_budget,
        trees=args.trees,
        forest_seed=args.forest_seed,
        out_dir=args.out_dir,
        profile=args.profile,
    )
    if args.forest_seeds:
        print(run_forest_seeds(config, args.forest_seeds, progress=progress))
    elif args.profiles:
        print(run_profiles(config, args.profiles, progress=progress))
    else:
        print(run_evaluation(config, progress=progress))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from insiderwatch.stream.demo import run_demo

    return run_demo(_settings(args), actors=args.actors, rate=args.rate)


# -- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="insiderwatch", description="Streaming detector of insider data-access anomalies."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_broker_commands(sub)
    _add_data_commands(sub)
    _add_scoring_commands(sub)
    _add_runtime_commands(sub)
    from insiderwatch.stream.analyst_cli import add_analyst_commands

    add_analyst_commands(sub, _add_settings, _BROKER_SETTINGS)
    return parser


def _add_broker_commands(sub: Any) -> None:
    """The local broker, topics, replay and tail."""
    p = sub.add_parser("kafka", help="run the local Apache Kafka broker (KRaft, 127.0.0.1)")
    p.add_argument("action", choices=["start", "stop", "status"])
    _add_settings(p, _KAFKA_SETTINGS)
    p.set_defaults(func=cmd_kafka)

    p = sub.add_parser("topics", help="create the events, alerts and DLQ topics")
    p.add_argument("action", choices=["create"])
    _add_settings(p, _BROKER_SETTINGS)
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("replay", help="produce a JSONL file to the events topic")
    p.add_argument("file")
    p.add_argument(
        "--rate", type=float, default=None, help="events per second (default: as fast as possible)"
    )
    p.add_argument("--limit", type=int, default=None, help="stop after this many events")
    _add_settings(p, _BROKER_SETTINGS)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("tail", help="show alerts as they arrive")
    p.add_argument("--json", action="store_true", help="one alert JSON per line (for jq)")
    p.add_argument(
        "--from", dest="start", default="end", help="beginning, end (default) or an RFC 3339 time"
    )
    p.add_argument("--severity", default=None, help="comma-separated severities to show")
    p.add_argument("--actor", default=None)
    p.add_argument("--role", default=None)
    p.add_argument("--max", type=int, default=None, help="exit after this many alerts")
    p.add_argument(
        "--idle-timeout", type=float, default=None, help="exit after this many quiet seconds"
    )
    _add_settings(p, _BROKER_SETTINGS)
    p.set_defaults(func=cmd_tail)


def _add_data_commands(sub: Any) -> None:
    """Simulation and training."""
    p = sub.add_parser(
        "simulate", help="write simulated access events (JSONL) with labelled behaviour"
    )
    p.add_argument("--out", required=True, help="output JSONL file")
    p.add_argument("--actors", type=int, default=500)
    p.add_argument("--days", type=int, default=28, help="days in the simulated organisation")
    p.add_argument(
        "--from-day",
        type=int,
        default=0,
        help="first day to write (slice of the same organisation)",
    )
    p.add_argument("--to-day", type=int, default=None, help="day after the last one to write")
    p.add_argument("--start", default="2026-01-05", help="date of day 0 (UTC)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--scenarios-from-day",
        type=int,
        default=21,
        help="insider scenarios happen from this day on",
    )
    p.add_argument(
        "--no-scenarios", action="store_true", help="no insider or benign-unusual scenarios"
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("train", help="fit and export a model from a history of events")
    p.add_argument("--events", action="append", help="JSONL history (repeatable)")
    p.add_argument(
        "--from-topic",
        action="store_true",
        help="read the history from topic.events instead (everything retained, up to now)",
    )
    p.add_argument("--since", help="only events at or after this RFC 3339 time (event time)")
    p.add_argument("--until", help="only events before this RFC 3339 time (event time)")
    p.add_argument("--model-dir", required=True)
    p.add_argument(
        "--alert-budget",
        type=float,
        default=DEFAULT_ALERT_BUDGET,
        help="incidents per 1,000 actor-days of the training history (default %(default)s; "
        "live periods run about 2x hotter)",
    )
    p.add_argument(
        "--risk-budget",
        type=float,
        default=DEFAULT_RISK_BUDGET,
        help="entity-risk alerts per 1,000 actor-days of the training history (default "
        "%(default)s; 0 = off; see the README, 'Entity risk')",
    )
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--max-samples", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--warmup-days", type=float, default=7.0, help="history days used only to build baselines"
    )
    p.add_argument(
        "--incident-gap-min",
        type=float,
        default=120.0,
        help="an incident closes after this quiet time",
    )
    p.add_argument("--incident-max-hours", type=float, default=24.0, help="longest incident")
    p.add_argument("--model-version", default=None)
    _add_analyst_files(p)
    _add_settings(p, _BROKER_SETTINGS)
    p.set_defaults(func=cmd_train)


def _add_analyst_files(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--feedback",
        default=None,
        help="JSONL of verdict records (the feedback topic's format; e.g. dumped with kcat)",
    )
    p.add_argument(
        "--context", default=None, help="JSONL of actor context records (the context topic's)"
    )


def _add_scoring_commands(sub: Any) -> None:
    """Offline scoring and the detection evaluation."""
    p = sub.add_parser("score", help="score JSONL files offline through the worker's code")
    p.add_argument("--model-dir", required=True)
    p.add_argument(
        "--events", action="append", required=True, help="JSONL events (repeatable, in order)"
    )
    p.add_argument("--out", required=True, help="alerts JSONL")
    p.add_argument("--all-scores", default=None, help="also write every event's score (JSONL)")
    p.add_argument("--dlq-out", default=None, help="also write dead-letter records (JSONL)")
    p.add_argument(
        "--suppressed-out",
        default=None,
        help="also write the alerts that verdicts or exclusions hold back (JSONL)",
    )
    _add_analyst_files(p)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes; events are split by actor (default 1; outputs then grouped by worker)",
    )
    _add_settings(p, ("alert.format",))
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("evaluate", help="simulate, train, score and report detection quality")
    p.add_argument("--actors", type=int, default=500)
    p.add_argument("--history-days", type=int, default=21)
    p.add_argument("--scored-days", type=int, default=7)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--alert-budget", type=float, default=DEFAULT_ALERT_BUDGET)
    p.add_argument(
        "--risk-budget",
        type=float,
        default=DEFAULT_RISK_BUDGET,
        help="entity-risk alerts per 1,000 actor-days of the training history (default "
        "%(default)s; 0 = off; see the README, 'Entity risk')",
    )
    p.add_argument("--trees", type=int, default=100, help="isolation-forest trees")
    p.add_argument(
        "--forest-seed",
        type=int,
        default=None,
        help="the forest's random seed (default: --seed); change it alone to see what a "
        "retrain on the same data changes",
    )
    p.add_argument("--out-dir", default=".local/evaluate")
    p.add_argument(
        "--profiles",
        type=int,
        default=0,
        help="evaluate on N randomised organisations with quiet insiders (seeds --seed+1..N), "
        "with a leave-one-class-out table",
    )
    p.add_argument(
        "--profile",
        type=int,
        default=None,
        help="evaluate on randomised organisation profile P alone (seed as given)",
    )
    p.add_argument(
        "--forest-seeds",
        type=int,
        default=0,
        help="fit N forests (seeds --forest-seed+0..N-1) on the same history and compare the "
        "false-incident rates of the same scored week",
    )
    p.set_defaults(func=cmd_evaluate)


def _add_runtime_commands(sub: Any) -> None:
    """The worker, model management and the demo."""
    p = sub.add_parser("worker", help="run the Faust scoring worker")
    p.add_argument(
        "--model-dir", default=None, help="model directory (same as --model-dir setting)"
    )
    _add_settings(p, tuple(n for n in _WORKER_SETTINGS if n != "model.dir"))
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("model", help="inspect, publish or roll back a model")
    p.add_argument("action", choices=["show", "publish", "rollback"])
    p.add_argument(
        "dir", help="show: any model dir; publish: the new model; rollback: the live model dir"
    )
    p.add_argument("--to", default=None, help="publish: the live model dir the workers watch")
    p.set_defaults(func=cmd_model)

    p = sub.add_parser(
        "demo", help="the main job: broker, topics, history, model, worker, live traffic, alerts"
    )
    p.add_argument("--actors", type=int, default=150)
    p.add_argument("--rate", type=float, default=2000.0, help="live traffic, events per second")
    _add_settings(p, _WORKER_SETTINGS + _KAFKA_SETTINGS)
    p.set_defaults(func=cmd_demo)


def main(argv: list[str] | None = None) -> int:
    tune_collector()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # kafka-python logs every reconnect attempt; the CLI reports failures in one sentence.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    from insiderwatch.stream.topics import BrokerUnreachable

    try:
        if getattr(args, "needs_settings", False):
            return int(args.func(args, _settings(args)) or 0)
        return int(args.func(args) or 0)
    except (UserError, SettingsError, BrokerUnreachable) as exc:
        print(f"insiderwatch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(
            f"insiderwatch {args.command}: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(
                ": "
            ),
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
