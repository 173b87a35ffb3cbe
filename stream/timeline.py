"""``insiderwatch actor ACTOR_ID``: one actor's timeline, as an analyst reads it.

In event-time order: the actor's alerts from the alerts topic (with the verdicts of the
feedback topic), the alerts that verdicts or exclusions held back (suppressed topic), the
actor's context entry, and its current windows against its baseline from the worker that
holds its state (``/actors/ACTOR_ID`` on the worker's web server). ``--json`` prints the same
as one JSON object; ``--plot`` draws score and risk over time with the threshold and the
alerts marked.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

import orjson

from insiderwatch.models.analyst import parse_context, parse_verdict
from insiderwatch.models.events import InvalidEvent, parse_timestamp
from insiderwatch.stream.settings import Settings, UserError

__all__ = ["cmd_actor", "gather_timeline", "plot_timeline"]


def _actor_records(settings: Settings, topic: str, actor: bytes, since_ms: int | None) -> list:
    from insiderwatch.stream.analyst_io import read_topic

    return [
        orjson.loads(record.value)
        for record in read_topic(settings, topic, since_ms)
        if record.key == actor and record.value is not None
    ]


def _latest_by_key(settings: Settings, topic: str) -> dict[bytes, bytes | None]:
    from insiderwatch.stream.analyst_io import read_topic

    latest: dict[bytes, bytes | None] = {}
    for record in read_topic(settings, topic):
        if record.key is not None:
            latest[record.key] = record.value
    return latest


def _ask_workers(urls: list[str], actor_id: str) -> tuple[dict | None, list[str]]:
    """The actor's windows from the first worker that holds its state; what each said."""
    said = []
    for url in urls:
        target = f"{url.rstrip('/')}/actors/{urllib.request.quote(actor_id, safe='')}"
        try:
            with urllib.request.urlopen(target, timeout=5) as response:  # noqa: S310
                return orjson.loads(response.read()), said + [f"{url}: found"]
        except urllib.error.HTTPError as exc:
            said.append(f"{url}: {'not on this worker' if exc.code == 404 else exc.code}")
        except (urllib.error.URLError, OSError) as exc:
            said.append(f"{url}: no answer ({getattr(exc, 'reason', exc)})")
    return None, said


def gather_timeline(settings: Settings, actor_id: str, since: str | None, workers: list[str]):
    """The timeline of ``actor_id`` as one JSON-ready dict."""
    from insiderwatch.stream.analyst_io import native_view

    since_ms = int(parse_timestamp(since) * 1000) if since else None
    key = actor_id.encode()
    verdicts = {}
    for value in _latest_by_key(settings, settings.topic_feedback).values():
        verdict = parse_verdict(value) if value is not None else None
        if verdict is not None and not isinstance(verdict, InvalidEvent):
            verdicts[verdict.alert_id] = verdict
    items = []
    for topic, held in ((settings.topic_alerts, False), (settings.topic_suppressed, True)):
        for doc in _actor_records(settings, topic, key, since_ms):
            view = native_view(doc)
            verdict = verdicts.get(view["alert_id"] or "")
            view["suppressed"] = doc.get("suppressed") if held else None
            view["verdict"] = None if verdict is None else verdict.verdict
            view["status"] = doc.get("status") or doc.get("activity_name", "").lower()
            view["risk"] = (doc.get("risk") or (doc.get("unmapped") or {}).get("risk") or {}).get(
                "ratio"
            )
            view["threshold"] = doc.get("threshold") or (doc.get("unmapped") or {}).get("threshold")
            items.append(view)
    items.sort(key=lambda item: (parse_timestamp(item["timestamp"]), item["alert_id"]))
    context_value = _latest_by_key(settings, settings.topic_context).get(key)
    context = None
    if context_value is not None and not isinstance(parse_context(context_value), InvalidEvent):
        context = orjson.loads(context_value)
    scores = []
    if settings.topic_scores:
        scores = [
            [doc["timestamp"], doc["score"], bool(doc.get("flagged"))]
            for doc in _actor_records(settings, settings.topic_scores, key, since_ms)
            if "score" in doc and "timestamp" in doc
        ]
    windows, asked = _ask_workers(workers, actor_id)
    return {
        "actor_id": actor_id,
        "context": context,
        "alerts": items,
        "windows": windows,
        "workers": asked,
        "scores": scores,
    }


def cmd_actor(args: argparse.Namespace, settings: Settings) -> int:
    if args.since is not None:
        try:
            parse_timestamp(args.since)
        except ValueError:
            raise UserError(
                "--since must be an RFC 3339 time such as 2026-11-01T00:00:00Z"
            ) from None
    workers = args.worker or [f"http://{settings.web_host}:{settings.web_port}"]
    timeline = gather_timeline(settings, args.actor_id, args.since, workers)
    if args.plot:
        plot_timeline(timeline, args.plot)
    if args.json:
        sys.stdout.write(orjson.dumps(timeline).decode() + "\n")
    else:
        from insiderwatch.stream.timeline_view import render_timeline

        render_timeline(timeline, args.plot)
    return 0


def plot_timeline(timeline: dict, path: str) -> None:
    """A PNG of the actor's scores (every scored event when the scores topic is on; its
    alerts' otherwise) and entity risk over event time, with the threshold and the alerts."""
    import matplotlib

    matplotlib.use("Agg")
    from datetime import UTC, datetime

    import matplotlib.pyplot as plt

    def when(text: str) -> datetime:
        return datetime.fromtimestamp(parse_timestamp(text), UTC)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    scores = timeline["scores"]
    if scores:
        top.scatter([when(t) for t, _, _ in scores], [s for _, s, _ in scores], s=4, c="0.6")
    events = [a for a in timeline["alerts"] if a["kind"] == "event"]
    for held, marker, label in ((False, "o", "alert"), (True, "x", "held back")):
        chosen = [a for a in events if bool(a["suppressed"]) == held]
        if chosen:
            top.scatter(
                [when(a["timestamp"]) for a in chosen],
                [a["score"] for a in chosen],
                marker=marker,
                c="tab:red" if not held else "tab:gray",
                label=label,
            )
    thresholds = [a["threshold"] for a in events if a.get("threshold")]
    if thresholds:
        top.axhline(thresholds[-1], color="tab:red", linestyle="--", linewidth=1, label="threshold")
    top.set_ylabel("score")
    top.legend(loc="upper left", fontsize=8)
    risky = [a for a in timeline["alerts"] if a["kind"] == "entity_risk" and a.get("risk")]
    points = [(when(a["timestamp"]), a["risk"]) for a in risky]
    windows = timeline.get("windows") or {}
    if windows.get("risk"):
        points.append((when(windows["windows_as_of"]), windows["risk"]["ratio"]))
    if points:
        bottom.plot(*zip(*sorted(points), strict=True), marker="o", color="tab:purple")
    bottom.axhline(1.0, color="tab:purple", linestyle="--", linewidth=1, label="risk limit")
    bottom.set_ylim(bottom=0.0)
    bottom.set_ylabel("risk / limit")
    bottom.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"insiderwatch: {timeline['actor_id']}")
    fig.autofmt_xdate()
    fig.savefig(path, dpi=100)
    plt.close(fig)
