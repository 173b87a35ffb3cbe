"""Event contract v1: decode and validate one access event from raw bytes.

Every input either becomes an :class:`AccessEvent` or an :class:`InvalidEvent` carrying a
machine-readable reason; nothing raises. Caps are enforced before any further parsing.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import msgspec
import numpy as np
import orjson

__all__ = [
    "AccessEvent",
    "InvalidEvent",
    "MAX_AHEAD_OF_RECORD_S",
    "MAX_MESSAGE_BYTES",
    "ahead_of_record",
    "pair_key",
    "MAX_DEPTH",
    "MAX_KEYS",
    "nesting_depth",
    "parse_event",
    "parse_timestamp",
    "stable_hash",
    "NO_SUBJECT",
    "WRITE_ACTIONS",
]

MAX_MESSAGE_BYTES = 64 * 1024
MAX_ID_CHARS = 256
MAX_FIELDS = 64
MAX_FIELD_CHARS = 64
MAX_RECORD_COUNT = 1_000_000_000
# Actions that change a record (lower case): the targeting features count them per subject.
# Other verbs, known or new, are reads.
WRITE_ACTIONS = frozenset(
    {
        "update", "delete", "create", "insert", "modify", "edit", "write", "remove",
        "restore", "reinstate", "approve", "reject", "ban", "unban", "suspend", "refund",
        "grant", "revoke",
    }
)  # fmt: skip
NO_SUBJECT = -1  # subject hash of an event with neither subject_id nor resource_id
# Structure limits, checked before any decoder sees the bytes: a decoder that recurses would
# otherwise fail on deep nesting (msgspec raises RecursionError at a depth that depends on
# the caller's stack; orjson refuses beyond 1,024), and the reason must be the input's, not a
# bug's. An event is a flat object with one list: these leave room for nested extra fields.
MAX_DEPTH = 32
MAX_KEYS = 1024  # object keys at all levels
# Plausible event-time range; a year-1 or year-9999 timestamp is a producer bug, not an access.
MIN_EPOCH_S = 946_684_800.0  # 2000-01-01T00:00:00Z
MAX_EPOCH_S = 4_102_444_800.0  # 2100-01-01T00:00:00Z
# An access is logged after it happens, so its event time cannot be much later than the Kafka
# record that carries it. One event from the future (a producer clock hours ahead) would move
# its actor's window clock, and every later event of that actor would be "late" and leave the
# windows frozen until real time caught up: a blind spot. Tolerance: the lateness bound
# (models.state.LATENESS_S, which imports this module; a test keeps the two equal).
MAX_AHEAD_OF_RECORD_S = 3600.0

_REQUIRED_STRINGS = ("event_id", "timestamp", "actor_id", "action", "resource_type")
_OPTIONAL_STRINGS = (
    "actor_role",
    "actor_team",
    "resource_id",
    "subject_id",
    "source_ip",
    "device_id",
    "outcome",
)


def stable_hash(text: str) -> int:
    """32-bit hash that is the same in every process (Python's ``hash`` is salted).

    >>> stable_hash("customer-42")
    1241360405
    """
    return zlib.crc32(text.encode("utf-8"))


def pair_key(action: str, resource_type: str) -> str:
    """Key of one (action, resource type) pair in the joint histograms.

    >>> pair_key("export", "customer_contact")
    'export customer_contact'
    """
    return f"{action} {resource_type}"


# Contract v1 types with their limits, checked by the C decoder (msgspec) as it reads.
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
_OptionalText = Annotated[str, msgspec.Meta(max_length=MAX_ID_CHARS)] | None
_FieldName = Annotated[str, msgspec.Meta(max_length=MAX_FIELD_CHARS)]
_RecordCount = Annotated[int, msgspec.Meta(ge=0, le=MAX_RECORD_COUNT)] | None
_Fields = Annotated[tuple[_FieldName, ...], msgspec.Meta(max_length=MAX_FIELDS)] | None


def _derived(name: str, default: object) -> object:
    """A field computed in ``__post_init__``, never read from JSON: its JSON name is one no
    producer sends, and a value sent under it is overwritten."""
    return msgspec.field(default=default, name=f"~insiderwatch~{name}")


class AccessEvent(msgspec.Struct, gc=False):
    """One validated access event (contract v1). ``ts`` is event time in epoch seconds.

    The JSON decoder builds it directly (one C pass that checks every type and limit of the
    contract, then ``__post_init__``): 1.2 us an event less than decoding into another
    object and copying, on the hot path of every event. Build one in Python with keywords;
    ``timestamp`` must be RFC 3339 (``ts`` is always parsed from it).

    ``pair``, ``pair_hash``, ``field_hashes``, ``ip_hash``, ``device_hash``,
    ``subject_hash`` (of ``subject_id``, else ``resource_id``; :data:`NO_SUBJECT` without
    either) and ``is_write`` (``action`` in :data:`WRITE_ACTIONS`) are derived
    once here, because the state, the features and the baseline all look them up for every
    event (the state keys pairs by ``pair_hash``, so its size does not grow with the length
    of action and resource type names). ``role_pulse``, ``risk_weight`` and ``actor_role``
    are the exceptions to "read-only": before detection the caller sets the pulse from the
    role's traffic (:mod:`insiderwatch.models.pulse`; 0 until then), and the actor's context
    (:mod:`insiderwatch.models.analyst`) may weight its risk (1 until then) and name its peer
    group in place of the role. Treat an event as read-only otherwise. Not tracked by the
    garbage collector: it holds strings and numbers only.

    >>> e = AccessEvent(event_id="e1", timestamp="2026-01-05T09:30:00Z", actor_id="a",
    ...                 action="view", resource_type="review", ticket_id="")
    >>> e.ts, e.actor_role, e.ticket_id, e.pair
    (1767605400.0, 'unknown', None, 'view review')
    """

    event_id: _Id
    timestamp: _Id
    actor_id: _Id
    action: _Id
    resource_type: _Id
    actor_role: _OptionalText = "unknown"
    actor_team: _OptionalText = None
    resource_id: _OptionalText = None
    subject_id: _OptionalText = None
    record_count: _RecordCount = 1
    fields: _Fields = ()
    ticket_id: _OptionalText = None
    source_ip: _OptionalText = None
    device_id: _OptionalText = None
    outcome: _OptionalText = "success"
    ts: float = _derived("ts", 0.0)  # type: ignore[assignment]
    pair: str = _derived("pair", "")  # type: ignore[assignment]
    pair_hash: int = _derived("pair_hash", 0)  # type: ignore[assignment]
    field_hashes: tuple[int, ...] = _derived("field_hashes", ())  # type: ignore[assignment]
    ip_hash: int | None = _derived("ip_hash", None)  # type: ignore[assignment]
    device_hash: int | None = _derived("device_hash", None)  # type: ignore[assignment]
    subject_hash: int = _derived("subject_hash", NO_SUBJECT)  # type: ignore[assignment]
    is_write: bool = _derived("is_write", False)  # type: ignore[assignment]
    role_pulse: float = _derived("role_pulse", 0.0)  # type: ignore[assignment]
    risk_weight: float = _derived("risk_weight", 1.0)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        # The contract's defaults for absent, null or empty values.
        self.ts = parse_timestamp(self.timestamp)
        if not self.actor_role:
            self.actor_role = "unknown"
        if self.record_count is None:
            self.record_count = 1
        if self.fields is None:
            self.fields = ()
        if not self.ticket_id:
            self.ticket_id = None
        if not self.outcome:
            self.outcome = "success"
        # stable_hash written out (crc32 of the UTF-8 bytes): a call per hash was a tenth of
        # building an event, on the hot path of every parse.
        self.pair = pair = f"{self.action} {self.resource_type}"
        self.pair_hash = zlib.crc32(pair.encode())
        fields = self.fields
        self.field_hashes = tuple([zlib.crc32(name.encode()) for name in fields]) if fields else ()
        ip, device = self.source_ip, self.device_id
        self.ip_hash = None if ip is None else zlib.crc32(ip.encode())
        self.device_hash = None if device is None else zlib.crc32(device.encode())
        subject = self.subject_id or self.resource_id
        self.subject_hash = NO_SUBJECT if not subject else zlib.crc32(subject.encode())
        self.is_write = self.action.lower() in WRITE_ACTIONS
        self.role_pulse = 0.0
        self.risk_weight = 1.0


@dataclass(slots=True, frozen=True)
class InvalidEvent:
    """Why an input could not be scored. ``reason`` is a stable machine-readable code."""

    reason: str
    detail: str
    field: str | None = None


# RFC 3339 ``date-time`` (section 5.6), and nothing else: ASCII digits only, ``T``/``Z`` in
# either case (ABNF strings are case-insensitive), a space for the ``T`` (the RFC's note on
# readability), any number of fraction digits, ``Z`` or a ``+HH:MM``/``-HH:MM`` offset.
# ISO 8601 forms beyond it (basic format, week dates, ``+0530``, no zone) are refused.
_RFC3339_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
# The same grammar for what ``datetime.fromisoformat`` reads as it is (no lower-case zone, no
# leap second, offsets in range): one match and one C parse for nearly every event.
_COMMON_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])",
    re.ASCII,
)
_RFC3339_FORM = "YYYY-MM-DDTHH:MM:SS[.fraction] and Z or +HH:MM"


def parse_timestamp(value: str) -> float:
    """Parse an RFC 3339 ``date-time`` into epoch seconds: the one timestamp grammar of
    the contract, for every path that reads events.

    Raises ``ValueError`` when the text is not exactly RFC 3339 (grammar and ranges: month,
    day of month, hour, minute, second up to 60 for a leap second, offset), or lies outside
    2000..2100. A leap second counts as the next second's start.

    >>> parse_timestamp("2026-01-05T09:30:00Z")
    1767605400.0
    >>> parse_timestamp("2026-01-05t10:30:00+01:00")
    1767605400.0
    >>> parse_timestamp("20260105T093000Z")
    Traceback (most recent call last):
    ...
    ValueError: not an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.fraction] and Z or +HH:MM)
    """
    text, leap_s = value, 0.0
    if _COMMON_DATE_TIME.fullmatch(value) is None:
        text, leap_s = _as_common_date_time(value)
    epoch_s = datetime.fromisoformat(text).timestamp() + leap_s
    if not MIN_EPOCH_S <= epoch_s < MAX_EPOCH_S:
        raise ValueError("timestamp outside 2000..2100")
    return epoch_s


def _as_common_date_time(value: str) -> tuple[str, float]:
    """An RFC 3339 date-time that ``fromisoformat`` does not read as it is, rewritten so that
    it does (an upper-case zone; second 59 and 1 s to add for a leap second); ``ValueError``
    when ``value`` is not RFC 3339 or its offset is out of range."""
    match = _RFC3339_DATE_TIME.fullmatch(value)
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time ({_RFC3339_FORM})")
    text, leap_s = value, 0.0
    if match.group(1) == "60":
        text, leap_s = f"{text[:17]}59{text[19:]}", 1.0
    zone = match.group(3)
    if zone == "z":
        text = text[:-1] + "Z"
    elif len(zone) == 6 and (zone[1:3] > "23" or zone[4:6] > "59"):
        raise ValueError(f"offset {zone} out of range (hours 00-23, minutes 00-59)")
    return text, leap_s


def ahead_of_record(event: AccessEvent, record_timestamp_ms: int | None) -> InvalidEvent | None:
    """Why ``event`` cannot be scored if its time is more than :data:`MAX_AHEAD_OF_RECORD_S`
    after the timestamp of the Kafka record carrying it, else None (also when the record has
    no timestamp). Pure: the record's timestamp is data, not the clock.

    >>> e = parse_event(b'{"event_id":"e1","timestamp":"2026-01-06T09:30:00Z",'
    ...                 b'"actor_id":"a1","action":"view","resource_type":"review"}')
    >>> ahead_of_record(e, 1767605400000).reason  # the record is from 2026-01-05T09:30:00Z
    'bad_timestamp'
    >>> ahead_of_record(e, 1767691800000) is None, ahead_of_record(e, None) is None
    (True, True)
    """
    if not record_timestamp_ms or record_timestamp_ms <= 0:
        return None
    ahead_s = event.ts - record_timestamp_ms / 1000.0
    if ahead_s <= MAX_AHEAD_OF_RECORD_S:
        return None
    return _bad(
        "bad_timestamp",
        f"{event.timestamp[:64]!r} is {ahead_s:,.0f} s after the Kafka record that carries it "
        f"(limit {MAX_AHEAD_OF_RECORD_S:,.0f} s): the producer's clock is ahead",
        "timestamp",
    )


def _bad(reason: str, detail: str, field: str | None = None) -> InvalidEvent:
    return InvalidEvent(reason=reason, detail=detail, field=field)


def parse_event(raw: bytes) -> AccessEvent | InvalidEvent:
    """Decode raw message bytes into an event, or say precisely why not.

    >>> parse_event(b'{"event_id":"e1","timestamp":"2026-01-05T09:30:00Z",'
    ...             b'"actor_id":"a1","action":"view","resource_type":"review"}').actor_id
    'a1'
    >>> parse_event(b'[1, 2]').reason
    'not_object'
    >>> parse_event(b'{"event_id":"e1"}').reason
    'missing_field'
    >>> parse_event(b'{"x":' + b'[' * 100_000 + b']' * 100_000 + b'}').reason
    'too_large'
    >>> parse_event(b'{"x":' + b'[' * 1_000 + b']' * 1_000 + b'}').reason
    'too_deep'
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        return _bad("too_large", f"message is {len(raw)} bytes, limit {MAX_MESSAGE_BYTES}")
    # The structural bytes, kept by one C pass: openers bound the depth and colons the keys
    # from above (those inside strings count too), so only a message over a limit pays for
    # the exact measure. Decoders recurse, so this comes before any of them.
    structure = raw.translate(None, _NOT_STRUCTURE)
    keys_at_most = structure.count(b":")
    if len(structure) - keys_at_most > MAX_DEPTH:
        depth = nesting_depth(raw)
        if depth > MAX_DEPTH:
            return _bad("too_deep", f"JSON nested {depth} deep, limit {MAX_DEPTH}")
    try:
        event = _quick_event(raw)
    except RecursionError:  # unreachable below MAX_DEPTH; kept so no input can raise
        return _bad("too_deep", f"JSON nested too deep to decode (limit {MAX_DEPTH})")
    if event is not None and keys_at_most <= MAX_KEYS:
        return event
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return _bad("not_utf8", "message is not valid UTF-8")
        return _bad("not_json", str(exc)[:200])
    if not isinstance(doc, dict):
        return _bad("not_object", f"expected a JSON object, got {type(doc).__name__}")
    keys = _count_keys(doc)
    if keys > MAX_KEYS:
        return _bad("too_many_keys", f"JSON has {keys} object keys, limit {MAX_KEYS}")
    return event if event is not None else _validated_event(doc)


