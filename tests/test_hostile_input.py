"""Property-based: no input makes the decoder raise; bad input always gets a known reason."""

from __future__ import annotations

import json

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from insiderwatch.models.events import AccessEvent, InvalidEvent, parse_event
from tests.helpers import event_dict

REASONS = {
    "too_large",
    "not_utf8",
    "not_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "bad_value",
    "bad_timestamp",
    "too_deep",
    "too_many_keys",
}
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)


def _check(raw: bytes) -> None:
    result = parse_event(raw)
    assert isinstance(result, AccessEvent | InvalidEvent)
    if isinstance(result, InvalidEvent):
        assert result.reason in REASONS and result.detail


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise(raw):
    _check(raw)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_random_json_never_raises(value):
    _check(json.dumps(value).encode())  # stdlib: big integers too


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(event_dict())), json_values)
def test_any_field_with_any_value_never_raises(field, value):
    doc = event_dict()
    doc[field] = value
    _check(json.dumps(doc).encode())


def test_ten_megabyte_string_is_refused_as_too_large():
    result = parse_event(orjson.dumps(event_dict(resource_id="x" * 10_000_000)))
    assert isinstance(result, InvalidEvent) and result.reason == "too_large"
