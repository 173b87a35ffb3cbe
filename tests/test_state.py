"""State update rules, with hand-computed expectations (no broker, milliseconds)."""

from __future__ import annotations

import math
from dataclasses import fields

import msgspec
import orjson
import pytest

from insiderwatch.models.detector import observe
from insiderwatch.models.duplicates import RECENT_EVENT_IDS
from insiderwatch.models.events import MAX_ID_CHARS, parse_event, stable_hash
from insiderwatch.models.features import FEATURE_NAMES
from insiderwatch.models.incidents import MAX_EVENT_IDS, IncidentSettings, step_incident
from insiderwatch.models.risk import RISK_DAYS_KEPT
from insiderwatch.models.state import (
    HISTOGRAM_HALVING_AT,
    MAX_DEVICES,
    MAX_FIELDS_SEEN,
    MAX_IPS,
    MAX_PAIRS,
    MAX_PAIRS_24H,
    MAX_STATE_BYTES,
    MAX_SUBJECTS_24H,
    OTHER_PAIRS,
    RECENT_RESOURCES,
    RISK_EVIDENCE,
    W_EVENTS,
    W_NEW_RESOURCES,
    W_NO_TICKET,
    W_RECORDS,
    ActorState,
    absorb_into_baseline,
    advance_windows,
    new_state,
    state_from_bytes,
    state_to_bytes,
    window_value,
)
from insiderwatch.stream.processing import decode_stored_state, encode_stored_state
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
    assert state.pairs == {stable_hash("export customer_profile"): 1}
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
    assert len(state.pairs_24h) == MAX_PAIRS_24H == 8  # capped like the other lists
    assert len(data) <= 2048, len(data)


def _as_stored_by_json_format(state, version: int) -> bytes:
    """``state`` as formats 3 and 4 stored it: JSON, pairs keyed by name."""
    names = {stable_hash(name): name for name in ("view review", "export customer_profile")}
    names[OTHER_PAIRS] = "~other"
    names_then = [f.name for f in fields(state)]
    names_then = names_then[: names_then.index("recent_ids")]  # format 6 added recent_ids
    values = [getattr(state, name) for name in names_then]
    values[-3] = {names[k]: v for k, v in state.pairs.items()}
    values[-2] = {names[k]: v for k, v in state.pairs_24h.items()}
    return orjson.dumps([version, *(values if version == 4 else values[:-2])])


def _state_with_pairs():
    state = new_state(ev(1))
    for i, (action, resource_type) in enumerate(
        (("view", "review"), ("export", "customer_profile"))
    ):
        e = ev(i, action=action, resource_type=resource_type)
        advance_windows(state, e)
        absorb_into_baseline(state, e)
    state.pairs[OTHER_PAIRS] = 3
    return state


def test_states_stored_by_the_json_formats_still_load_with_their_pair_counts():
    state = _state_with_pairs()
    assert set(state.pairs) == {
        stable_hash("view review"),
        stable_hash("export customer_profile"),
        OTHER_PAIRS,
    }
    assert state_from_bytes(_as_stored_by_json_format(state, 4)) == state
    from_format_3 = state_from_bytes(_as_stored_by_json_format(state, 3))
    assert from_format_3.pairs == state.pairs and from_format_3.win == state.win
    assert from_format_3.pairs_24h == {} and from_format_3.rebaselined_ts == 0.0


def test_a_state_of_an_unknown_format_is_refused_with_its_format():
    state = _state_with_pairs()
    with pytest.raises(ValueError, match="unknown actor state format 99"):
        state_from_bytes(_as_stored_by_json_format(state, 99))
    newer = msgspec.msgpack.encode([9, *msgspec.msgpack.decode(state_to_bytes(state))[1:]])
    with pytest.raises(ValueError, match="unknown actor state format 9"):
        state_from_bytes(newer)


