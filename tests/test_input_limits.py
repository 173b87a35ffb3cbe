"""One timestamp grammar (RFC 3339 date-time) and structure limits that no input can get past."""

from __future__ import annotations

import orjson
import pytest

from insiderwatch.models.events import (
    MAX_DEPTH,
    MAX_KEYS,
    MAX_MESSAGE_BYTES,
    AccessEvent,
    InvalidEvent,
    parse_event,
    parse_timestamp,
)
from tests.helpers import event_bytes, event_dict

UTC_0930 = 1767605400.0  # 2026-01-05T09:30:00Z

ACCEPTED = [
    ("2026-01-05T09:30:00Z", UTC_0930),
    ("2026-01-05t09:30:00Z", UTC_0930),
    ("2026-01-05T09:30:00z", UTC_0930),
    ("2026-01-05t09:30:00z", UTC_0930),
    ("2026-01-05 09:30:00Z", UTC_0930),
    ("2026-01-05T09:30:00+00:00", UTC_0930),
    ("2026-01-05T09:30:00-00:00", UTC_0930),
    ("2026-01-05T10:30:00+01:00", UTC_0930),
    ("2026-01-05T15:00:00+05:30", UTC_0930),
    ("2026-01-05T04:30:00-05:00", UTC_0930),
    ("2026-01-06T09:29:00+23:59", UTC_0930),
    ("2026-01-05T09:30:00.5Z", UTC_0930 + 0.5),
    ("2026-01-05T09:30:00.123Z", UTC_0930 + 0.123),
    ("2026-01-05T09:30:00.000000Z", UTC_0930),
    ("2026-01-05T09:30:00.123456789Z", UTC_0930 + 0.123456),
    ("2026-01-05T09:30:00.25+01:00", UTC_0930 - 3600 + 0.25),
    ("2024-02-29T00:00:00Z", 1709164800.0),
    ("2026-12-31T23:59:59Z", 1798761599.0),
    ("2016-12-31T23:59:60Z", 1483228800.0),  # a leap second: the next second's start
    ("2000-01-01T00:00:00Z", 946684800.0),
]

REFUSED = [
    "20260105T093000Z",  # ISO basic format
    "2026-01-05T093000Z",
    "2026-W02-1T09:30:00Z",  # ISO week date
    "2026-005T09:30:00Z",  # ISO ordinal date
    "2026-01-05T09:30:00+0530",  # offset without a colon
    "2026-01-05T09:30:00+05",
    "2026-01-05T09:30:00",  # no zone
    "2026-01-05",
    "2026-01-05T09:30Z",  # no seconds
    "2026-01-05T09:30:00.Z",  # a point without digits
    "2026-01-05T09:30:00,5Z",  # comma fraction
    "2026-01-05T9:30:00Z",
    "26-01-05T09:30:00Z",
    "2026-1-5T09:30:00Z",
    "2026-01-05T09:30:00 Z",
    " 2026-01-05T09:30:00Z",
    "2026-01-05T09:30:00Z ",
    "2026-01-05T09:30:00Zjunk",
    "2026-01-05X09:30:00Z",
    "2026-01-05__09:30:00Z",
    "2026-13-05T09:30:00Z",
    "2026-00-05T09:30:00Z",
    "2026-02-30T09:30:00Z",
    "2025-02-29T09:30:00Z",
    "2026-01-32T09:30:00Z",
    "2026-01-05T24:00:00Z",
    "2026-01-05T09:60:00Z",
    "2026-01-05T09:30:61Z",
    "2026-01-05T09:30:00+24:00",
    "2026-01-05T09:30:00+05:60",
    "２０２６-01-05T09:30:00Z",  # full-width digits are not ASCII DIGIT
    "٢٠٢٦-01-05T09:30:00Z",  # Arabic-Indic digits
    "2026-01-05T09:30:00UTC",
    "2026-01-05T09:30:00+01:00Z",
    "1999-12-31T23:59:59Z",  # outside 2000..2100
    "2100-01-01T00:00:00Z",
    "yesterday",
    "2026-01-05T09:30:00Z\n",
    "1767605400",
    "2026-01-05T09:30:00.123456789012345678901234567890",
]


@pytest.mark.parametrize(("text", "epoch_s"), ACCEPTED)
def test_rfc3339_date_times_are_accepted(text, epoch_s):
    assert parse_timestamp(text) == pytest.approx(epoch_s, abs=1e-6)
    event = parse_event(event_bytes(timestamp=text))
    assert isinstance(event, AccessEvent) and event.ts == parse_timestamp(text)


