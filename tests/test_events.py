"""Event contract v1: valid events parse, every kind of bad input gets a specific reason."""

from __future__ import annotations

import orjson
import pytest

from insiderwatch.models.events import MAX_MESSAGE_BYTES, AccessEvent, InvalidEvent, parse_event
from tests.helpers import event_bytes, event_dict


def test_valid_event_parses_with_defaults():
    raw = orjson.dumps(
        {
            k: v
            for k, v in event_dict().items()
            if k in ("event_id", "timestamp", "actor_id", "action", "resource_type")
        }
    )
    event = parse_event(raw)
    assert isinstance(event, AccessEvent)
    assert event.record_count == 1 and event.outcome == "success" and event.actor_role == "unknown"
    assert event.ts == 1767603600.0


def test_offset_timestamp_is_converted_to_utc():
    event = parse_event(event_bytes(timestamp="2026-01-05T10:00:00+01:00"))
    assert event.ts == 1767603600.0


def test_unknown_fields_are_kept_out_and_unknown_verbs_are_valid():
    event = parse_event(event_bytes(action="teleport", resource_type="hologram", extra={"x": 1}))
    assert isinstance(event, AccessEvent) and event.action == "teleport"


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        (b"not json at all", "not_json", None),
        (b"\xff\xfe\x00garbage", "not_utf8", None),
        (b"[1, 2, 3]", "not_object", None),
        (b"42", "not_object", None),
        (event_bytes(actor_id=...), "missing_field", "actor_id"),
        (event_bytes(timestamp=...), "missing_field", "timestamp"),
        (event_bytes(event_id=...), "missing_field", "event_id"),
        (event_bytes(action=...), "missing_field", "action"),
        (event_bytes(resource_type=...), "missing_field", "resource_type"),
        (event_bytes(resource_type=None), "missing_field", "resource_type"),
        (event_bytes(resource_type=""), "bad_value", "resource_type"),
        (event_bytes(action=7), "wrong_type", "action"),
        (event_bytes(record_count="12"), "wrong_type", "record_count"),
        (event_bytes(record_count=-1), "bad_value", "record_count"),
        (event_bytes(record_count=10**15), "bad_value", "record_count"),
        (event_bytes(record_count=True), "wrong_type", "record_count"),
        (event_bytes(fields="email"), "wrong_type", "fields"),
        (event_bytes(ticket_id=5), "wrong_type", "ticket_id"),
        (event_bytes(timestamp="yesterday"), "bad_timestamp", "timestamp"),
        (event_bytes(timestamp="2026-01-05T09:00:00"), "bad_timestamp", "timestamp"),
        (event_bytes(timestamp="0001-01-01T00:00:00Z"), "bad_timestamp", "timestamp"),
        (event_bytes(timestamp="9999-12-31T23:59:59Z"), "bad_timestamp", "timestamp"),
        (b'{"event_id": "e", "record_count": NaN}', "not_json", None),
        (b'{"event_id": "e", "record_count": Infinity}', "not_json", None),
        (b"[" * 5000 + b"]" * 5000, "too_deep", None),
        (event_bytes(actor_id="x" * 1000), "bad_value", "actor_id"),
    ],
)
def test_bad_input_gets_a_specific_reason(raw, reason, field):
    result = parse_event(raw)
    assert isinstance(result, InvalidEvent)
    assert (result.reason, result.field) == (reason, field)
    assert result.detail


def test_oversized_message_is_refused_before_parsing():
    raw = event_bytes(resource_id="x" * (MAX_MESSAGE_BYTES + 1))
    result = parse_event(raw)
    assert isinstance(result, InvalidEvent) and result.reason == "too_large"


def test_integral_float_record_count_is_accepted():
    assert parse_event(event_bytes(record_count=3.0)).record_count == 3


EDGE_CASES = [
    {},
    {"record_count": None},
    {"record_count": 5.0},
    {"record_count": True},
    {"record_count": -1},
    {"fields": []},
    {"fields": None},
    {"fields": ["email", "phone"]},
    {"fields": "email"},
    {"fields": {}},
    {"fields": [1]},
    {"ticket_id": ""},
    {"ticket_id": 7},
    {"actor_role": ""},
    {"outcome": None},
    {"actor_team": "x" * 257},
    {"event_id": ""},
    {"timestamp": "2026-01-05T09:00:00"},
    {"timestamp": "1999-01-05T09:00:00Z"},
    {"device_id": "d", "source_ip": "10.0.0.1"},
]


@pytest.mark.parametrize("overrides", EDGE_CASES)
def test_the_quick_path_builds_the_same_event_as_full_validation_or_defers(overrides):
    from insiderwatch.models.events import _quick_event, _validated_event

    doc = event_dict(1, **overrides)
    quick, full = _quick_event(orjson.dumps(doc)), _validated_event(doc)
    if quick is None:
        assert parse_event(orjson.dumps(doc)) == full
    else:
        assert quick == full
        assert (quick.field_hashes, quick.ip_hash, quick.device_hash, quick.pair) == (
            full.field_hashes,
            full.ip_hash,
            full.device_hash,
            full.pair,
        )


def test_simulated_events_take_the_quick_path():
    from insiderwatch.models.events import _quick_event, _validated_event
    from insiderwatch.simulation.simulate import SimulationConfig, simulate

    docs = list(simulate(SimulationConfig(actors=20, days=2, seed=1)))[:2000]
    for doc in docs:
        raw = orjson.dumps(doc)
        quick = _quick_event(raw)
        assert quick is not None and quick == _validated_event(orjson.loads(raw))


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("é" * 256, True),
        ("é" * 257, False),
        ("\U0001f600" * 256, True),
        ("\U0001f600" * 257, False),
    ],
)
def test_length_limits_count_characters_not_bytes_on_both_paths(value, accepted):
    from insiderwatch.models.events import _quick_event

    raw = event_bytes(actor_id=value)
    assert (_quick_event(raw) is not None) is accepted
    assert isinstance(parse_event(raw), AccessEvent) is accepted


def test_a_field_outside_the_contract_is_skipped_unread():
    raw = event_bytes()[:-1] + b', "note": 1e999, "huge": 123456789012345678901234567890}'
    assert isinstance(parse_event(raw), AccessEvent)


def test_duplicate_keys_take_the_last_value_on_both_paths():
    raw = event_bytes()[:-1] + b', "actor_id": "second", "record_count": 2.0}'
    event = parse_event(raw)  # the integral float takes the full validation
    assert (event.actor_id, event.record_count) == ("second", 2)
    quick = parse_event(event_bytes()[:-1] + b', "actor_id": "second"}')
    assert quick.actor_id == "second"


def test_future_tolerance_is_the_lateness_bound():
    """An event up to the tolerance ahead still lets the actor's later real events into the
    windows (they are at most the lateness bound behind it); the two must move together.
    (models.events cannot import insiderwatch.models.state, which imports it.)"""
    from insiderwatch.models.events import MAX_AHEAD_OF_RECORD_S
    from insiderwatch.models.state import LATENESS_S

    assert MAX_AHEAD_OF_RECORD_S == LATENESS_S
