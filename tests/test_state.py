"""State update rules, with hand-computed expectations (no broker, milliseconds)."""

from __future__ import annotations

import math

from models.events import parse_event
from models.state import (
    W_EVENTS,
    W_NEW_RESOURCES,
    W_NO_TICKET,
    W_RECORDS,
    absorb_into_baseline,
    advance_windows,
    new_state,
    state_from_bytes,
    state_to_bytes,
    window_value,
)
from tests.helpers import event_bytes

T0 = "2026-01-05T09:00:00Z"


def ev(i, ts=T0, **kw):
    return parse_event(event_bytes(i, timestamp=ts, **kw))


def test_decayed_windows_match_hand_computation():
    first, second = (
        ev(1, record_count=3),
        ev(2, ts="2026-01-05T09:10:00Z", record_count=1, ticket_id=None),
    )
    state = new_state(first)
    advance_windows(state, first)
    advance_windows(state, second)
    # 10-minute window: the first event decayed by exactly one time constant.
    assert math.isclose(window_value(state, 0, W_EVENTS), math.exp(-1) + 1)
    assert math.isclose(window_value(state, 0, W_RECORDS), 3 * math.exp(-1) + 1)
    assert math.isclose(window_value(state, 1, W_EVENTS), math.exp(-600 / 3600) + 1)
    assert window_value(state, 1, W_NO_TICKET) == 1.0
    # the second event touched a new record after history existed
    assert window_value(state, 1, W_NEW_RESOURCES) == 1.0


def test_late_event_inside_bound_is_added_with_its_decay():
    state = new_state(ev(1))
    advance_windows(state, ev(1))
    late, _ = advance_windows(state, ev(2, ts="2026-01-05T08:50:00Z"))
    assert not late
    assert math.isclose(window_value(state, 0, W_EVENTS), 1 + math.exp(-1))


def test_event_beyond_lateness_bound_is_marked_late_and_not_windowed():
    state = new_state(ev(1))
    advance_windows(state, ev(1))
    late, _ = advance_windows(state, ev(2, ts="2026-01-05T06:00:00Z"))
    assert late
    assert window_value(state, 0, W_EVENTS) == 1.0


def test_repeated_resource_is_not_new():
    state = new_state(ev(1))
    advance_windows(state, ev(1, resource_id="cust-9"))
    _, is_new = advance_windows(state, ev(2, resource_id="cust-9"))
    assert not is_new


def test_day_rollover_updates_daily_ewma_from_clean_events_only():
    state = new_state(ev(1))
    for i in range(4):
        e = ev(i)
        advance_windows(state, e)
        absorb_into_baseline(state, e)
    advance_windows(state, ev(9))  # seen but flagged: not absorbed
    assert state.day_events == 5 and state.day_clean_events == 4
    advance_windows(state, ev(10, ts="2026-01-06T09:00:00Z"))
    assert state.active_days == 1 and state.ewma_day_events == 4.0
    assert state.day_events == 1


def test_baseline_counts_and_hour_histogram():
    state = new_state(ev(1))
    e = ev(1, action="export", source_ip="10.0.0.1", device_id="d1")
    advance_windows(state, e)
    absorb_into_baseline(state, e)
    assert state.pairs == {"export customer_profile": 1}
    assert state.hours[9] == 1 and state.weekdays[0] == 1  # 2026-01-05 is a Monday
    assert len(state.ips) == 1 and len(state.devices) == 1


def test_state_round_trip_is_lossless_and_bounded():
    state = new_state(ev(1))
    for i in range(300):
        e = ev(
            i,
            ts=f"2026-01-05T{9 + i // 60:02d}:{i % 60:02d}:07Z",
            action=f"a{i % 20}",
            resource_type=f"r{i % 30}",
            source_ip=f"10.0.0.{i}",
            device_id=f"d{i}",
        )
        advance_windows(state, e)
        absorb_into_baseline(state, e)
    data = state_to_bytes(state)
    assert state_from_bytes(data) == state
    assert len(data) <= 2048, len(data)