@pytest.mark.parametrize("text", REFUSED)
def test_everything_else_is_refused_as_bad_timestamp(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)
    result = parse_event(event_bytes(timestamp=text))
    assert isinstance(result, InvalidEvent)
    assert (result.reason, result.field) == ("bad_timestamp", "timestamp")


def test_the_table_covers_at_least_forty_forms():
    assert len(ACCEPTED) + len(REFUSED) >= 40


def _nested(depth: int, kind: str) -> bytes:
    """A JSON value nested exactly ``depth`` deep."""
    if kind == "array":
        return b"[" * depth + b"1" + b"]" * depth
    if kind == "object":
        return b'{"k":' * depth + b"1" + b"}" * depth
    return b'[{"k":' * (depth // 2) + (b"[1]" if depth % 2 else b"1") + b"}]" * (depth // 2)


DEPTHS = [*range(1, 70), 100, 1000, 1024, 1025, 5000, 10_000, 20_000, 32_768, 65_536, 100_000]


@pytest.mark.parametrize("kind", ["array", "object", "mixed"])
def test_no_nesting_depth_raises_or_is_called_a_bug(kind):
    """Depth 1 to 100,000, at the top and inside an unknown field of a valid event: a
    specific reason (too_deep, too_large, or the shape's own) or a valid event, never an
    exception."""
    prefix = event_bytes()[:-1] + b',"extra":'
    for depth in DEPTHS:
        for raw, total_depth in (
            (_nested(depth, kind), depth),
            (prefix + _nested(depth, kind) + b"}", depth + 1),
        ):
            result = parse_event(raw)
            if isinstance(result, AccessEvent):
                assert raw.startswith(prefix) and total_depth <= MAX_DEPTH
                continue
            assert result.reason in {"too_deep", "too_large", "not_object", "missing_field"}
            if len(raw) > MAX_MESSAGE_BYTES:
                assert result.reason == "too_large"
            elif total_depth > MAX_DEPTH:
                assert result.reason == "too_deep" and str(total_depth) in result.detail
            else:
                assert result.reason in {"not_object", "missing_field"}
                assert not raw.startswith(prefix)


def test_unbalanced_and_string_hidden_brackets_are_measured_outside_strings():
    hidden = event_dict(extra="[" * 10_000)
    assert isinstance(parse_event(orjson.dumps(hidden)), AccessEvent)
    assert parse_event(b"[" * 40_000).reason == "too_deep"
    assert parse_event(b'{"a":"\\"' + b"[" * 100 + b'"}').reason == "missing_field"


def test_too_many_keys_is_its_own_reason_on_both_decoders():
    many = {f"k{i}": 0 for i in range(MAX_KEYS + 1)}
    valid_but_wide = orjson.dumps({**event_dict(), **many})
    assert parse_event(valid_but_wide).reason == "too_many_keys"
    nested = orjson.dumps({**event_dict(), "extra": [{"a": 1, "b": 2}] * (MAX_KEYS // 2 + 1)})
    assert parse_event(nested).reason == "too_many_keys"
    within = orjson.dumps({**event_dict(), **{f"k{i}": 0 for i in range(MAX_KEYS - 40)}})
    assert isinstance(parse_event(within), AccessEvent)
    colons = orjson.dumps(event_dict(extra=":" * 5000))  # colons in a string are not keys
    assert isinstance(parse_event(colons), AccessEvent)


@pytest.mark.parametrize("size", [1_000, 10_000, 60_000, MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES + 1])
def test_objects_up_to_the_message_limit_get_a_reason_never_an_error(size):
    base = event_bytes()[:-1] + b',"pad":"'
    raw = base + b"x" * max(0, size - len(base) - 2) + b'"}'
    result = parse_event(raw)
    if len(raw) <= MAX_MESSAGE_BYTES:
        assert isinstance(result, AccessEvent)
    else:
        assert result.reason == "too_large"
    keys = b"{" + b",".join(b'"%d":0' % i for i in range(size // 8)) + b"}"
    result = parse_event(keys[:size] if len(keys) > size else keys)
    assert isinstance(result, InvalidEvent)
    assert result.reason in {"too_many_keys", "missing_field", "not_json", "too_large"}
