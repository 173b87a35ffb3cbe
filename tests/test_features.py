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
    advance_windows(state, event)
    row = dict(zip(FEATURE_NAMES, feature_row(event, state, peers), strict=True))
    # 9 records vs the role's 99th percentile of 1 record per access
    assert math.isclose(row["records_vs_role"], math.log(10 / 2))
    assert row["no_ticket"] == 1.0
    # one access in 10 min vs a typical pace of 40 per day / 8 h / 6 (role median: 40 per day)
    typical_10m = 40 / 8 / 6
    assert math.isclose(row["events_10m_vs_actor"], max(0.0, math.log(2 / (1 + typical_10m))))
    assert math.isclose(row["field_role_rarity"], -math.log(role.field_probability("email")))
    # no history: the actor's action probability is the role's (shrinkage prior)
    assert math.isclose(row["action_novelty"], -math.log(role.action_p["update"]))
    assert math.isclose(row["action_role_rarity"], -math.log(role.action_p["update"]))
    assert row["first_time"] == 0.0 and row["new_ip_or_device"] == 0.0  # not established yet


def test_established_actor_gets_novelty_flags():
    peers = _peers()
    first = parse_event(event_bytes(0, source_ip="10.0.0.1", device_id="d1"))
    state = new_state(first)
    for i in range(40):
        e = parse_event(event_bytes(i, source_ip="10.0.0.1", device_id="d1"))
        advance_windows(state, e)
        absorb_into_baseline(state, e)
    odd = parse_event(event_bytes(100, action="export", source_ip="203.0.113.9", device_id="d2"))
    advance_windows(state, odd)
    row = dict(zip(FEATURE_NAMES, feature_row(odd, state, peers), strict=True))
    assert row["new_ip_or_device"] == 2.0 and row["first_time"] == 1.0
    p_role = peers.profile("customer_support").action_probability("export")
    expected = -math.log((0 + PRIOR_EVENTS * p_role) / (40 + PRIOR_EVENTS))
    assert math.isclose(row["action_novelty"], expected)
