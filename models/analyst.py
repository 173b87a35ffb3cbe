"""The analyst's loop: verdicts on alerts, suppression, and context the model cannot learn.

Two record kinds, each read from its own compacted topic by every worker (and from JSONL
files by offline ``score``), hold what analysts and their SOAR playbooks decide:

*Verdicts* (topic ``insiderwatch-feedback``, key = alert id), one per alert::

    {"alert_id": "iw-…", "verdict": "benign_expected", "scope": "actor_pattern",
     "actor_id": "emp-00042", "kind": "event", "alert_timestamp": "2026-11-20T10:02:11Z",
     "pattern": {"access": "update seller_account", "reasons": ["access_surprise", "…"]},
     "until": "2026-12-04T10:02:11Z", "event_ids": ["…"], "analyst": "ana", "note": "…"}

- ``verdict``: ``true_positive``, ``benign`` or ``benign_expected``.
- ``scope`` (default ``alert``): a benign verdict suppresses the later messages of the same
  alert (updates and escalations of its incident, not the first message, which the analyst
  judged); with ``actor_pattern``, the actor's later alerts of the same kind with the same
  access (action and resource type) and one of their two leading reasons among the
  pattern's three (the same behaviour again: its features' order shifts as the actor's
  windows fill); with ``actor``, all the actor's later alerts of that
  kind. Actor scopes hold after ``alert_timestamp`` until ``until`` (event time; default
  :data:`DEFAULT_SUPPRESS_DAYS` days later). So a replay of the same events with the same
  verdicts (offline ``score --feedback``) sends the alerts that were judged, as the stream did. A rule made from
  a per-event alert never touches entity-risk alerts, and the other way round.
- ``true_positive``: ``train --feedback`` leaves ``event_ids`` (the incident's events) out of
  the baselines it builds.

*Context* (topic ``insiderwatch-context``, key = actor id)::

    {"actor_id": "emp-00042", "leaver_from": "2026-11-20", "watch": 2.0, "privileged": false,
     "service_account": false, "exclude_until": null, "note": "…"}

- A leaver, from ``leaver_from``, counts each unusual access :data:`LEAVER_WEIGHT` times in
  its entity risk; a watched actor ``watch`` times (1 to :data:`MAX_WATCH`; the larger of
  the two applies). Both alert on less accumulated evidence; the per-event threshold is the
  model's.
- ``privileged`` and ``service_account`` actors are compared with their own kind: their peer
  group (the ``actor_role`` the detector sees) is :data:`PRIVILEGED_GROUP` or
  :data:`SERVICE_GROUP`, and a model trained with the same context (``train --context``)
  has those groups' baselines.
- ``exclude_until``: the actor is scored, but its alerts are held back (and counted) until
  that event time.

A record with a null value (a Kafka tombstone) withdraws the verdict or clears the context
of its key. A record that cannot be read is refused with a reason (:class:`InvalidEvent`,
reason ``bad_feedback`` or ``bad_context``); the worker sends it to the DLQ.

Everything here is pure (no clock, no I/O), so offline ``score --feedback --context``
applies the same rules as the worker: the same alerts are sent and held back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from insiderwatch.models.events import AccessEvent, InvalidEvent, parse_timestamp

__all__ = [
    "VERDICTS",
    "SCOPES",
    "DEFAULT_SUPPRESS_DAYS",
    "LEAVER_WEIGHT",
    "MAX_WATCH",
    "PRIVILEGED_GROUP",
    "SERVICE_GROUP",
    "Verdict",
    "ContextEntry",
    "AnalystRules",
    "Routing",
    "alert_pattern",
    "parse_verdict",
    "parse_context",
    "parse_day_or_time",
]

VERDICTS = ("true_positive", "benign", "benign_expected")
SCOPES = ("alert", "actor_pattern", "actor")
DEFAULT_SUPPRESS_DAYS = 14.0
LEAVER_WEIGHT = 3.0
MAX_WATCH = 10.0
PRIVILEGED_GROUP = "privileged"
SERVICE_GROUP = "service_account"
PATTERN_REASONS = 3  # leading reasons of an alert that make its pattern
MATCHED_REASONS = 2  # leading reasons of a later alert, one of which must be in the pattern
MAX_TEXT = 256  # ids, names, accesses and reasons
MAX_NOTE = 500
MAX_EVENT_IDS = 64
_DAY_S = 86400.0


class _Refused(ValueError):
    """A record field that cannot be used (the message is the reason's detail)."""


def parse_day_or_time(value: str) -> float:
    """Epoch seconds of ``YYYY-MM-DD`` (midnight UTC) or an RFC 3339 time.

    >>> parse_day_or_time("2026-11-20") == parse_day_or_time("2026-11-20T00:00:00Z")
    True
    """
    text = value.strip()
    if len(text) == 10:
        text += "T00:00:00Z"
    return parse_timestamp(text)


def _text(doc: dict, name: str, required: bool = False, limit: int = MAX_TEXT) -> str | None:
    value = doc.get(name)
    if value is None or value == "":
        if required:
            raise _Refused(f"{name} is missing")
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _Refused(f"{name} must be a string of at most {limit} characters")
    return value


def _time(doc: dict, name: str) -> float | None:
    value = _text(doc, name)
    if value is None:
        return None
    try:
        return parse_day_or_time(value)
    except ValueError as exc:
        raise _Refused(f"{name}: {exc}") from None


def _choice(doc: dict, name: str, choices: tuple[str, ...], default: str | None) -> str:
    value = doc.get(name, default)
    if value not in choices:
        raise _Refused(f"{name} must be one of {', '.join(choices)} (got {value!r:.40})")
    return value


def _object(raw: bytes | None, key: bytes | None, key_name: str) -> dict:
    try:
        doc = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        raise _Refused(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _Refused("not a JSON object")
    if (
        key is not None
        and doc.get(key_name) is not None
        and key.decode(errors="replace") != (doc[key_name])
    ):
        raise _Refused(f"the record's key is not its {key_name}")
    return doc


@dataclass(frozen=True, slots=True)
class Verdict:
    """An analyst's verdict on one alert (see the module docstring for the record)."""

    alert_id: str
    verdict: str
    scope: str = "alert"
    actor_id: str | None = None
    kind: str = "event"
    since_ts: float = 0.0
    until_ts: float = 0.0
    access: str | None = None
    reasons: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    analyst: str | None = None
    note: str | None = None

    @property
    def suppresses(self) -> bool:
        return self.verdict != "true_positive"

    def matches(self, alert: dict, ts: float) -> bool:
        """Whether this actor-scope rule holds back ``alert`` (raised at event time ``ts``)."""
        if alert.get("kind", "event") != self.kind or not self.since_ts < ts < self.until_ts:
            return False
        if self.scope == "actor":
            return True
        access, reasons = alert_pattern(alert)
        if access != self.access:
            return False
        return not self.reasons or not set(reasons[:MATCHED_REASONS]).isdisjoint(self.reasons)


def _verdict_of(doc: dict) -> Verdict:
    alert_id = _text(doc, "alert_id", required=True)
    verdict = _choice(doc, "verdict", VERDICTS, None)
    scope = _choice(doc, "scope", SCOPES, "alert")
    actor_scope = scope != "alert"
    since = _time(doc, "alert_timestamp")
    if actor_scope and since is None:
        raise _Refused(f"scope {scope} needs alert_timestamp")
    until = _time(doc, "until")
    if since is not None and until is None:
        until = since + DEFAULT_SUPPRESS_DAYS * _DAY_S
    pattern = doc.get("pattern") or {}
    if not isinstance(pattern, dict):
        raise _Refused("pattern must be an object")
    reasons = pattern.get("reasons") or []
    ids = doc.get("event_ids") or []
    if not isinstance(reasons, list) or not isinstance(ids, list):
        raise _Refused("pattern.reasons and event_ids must be lists")
    if len(ids) > MAX_EVENT_IDS or len(reasons) > 8:
        raise _Refused(f"at most {MAX_EVENT_IDS} event_ids and 8 pattern reasons")
    if not all(isinstance(x, str) and len(x) <= MAX_TEXT for x in [*reasons, *ids]):
        raise _Refused("pattern reasons and event ids must be short strings")
    access = _text(pattern, "access")
    if scope == "actor_pattern" and access is None:
        raise _Refused("scope actor_pattern needs pattern.access")
    return Verdict(
        alert_id=alert_id,  # type: ignore[arg-type]
        verdict=verdict,
        scope=scope,
        actor_id=_text(doc, "actor_id", required=actor_scope),
        kind=_choice(doc, "kind", ("event", "entity_risk"), "event"),
        since_ts=since or 0.0,
        until_ts=until or 0.0,
        access=access,
        reasons=tuple(reasons),
        event_ids=tuple(ids),
        analyst=_text(doc, "analyst"),
        note=_text(doc, "note", limit=MAX_NOTE),
    )


def parse_verdict(raw: bytes | None, key: bytes | None = None) -> Verdict | InvalidEvent:
    """A feedback record's verdict, or why it is refused (reason ``bad_feedback``).

    >>> parse_verdict(b'{"alert_id": "iw-1", "verdict": "benign"}').scope
    'alert'
    >>> parse_verdict(b'{"alert_id": "iw-1", "verdict": "fine"}').detail
    "verdict must be one of true_positive, benign, benign_expected (got 'fine')"
    """
    try:
        return _verdict_of(_object(raw, key, "alert_id"))
    except _Refused as exc:
        return InvalidEvent("bad_feedback", str(exc)[:300])


@dataclass(frozen=True, slots=True)
class ContextEntry:
    """What analysts know about one actor (see the module docstring for the record)."""

    actor_id: str
    leaver_from_ts: float | None = None
    watch: float = 1.0
    privileged: bool = False
    service_account: bool = False
    exclude_until_ts: float | None = None
    note: str | None = None
    leaver_from: str | None = None  # as written, for the alert's sentence
    exclude_until: str | None = None

    def weight_at(self, ts: float) -> float:
        """The risk weight of an access at event time ``ts``."""
        leaving = self.leaver_from_ts is not None and ts >= self.leaver_from_ts
        return max(self.watch, LEAVER_WEIGHT if leaving else 1.0)

    @property
    def peer_group(self) -> str | None:
        if self.service_account:
            return SERVICE_GROUP
        return PRIVILEGED_GROUP if self.privileged else None

    def why(self, ts: float) -> list[str]:
        """The phrases an alert at ``ts`` carries about this context."""
        out = []
        if self.leaver_from_ts is not None and ts >= self.leaver_from_ts:
            out.append(
                f"on the leavers list since {self.leaver_from}: risk counted "
                f"{self.weight_at(ts):g}x"
            )
        elif self.watch > 1.0:
            out.append(f"on a watchlist: risk counted {self.watch:g}x")
        if self.peer_group is not None:
            out.append(f"compared with other {self.peer_group.replace('_', ' ')}s")
        return out


def _flag(doc: dict, name: str) -> bool:
    value = doc.get(name, False)
    if not isinstance(value, bool):
        raise _Refused(f"{name} must be true or false")
    return value


def _context_of(doc: dict) -> ContextEntry:
    watch = doc.get("watch", 1.0)
    if watch is None:
        watch = 1.0
    if (
        isinstance(watch, bool)
        or not isinstance(watch, int | float)
        or not 1.0 <= watch <= MAX_WATCH
    ):
        raise _Refused(f"watch must be a number from 1 to {MAX_WATCH:g}")
    return ContextEntry(
        actor_id=_text(doc, "actor_id", required=True),  # type: ignore[arg-type]
        leaver_from_ts=_time(doc, "leaver_from"),
        watch=float(watch),
        privileged=_flag(doc, "privileged"),
        service_account=_flag(doc, "service_account"),
        exclude_until_ts=_time(doc, "exclude_until"),
        note=_text(doc, "note", limit=MAX_NOTE),
        leaver_from=_text(doc, "leaver_from"),
        exclude_until=_text(doc, "exclude_until"),
    )


def parse_context(raw: bytes | None, key: bytes | None = None) -> ContextEntry | InvalidEvent:
    """A context record's entry, or why it is refused (reason ``bad_context``).

    >>> parse_context(b'{"actor_id": "a", "leaver_from": "2026-11-20"}').weight_at(2e9)
    3.0
    >>> parse_context(b'{"actor_id": "a", "watch": 50}').detail
    'watch must be a number from 1 to 10'
    """
    try:
        return _context_of(_object(raw, key, "actor_id"))
    except _Refused as exc:
        return InvalidEvent("bad_context", str(exc)[:300])


def alert_pattern(alert: dict) -> tuple[str | None, tuple[str, ...]]:
    """``(access, leading reasons)`` of a native alert: what an ``actor_pattern`` verdict
    remembers and later alerts are matched on.

    >>> alert_pattern({"event": {"action": "update", "resource_type": "seller_account"},
    ...                "reasons": [{"feature": "access_surprise"}, {"feature": "time_novelty"},
    ...                            {"feature": "denied_1h"}, {"feature": "new_ip_or_device"}]})
    ('update seller_account', ('access_surprise', 'time_novelty', 'denied_1h'))
    """
    event = alert.get("event") or {}
    action, rtype = event.get("action"), event.get("resource_type")
    access = f"{action} {rtype}" if action and rtype else None
    reasons = tuple(str(r.get("feature")) for r in (alert.get("reasons") or [])[:PATTERN_REASONS])
    return access, reasons


@dataclass(frozen=True, slots=True)
class Routing:
    """Where an alert goes: ``send`` it, or hold it back (``scope``: the rule that did)."""

    send: bool
    scope: str | None = None
    rule: str | None = None  # the alert id of the verdict, when a verdict held it back


_SEND = Routing(True)


@dataclass
class AnalystRules:
    """The verdicts and context entries in force, as every worker holds them whole.

    >>> rules = AnalystRules()
    >>> rules.apply_context(b"emp-1", b'{"actor_id": "emp-1", "exclude_until": "2030-01-01"}')
    >>> rules.route({"actor_id": "emp-1", "alert_id": "iw-9", "timestamp": "2026-01-01T00:00:00Z"})
    Routing(send=False, scope='excluded', rule=None)
    """

    verdicts: dict[str, Verdict] = field(default_factory=dict)
    by_actor: dict[str, dict[str, Verdict]] = field(default_factory=dict)
    contexts: dict[str, ContextEntry] = field(default_factory=dict)

    def apply_feedback(self, key: bytes | None, value: bytes | None) -> InvalidEvent | None:
        """One record of the feedback topic; the reason when it is refused."""
        if value is None:
            if key is None:
                return InvalidEvent("bad_feedback", "a tombstone without a key")
            self._withdraw(key.decode(errors="replace"))
            return None
        verdict = parse_verdict(value, key)
        if isinstance(verdict, InvalidEvent):
            return verdict
        self._withdraw(verdict.alert_id)
        self.verdicts[verdict.alert_id] = verdict
        if verdict.scope != "alert" and verdict.suppresses and verdict.actor_id:
            self.by_actor.setdefault(verdict.actor_id, {})[verdict.alert_id] = verdict
        return None

    def _withdraw(self, alert_id: str) -> None:
        old = self.verdicts.pop(alert_id, None)
        if old is not None and old.actor_id in self.by_actor:
            rules = self.by_actor[old.actor_id]
            rules.pop(alert_id, None)
            if not rules:
                del self.by_actor[old.actor_id]

    def apply_context(self, key: bytes | None, value: bytes | None) -> InvalidEvent | None:
        """One record of the context topic; the reason when it is refused."""
        if value is None:
            if key is None:
                return InvalidEvent("bad_context", "a tombstone without a key")
            self.contexts.pop(key.decode(errors="replace"), None)
            return None
        entry = parse_context(value, key)
        if isinstance(entry, InvalidEvent):
            return entry
        self.contexts[entry.actor_id] = entry
        return None

    def load(self, feedback: Iterable[bytes] = (), context: Iterable[bytes] = ()) -> list[str]:
        """Records from JSONL lines (offline); the refusals, one sentence each."""
        refused = []
        for number, line in enumerate(feedback, start=1):
            problem = self.apply_feedback(None, line)
            if problem is not None:
                refused.append(f"feedback line {number}: {problem.detail}")
        for number, line in enumerate(context, start=1):
            problem = self.apply_context(None, line)
            if problem is not None:
                refused.append(f"context line {number}: {problem.detail}")
        return refused

    def prepare(self, events: Sequence[AccessEvent]) -> None:
        """Give each event of an actor with context its risk weight and peer group (before
        the pulse is counted and the events are scored)."""
        contexts = self.contexts
        if not contexts:
            return
        for event in events:
            entry = contexts.get(event.actor_id)
            if entry is not None:
                event.risk_weight = entry.weight_at(event.ts)
                group = entry.peer_group
                if group is not None:
                    event.actor_role = group

    def route(self, alert: dict) -> Routing:
        """Send ``alert``, or hold it back: excluded actor, or a benign verdict's rule. An
        alert that is sent carries its actor's context (``context`` and the summary)."""
        actor = alert.get("actor_id", "")
        ts = parse_timestamp(alert["timestamp"])
        entry = self.contexts.get(actor)
        if entry is not None and entry.exclude_until_ts is not None and ts < entry.exclude_until_ts:
            return Routing(False, "excluded")
        same = self.verdicts.get(alert.get("alert_id", ""))
        if same is not None and same.suppresses and alert.get("status") != "new":
            return Routing(False, "alert", same.alert_id)
        for rule in self.by_actor.get(actor, {}).values():
            if rule.matches(alert, ts):
                return Routing(False, rule.scope, rule.alert_id)
        if entry is not None:
            _annotate(alert, entry, ts)
        return _SEND

    def excluded_event_ids(self) -> set[str]:
        """The events of true-positive incidents (``train --feedback`` leaves them out)."""
        return {
            event_id
            for verdict in self.verdicts.values()
            if verdict.verdict == "true_positive"
            for event_id in verdict.event_ids
        }

    def true_positives(self) -> int:
        return sum(v.verdict == "true_positive" for v in self.verdicts.values())


def _annotate(alert: dict, entry: ContextEntry, ts: float) -> None:
    why = entry.why(ts)
    context: dict[str, Any] = {
        "leaver_from": entry.leaver_from,
        "watch": entry.watch,
        "privileged": entry.privileged,
        "service_account": entry.service_account,
        "risk_weight": entry.weight_at(ts),
        "note": entry.note,
    }
    alert["context"] = context
    if why:
        alert["summary"] = f"{alert['summary']} ({'; '.join(why)})"[:1000]