def test_states_of_formats_5_to_7_load_without_the_fields_they_lack():
    state = _state_with_pairs()
    state.recent_ids = b"\x01" * 16
    state.subject_writes_24h = {7: [2.0, 100.0]}
    state.risk_week, state.risk_evidence = 0.5, [[100, 700000, 7]]
    values = msgspec.msgpack.decode(state_to_bytes(state))
    at = [f.name for f in fields(state)].index("recent_ids") + 1  # values[0] is the format
    assert values[0] == 8 and values[at] == state.recent_ids
    # format 7: per-pair day counts without their ~3-day count, which starts at 0
    pairs_at = [f.name for f in fields(state)].index("pairs_24h") + 1
    old = list(values)
    old[pairs_at] = {k: v[:2] for k, v in values[pairs_at].items()}
    format_7 = state_from_bytes(msgspec.msgpack.encode([7, *old[1:]]))
    assert state.pairs_24h and all(v[2] == 0.0 for v in format_7.pairs_24h.values())
    assert {k: v[:2] for k, v in format_7.pairs_24h.items()} == {
        k: v[:2] for k, v in state.pairs_24h.items()
    }
    values = old
    format_6 = state_from_bytes(msgspec.msgpack.encode([6, *values[1 : at + 1]]))
    assert format_6.recent_ids == state.recent_ids and format_6.pairs == state.pairs
    assert format_6.subject_writes_24h == {} and format_6.risk_week == 0.0
    assert format_6.risk_evidence == []
    format_5 = state_from_bytes(msgspec.msgpack.encode([5, *values[1:at]]))
    assert format_5.recent_ids == b"" and format_5.pairs == state.pairs
    assert format_5.win == state.win


def test_the_largest_state_the_contract_allows_fits_in_two_kib():
    """Every list and dictionary full, histogram counts at their halving point, other
    counters and times at 64 bits, the role and the event ids as long as the contract allows
    (ASCII): the stored value (state plus its
    12-byte input position) stays within MAX_STATE_BYTES."""
    big, stamp, hash32 = 2**62, 4_102_444_799.123456, 2**32 - 1
    count = HISTOGRAM_HALVING_AT  # histogram counts are halved when hist_n reaches it
    seconds = int(stamp)
    long_role = "r" * MAX_ID_CHARS
    incident = step_incident(
        None, "a" * MAX_ID_CHARS, "e" * MAX_ID_CHARS, stamp, 0.9, 3, IncidentSettings()
    ).incident
    for k in range(MAX_EVENT_IDS):
        incident = step_incident(
            incident, "a", f"{k:0{MAX_ID_CHARS}d}"[:36], stamp, 0.9, 3, IncidentSettings()
        ).incident
    assert len(incident[-1]) < MAX_EVENT_IDS  # the byte budget, not the count, stopped it
    state = ActorState(
        first_ts=stamp,
        last_ts=stamp,
        n_seen=big,
        win_ts=stamp,
        win=[stamp] * 18,
        day=big,
        day_events=big,
        day_clean_events=big,
        day_clean_records=big,
        active_days=big,
        ewma_day_events=stamp,
        ewma_day_records=stamp,
        hist_n=count,
        no_ticket_n=count,
        hours=[count] * 24,
        weekdays=[count] * 7,
        ips=[[hash32 - k, seconds] for k in range(MAX_IPS)],
        devices=[[hash32 - k, seconds] for k in range(MAX_DEVICES)],
        fields_seen=[hash32 - k for k in range(MAX_FIELDS_SEEN)],
        recent_resources=[hash32 - k for k in range(RECENT_RESOURCES)],
        role=long_role,
        incident=incident,
        cusum=stamp,
        cusum_ts=stamp,
        pairs={**{hash32 - k: count for k in range(MAX_PAIRS)}, OTHER_PAIRS: count},
        pairs_24h={hash32 - k: [stamp, stamp, stamp] for k in range(MAX_PAIRS_24H)},
        rebaselined_ts=stamp,
        recent_ids=b"\xff" * (8 * RECENT_EVENT_IDS),
        subject_writes_24h={hash32 - k: [stamp, stamp] for k in range(MAX_SUBJECTS_24H)},
        risk_day=stamp,
        risk_week=stamp,
        risk_ts=stamp,
        risk_alert_ts=stamp,
        risk_days=2**RISK_DAYS_KEPT - 1,
        risk_evidence=[[seconds, 2**32 - 1, hash32 - k] for k in range(RISK_EVIDENCE)],
    )
    stored = encode_stored_state(state, 2**31 - 1, big)
    assert decode_stored_state(stored)[0] == state
    assert len(stored) <= MAX_STATE_BYTES, len(stored)


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
