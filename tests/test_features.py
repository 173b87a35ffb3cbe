"""Feature extraction with hand-computed expectations."""

from __future__ import annotations

import math

from models.events import parse_event
from models.features import FEATURE_NAMES, FEATURES, PRIOR_EVENTS, feature_row
from models.peers import build_peer_baseline
from models.state import absorb_into_baseline, advance_windows, new_state
from tests.helpers import event_bytes


def _peers():
    events = [parse_event(event_bytes(i, action="view" if i % 4 else "update")) for i in range(40)]
    return build_peer_baseline(events)


def test_every_feature_is_documented_once():
    assert len(set(FEATURE_NAMES)) == len(FEATURES) >= 16
    assert all(f.meaning and f.unit for f in FEATURES)


def test_fresh_actor_features_fall_back_to_the_role():
    peers = _peers()
    role = peers.profile("customer_support")
    event = parse_event(
        event_bytes(99, action="update", record_count=9, ticket_id=None, fields=["email"])
    )
    state = new_state(event)
    _, is_new = advance_windows(state, event)
    row = dict(zip(FEATURE_NAMES, feature_row(event, state, peers, is_new), strict=True))
    assert row["log_record_count"] == math.log(10)
    assert row["sensitive_field_count"] == 1.0
    assert row["no_ticket"] == 1.0
    assert row["events_10m"] == math.log(2)
    # no history: the actor's action probability is the role's (shrinkage prior)
    assert math.isclose(row["action_novelty"], -math.log(role.action_p["update"]))
    assert math.isclose(row["action_role_rarity"], -math.log(role.action_p["update"]))
    assert row["first_time_action"] == 0.0  # not established yet: no novelty flags


def test_established_actor_gets_novelty_flags():
    peers = _peers()
    first = parse_event(event_bytes(0, source_ip="10.0.0.1", device_id="d1"))
    state = new_state(first)
    for i in range(40):
        e = parse_event(event_bytes(i, source_ip="10.0.0.1", device_id="d1"))
        advance_windows(state, e)
        absorb_into_baseline(state, e)
    odd = parse_event(event_bytes(100, action="export", source_ip="203.0.113.9", device_id="d2"))
    _, is_new = advance_windows(state, odd)
    row = dict(zip(FEATURE_NAMES, feature_row(odd, state, peers, is_new), strict=True))
    assert row["new_ip"] == 1.0 and row["new_device"] == 1.0 and row["first_time_action"] == 1.0
    p_role = peers.profile("customer_support").action_probability("export")
    expected = -math.log((0 + PRIOR_EVENTS * p_role) / (40 + PRIOR_EVENTS))
    assert math.isclose(row["action_novelty"], expected)