_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b"[{:")))
# Depth per byte for the bracket scan: +1 opens, -1 closes, 0 for everything else.
_DEPTH_STEP = np.zeros(256, dtype=np.int8)
_DEPTH_STEP[[ord("["), ord("{")]] = 1
_DEPTH_STEP[[ord("]"), ord("}")]] = -1
# A JSON string: quotes around anything but a quote or backslash, or an escape.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def nesting_depth(raw: bytes) -> int:
    """The deepest bracket nesting of ``raw`` outside JSON strings (for any bytes, valid JSON
    or not; an unterminated string counts as brackets), without decoding it.

    Written here rather than asking a decoder, because the decoders this package uses
    recurse: the question must be answered before they see the bytes.

    >>> nesting_depth(b'{"a": [1, {"b": "[[[["}]}')
    3
    >>> nesting_depth(b'[' * 50_000)
    50000
    """
    outside = _JSON_STRING.sub(b'""', raw)
    steps = _DEPTH_STEP[np.frombuffer(outside, dtype=np.uint8)].astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def _count_keys(doc: object) -> int:
    """Object keys at every level of a decoded JSON document (depth already bounded)."""
    count, pending = 0, [doc]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            count += len(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return count


# The contract's common case: msgspec (a maintained C decoder) decodes and checks a
# well-formed event into an AccessEvent in one pass, instead of ``orjson.loads`` plus
# field-by-field checks in Python. It accepts a subset of what :func:`_validated_event`
# accepts (no integral floats for ``record_count``, no error reasons); anything it refuses
# takes the full validation, which says why.
_decode_access_event = msgspec.json.Decoder(AccessEvent).decode


def _quick_event(raw: bytes) -> AccessEvent | None:
    """The event when ``raw`` is a plainly valid event, else None (then
    :func:`_validated_event` decides and says why). Builds the same event as the full
    validation (``tests/test_events.py`` checks both). Fields outside the contract are skipped
    unread, so a number beyond float range in such a field does not refuse the event. Call it
    only on bytes within :data:`MAX_DEPTH` (the decoder recurses into skipped fields)."""
    try:
        return _decode_access_event(raw)
    except (msgspec.DecodeError, ValueError, OverflowError):
        return None


def _validated_event(doc: dict) -> AccessEvent | InvalidEvent:
    """Field-by-field validation with a precise reason for the first problem found."""
    for name in _REQUIRED_STRINGS:
        value = doc.get(name)
        if value is None:
            return _bad("missing_field", f"required field {name!r} is missing", name)
        if not isinstance(value, str):
            return _bad("wrong_type", f"{name!r} must be a string", name)
        if not value or len(value) > MAX_ID_CHARS:
            return _bad("bad_value", f"{name!r} must have 1..{MAX_ID_CHARS} characters", name)
    for name in _OPTIONAL_STRINGS:
        value = doc.get(name)
        if value is not None and not isinstance(value, str):
            return _bad("wrong_type", f"{name!r} must be a string", name)
        if value is not None and len(value) > MAX_ID_CHARS:
            return _bad("bad_value", f"{name!r} is longer than {MAX_ID_CHARS}", name)

    ticket = doc.get("ticket_id")
    if ticket is not None and not isinstance(ticket, str):
        return _bad("wrong_type", "'ticket_id' must be a string or null", "ticket_id")
    if ticket is not None and len(ticket) > MAX_ID_CHARS:
        return _bad("bad_value", f"'ticket_id' is longer than {MAX_ID_CHARS}", "ticket_id")

    record_count = doc.get("record_count", 1)
    if record_count is None:
        record_count = 1
    if isinstance(record_count, bool) or not isinstance(record_count, int):
        if isinstance(record_count, float) and math.isfinite(record_count):
            if record_count.is_integer():
                record_count = int(record_count)
            else:
                return _bad("wrong_type", "'record_count' must be an integer", "record_count")
        else:
            return _bad("wrong_type", "'record_count' must be an integer", "record_count")
    if not 0 <= record_count <= MAX_RECORD_COUNT:
        return _bad("bad_value", f"'record_count' must be in 0..{MAX_RECORD_COUNT}", "record_count")

    fields = doc.get("fields")
    if fields is None:
        fields_tuple: tuple[str, ...] = ()
    elif not isinstance(fields, list):
        return _bad("wrong_type", "'fields' must be a list of strings", "fields")
    elif len(fields) > MAX_FIELDS:
        return _bad("bad_value", f"'fields' has more than {MAX_FIELDS} entries", "fields")
    else:
        for item in fields:
            if not isinstance(item, str) or len(item) > MAX_FIELD_CHARS:
                return _bad(
                    "wrong_type",
                    f"'fields' entries must be strings of at most {MAX_FIELD_CHARS} characters",
                    "fields",
                )
        fields_tuple = tuple(fields)

    timestamp = doc["timestamp"]
    try:
        parse_timestamp(timestamp)
    except (ValueError, OverflowError) as exc:
        return _bad("bad_timestamp", f"{timestamp[:64]!r}: {exc}", "timestamp")

    return AccessEvent(
        event_id=doc["event_id"],
        timestamp=timestamp,
        actor_id=doc["actor_id"],
        action=doc["action"],
        resource_type=doc["resource_type"],
        actor_role=doc.get("actor_role") or "unknown",
        actor_team=doc.get("actor_team"),
        resource_id=doc.get("resource_id"),
        subject_id=doc.get("subject_id"),
        record_count=record_count,
        fields=fields_tuple,
        ticket_id=ticket or None,
        source_ip=doc.get("source_ip"),
        device_id=doc.get("device_id"),
        outcome=doc.get("outcome") or "success",
    )
