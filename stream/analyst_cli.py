"""``insiderwatch feedback``, ``context`` and ``actor``: the analyst's commands.

``feedback`` looks the alert up on the alerts topic and writes a verdict record
(:mod:`insiderwatch.models.analyst`) to the feedback topic; ``context`` writes, clears and
lists actor context; ``actor`` shows one actor's timeline (:mod:`insiderwatch.stream.timeline`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from insiderwatch.models.analyst import (
    DEFAULT_SUPPRESS_DAYS,
    MAX_WATCH,
    SCOPES,
    VERDICTS,
    parse_context,
    parse_day_or_time,
    parse_verdict,
)
from insiderwatch.models.events import InvalidEvent
from insiderwatch.stream.settings import Settings, UserError

__all__ = ["cmd_feedback", "cmd_context", "add_analyst_commands"]


def cmd_feedback(args: argparse.Namespace, settings: Settings) -> int:
    from insiderwatch.stream.analyst_io import find_alert, produce, verdict_record

    if not 0 < args.days <= 3650:
        raise UserError(f"--days must be between 0 and 3650, got {args.days}")
    alert = find_alert(settings, args.alert_id)
    if alert is None:
        raise UserError(
            f"no alert {args.alert_id} on {settings.topic_alerts} (look the id up with "
            f"`insiderwatch tail --from beginning --json`)"
        )
    record = verdict_record(alert, args.verdict, args.scope, args.days, args.analyst, args.note)
    value = orjson.dumps(record)
    checked = parse_verdict(value, args.alert_id.encode())
    if isinstance(checked, InvalidEvent):  # e.g. an OCSF alert without the pattern's access
        raise UserError(f"cannot record this verdict: {checked.detail}")
    produce(settings, settings.topic_feedback, args.alert_id.encode(), value)
    held = (
        "no later alert is held back"
        if args.verdict == "true_positive"
        else {
            "alert": "later messages of this alert are held back",
            "actor_pattern": f"{alert['actor_id']}'s alerts like it ({record['pattern']['access']}"
            f", led by {' or '.join(record['pattern']['reasons']) or 'any reason'}) are held "
            f"back until {record['until']}",
            "actor": f"{alert['actor_id']}'s {alert['kind']} alerts are held back until "
            f"{record['until']}",
        }[args.scope]
    )
    print(f"feedback: {args.verdict} on {args.alert_id} -> {settings.topic_feedback}; {held}")
    return 0


def _date(flag: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_day_or_time(value)
    except ValueError:
        raise UserError(f"{flag} must be a date (YYYY-MM-DD) or an RFC 3339 time") from None
    return value


def cmd_context(args: argparse.Namespace, settings: Settings) -> int:
    from insiderwatch.stream.analyst_io import context_record, produce

    if args.action == "list":
        return _list_context(settings, args.json)
    if not args.actor_id:
        raise UserError(f"context {args.action} needs an ACTOR_ID")
    key = args.actor_id.encode()
    if args.action == "clear":
        produce(settings, settings.topic_context, key, None)
        print(f"context: cleared {args.actor_id} on {settings.topic_context}")
        return 0
    if args.watch is not None and not 1.0 <= args.watch <= MAX_WATCH:
        raise UserError(f"--watch must be from 1 to {MAX_WATCH:g}, got {args.watch}")
    record = context_record(
        args.actor_id,
        leaver_from=_date("--leaver-from", args.leaver_from),
        privileged=args.privileged or None,
        service_account=args.service_account or None,
        exclude_until=_date("--exclude-until", args.exclude_until),
        watch=args.watch,
        note=args.note,
    )
    value = orjson.dumps(record)
    checked = parse_context(value, key)
    if isinstance(checked, InvalidEvent):
        raise UserError(f"cannot record this context: {checked.detail}")
    produce(settings, settings.topic_context, key, value)
    print(f"context: {args.actor_id} -> {settings.topic_context}: {orjson.dumps(record).decode()}")
    return 0


def _list_context(settings: Settings, as_json: bool) -> int:
    from insiderwatch.stream.analyst_io import read_topic

    latest: dict[bytes, bytes | None] = {}
    for record in read_topic(settings, settings.topic_context):
        if record.key is not None:
            latest[record.key] = record.value
    entries = []
    for value in latest.values():
        entry = parse_context(value) if value is not None else None
        if entry is not None and not isinstance(entry, InvalidEvent):
            entries.append(orjson.loads(value))  # type: ignore[arg-type]
    entries.sort(key=lambda doc: doc["actor_id"])
    if as_json:
        for doc in entries:
            sys.stdout.write(orjson.dumps(doc).decode() + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"actor context on {settings.topic_context} ({len(entries)} actors)")
    for column in ("actor", "leaver from", "watch", "privileged", "service", "excluded until"):
        table.add_column(column)
    table.add_column("note", overflow="fold")
    for doc in entries:
        table.add_row(
            doc["actor_id"],
            doc.get("leaver_from") or "",
            f"{doc.get('watch', 1.0):g}",
            "yes" if doc.get("privileged") else "",
            "yes" if doc.get("service_account") else "",
            doc.get("exclude_until") or "",
            doc.get("note") or "",
        )
    Console().print(table)
    return 0


def add_analyst_commands(sub: Any, add_settings: Any, broker_settings: tuple) -> None:
    """The ``feedback``, ``context`` and ``actor`` sub-commands."""
    p = sub.add_parser("feedback", help="record an analyst's verdict on an alert")
    p.add_argument("alert_id")
    p.add_argument("--verdict", required=True, choices=VERDICTS)
    p.add_argument(
        "--scope",
        default="alert",
        choices=SCOPES,
        help="what a benign verdict holds back: this alert's later messages (default), the "
        "actor's alerts with the same access and leading reason, or all the actor's alerts "
        "of this kind",
    )
    p.add_argument(
        "--days",
        type=float,
        default=DEFAULT_SUPPRESS_DAYS,
        help="how long an actor scope holds, in event time from the alert (default %(default)g)",
    )
    p.add_argument("--analyst", default=None)
    p.add_argument("--note", default=None)
    add_settings(p, broker_settings)
    p.set_defaults(func=cmd_feedback, needs_settings=True)

    p = sub.add_parser("context", help="set, clear or list what analysts know about actors")
    p.add_argument("action", choices=["set", "clear", "list"])
    p.add_argument("actor_id", nargs="?")
    p.add_argument("--leaver-from", default=None, help="date of the notice (YYYY-MM-DD)")
    p.add_argument("--privileged", action="store_true", help="compare with privileged accounts")
    p.add_argument("--service-account", action="store_true", help="compare with services")
    p.add_argument("--exclude-until", default=None, help="score but do not alert until DATE")
    p.add_argument("--watch", type=float, default=None, help="risk weight, 1 to 10")
    p.add_argument("--note", default=None)
    p.add_argument("--json", action="store_true", help="list: one JSON object per line")
    add_settings(p, broker_settings)
    p.set_defaults(func=cmd_context, needs_settings=True)

    p = sub.add_parser("actor", help="one actor's timeline: alerts, verdicts, context, windows")
    p.add_argument("actor_id")
    p.add_argument("--since", default=None, help="alerts written at or after this time")
    p.add_argument("--json", action="store_true", help="the timeline as one JSON object")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="also draw score and risk")
    p.add_argument(
        "--worker",
        action="append",
        default=None,
        metavar="URL",
        help="worker web servers to ask for the actor's windows (repeatable; default: "
        "http://web.host:web.port)",
    )
    add_settings(p, broker_settings + ("web.host", "web.port"))
    p.set_defaults(func=_cmd_actor, needs_settings=True)


def _cmd_actor(args: argparse.Namespace, settings: Settings) -> int:
    from insiderwatch.stream.timeline import cmd_actor

    return cmd_actor(args, settings)
