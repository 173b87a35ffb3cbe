"""`insiderwatch tail`: a live, readable view of the alerts topic (or JSON lines for jq)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from rich.console import Console
from rich.text import Text

from insiderwatch.models.events import parse_timestamp
from insiderwatch.models.incidents import SEVERITIES
from insiderwatch.stream.security import kafka_python_security
from insiderwatch.stream.settings import Settings
from insiderwatch.stream.topics import BrokerUnreachable, ensure_reachable

__all__ = ["TailFilter", "tail_alerts", "alert_view"]

SEVERITY_STYLE = {
    "low": "cyan",
    "medium": "yellow",
    "high": "bold red",
    "critical": "bold white on red",
}


@dataclass(frozen=True)
class TailFilter:
    severities: frozenset[str] | None = None
    actor: str | None = None
    role: str | None = None

    def accepts(self, view: dict) -> bool:
        if self.severities and view["severity"] not in self.severities:
            return False
        if self.actor and view["actor_id"] != self.actor:
            return False
        return not (self.role and view["actor_role"] != self.role)


def alert_view(doc: dict) -> dict:
    """The fields tail shows, from a native alert or an OCSF Detection Finding."""
    if "class_uid" in doc:  # OCSF
        unmapped = doc.get("unmapped") or {}
        return {
            "timestamp": unmapped.get("timestamp", ""),
            "severity": str(doc.get("severity", "")).lower(),
            "actor_id": unmapped.get("actor_id", ""),
            "actor_role": unmapped.get("actor_role", ""),
            "score": float(unmapped.get("score", 0.0)),
            "summary": doc.get("message", ""),
            "status": "updated" if doc.get("type_uid") == 200402 else "new",
            "alert_id": (doc.get("finding_info") or {}).get("uid", ""),
        }
    return {
        k: doc.get(k, "")
        for k in (
            "timestamp",
            "severity",
            "actor_id",
            "actor_role",
            "score",
            "summary",
            "status",
            "alert_id",
        )
    }


def _alerts_consumer(settings: Settings, start: str) -> KafkaConsumer:
    """A consumer assigned every partition of the alerts topic, positioned at ``start``."""
    ensure_reachable(settings)
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.broker.split(","),
            enable_auto_commit=False,
            client_id="insiderwatch-tail",
            **kafka_python_security(settings),
            consumer_timeout_ms=500,
        )
    except (KafkaError, OSError, ValueError) as exc:
        raise BrokerUnreachable(
            f"no Kafka broker answers at {settings.broker} ({exc.__class__.__name__})"
        ) from None
    topic = settings.topic_alerts
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        consumer.close()
        raise BrokerUnreachable(
            f"topic {topic} does not exist on {settings.broker}; run 'insiderwatch topics create'"
        )
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    if start == "beginning":
        consumer.seek_to_beginning(*tps)
    elif start == "end":
        consumer.seek_to_end(*tps)
    else:
        at_ms = int(parse_timestamp(start) * 1000)
        found = consumer.offsets_for_times({tp: at_ms for tp in tps})
        for tp in tps:
            if found.get(tp) is not None:
                consumer.seek(tp, found[tp].offset)
            else:
                consumer.seek_to_end(tp)
    return consumer


def tail_alerts(
    settings: Settings,
    start: str,
    flt: TailFilter,
    as_json: bool,
    max_alerts: int | None,
    idle_timeout_s: float | None,
    console: Console | None = None,
    on_alert: Callable[[dict], None] | None = None,
    stop_when: Callable[[], bool] | None = None,
) -> int:
    """Print alerts until Ctrl-C, ``max_alerts``, ``idle_timeout_s`` or ``stop_when()``;
    return how many. ``on_alert`` also gets each shown alert's decoded document."""
    console = console or Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    consumer = _alerts_consumer(settings, start)
    topic = settings.topic_alerts
    err.print(f"[dim]reading {topic} on {settings.broker} from {start} (Ctrl-C to stop)[/dim]")
    shown = 0
    last_seen = time.monotonic()
    try:
        while max_alerts is None or shown < max_alerts:
            if stop_when is not None and stop_when():
                break
            batch = consumer.poll(timeout_ms=500)
            if not batch:
                if idle_timeout_s is not None and time.monotonic() - last_seen > idle_timeout_s:
                    break
                continue
            last_seen = time.monotonic()
            for record in (r for records in batch.values() for r in records):
                if max_alerts is not None and shown >= max_alerts:
                    break
                try:
                    doc = orjson.loads(record.value)
                    view = alert_view(doc)
                except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
                    continue
                if not flt.accepts(view):
                    continue
                if on_alert is not None:
                    on_alert(doc)
                if as_json:
                    sys.stdout.write(record.value.decode() + "\n")
                    sys.stdout.flush()
                else:
                    console.print(_render(view))
                shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return shown


def _render(view: dict) -> Text:
    severity = view["severity"] if view["severity"] in SEVERITIES else "low"
    line = Text()
    line.append(f"{view['timestamp'][:19].replace('T', ' ')} ", style="dim")
    line.append(f"{severity.upper():8}", style=SEVERITY_STYLE[severity])
    marker = "+" if view["status"] == "updated" else " "
    line.append(f"{marker}{view['actor_id']:<12} ", style="bold")
    line.append(f"{view['actor_role']:<17}", style="magenta")
    line.append(f"{float(view['score'] or 0):.3f}  ")
    line.append(str(view["summary"]))
    return line
