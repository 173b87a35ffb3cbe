"""State update rules, with hand-computed expectations (no broker, milliseconds)."""

from __future__ import annotations

import math

from models.detector import observe
from models.events import parse_event
from models.features import FEATURE_NAMES
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
from tests.helpers import event_bytes, support_veteran

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
    assert len(state.pairs_24h) == 8  # capped like the other lists
    assert len(data) <= 2048, len(data)


def test_a_state_stored_before_the_per_pair_day_counts_still_loads():
    import orjson

    state = new_state(ev(1))
    advance_windows(state, ev(1))
    absorb_into_baseline(state, ev(1))
    stored_by_format_3 = orjson.dumps([3, *orjson.loads(state_to_bytes(state))[1:-2]])
    loaded = state_from_bytes(stored_by_format_3)
    assert loaded.pairs_24h == {} and loaded.pairs == state.pairs and loaded.win == state.win
    assert loaded.rebaselined_ts == 0.0


def test_a_change_of_role_shrinks_the_actors_habits_towards_the_new_role():
    states, peers = support_veteran()
    before = states["alice"]
    assert before.hist_n == 300 and before.active_days >= 9
    known_device = list(before.devices)
    moved = ev(
        1000,
        ts="2026-01-19T10:00:00Z",
        actor_role="seller_support",
        action="view",
        resource_type="seller_account",
        device_id="laptop-1",
    )
    state, _, _, row = observe(moved, states, peers)
    # The new role's most ordinary access: as surprising as for a newcomer to the role
    # (-ln of about 0.9 * 20 / 40), not "never done by this actor in 300 accesses".
    surprise = row[FEATURE_NAMES.index("access_surprise")]
    assert surprise < math.log(4.0), surprise
    assert state.hist_n == 20 and state.role == "seller_support"
    assert state.active_days == 2  # one day's weight, plus the old role's last day just closed
    assert state.devices == known_device  # who the person is does not change with the job


def test_the_same_role_or_a_missing_one_keeps_the_habits():
    states, peers = support_veteran()
    for i, role in enumerate(["customer_support", "unknown", "customer_support"]):
        e = ev(2000 + i, ts="2026-01-19T10:00:00Z", actor_role=role)
        state, _, _, _ = observe(e, states, peers)
        absorb_into_baseline(state, e)
    assert states["alice"].hist_n == 303 and states["alice"].role == "customer_support"


def test_a_role_field_that_flips_back_and_forth_wipes_the_habits_once_a_week():
    states, peers = support_veteran()
    hist = []
    for i in range(20):  # two roles alternating, every hour for 20 hours
        role = "seller_support" if i % 2 == 0 else "customer_support"
        e = ev(3000 + i, ts=f"2026-01-19T{i:02d}:30:00Z", actor_role=role)
        state, _, _, _ = observe(e, states, peers)
        absorb_into_baseline(state, e)
        hist.append(state.hist_n)
    assert hist[0] == 21  # shrunk to 20 by the first change, plus this event
    assert hist[-1] == 40  # and never again within the week: every event since was learnt
