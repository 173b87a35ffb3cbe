"""Feature extraction with hand-computed expectations."""

from __future__ import annotations

import math

import pytest

from insiderwatch.models.detector import observe
from insiderwatch.models.events import parse_event
from insiderwatch.models.features import (
    FEATURE_NAMES,
    FEATURES,
    PRIOR_EVENTS,
    RARE_SURPRISAL,
    access_surprise,
    feature_row,
    is_rare_access,
    role_rarities,
    role_surprise,
)
from insiderwatch.models.peers import build_peer_baseline
from insiderwatch.models.state import absorb_into_baseline, advance_windows, new_state
from tests.helpers import event_bytes, support_veteran


def _peers():
    events = [parse_event(event_bytes(i, action="view" if i % 4 else "update")) for i in range(40)]
    return build_peer_baseline(events)


def test_every_feature_is_documented_once():
    assert len(set(FEATURE_NAMES)) == len(FEATURES) >= 12
    assert all(f.meaning and f.unit for f in FEATURES)


def test_fresh_actor_features_fall_back_to_the_role():
    peers = _peers()
    role = peers.profile("customer_support")
    event = parse_event(
        event_bytes(99, action="update", record_count=9, ticket_id=None, fields=["email"])
    )
    state = new_state(event)
    surprise = access_surprise(event, state, role)
    advance_windows(state, event)
    row = dict(
        zip(
            FEATURE_NAMES,
            feature_row(event, state, peers, surprise, is_rare_access(event, role, surprise)),
            strict=True,
        )
    )
    # 9 records vs the role's 99th percentile of 1 record per access
    assert math.isclose(row["records_vs_role"], math.log(10 / 2))
    # 1 access without a ticket in the hour, against 1 access x the role's no-ticket share of 0
    assert math.isclose(row["no_ticket_1h_vs_actor"], math.log(2 / 1))
    # one access in 10 min vs a typical pace of 40 per day / 8 h / 6 (role median: 40 per day)
    typical_10m = 40 / 8 / 6
    assert math.isclose(row["events_10m_vs_actor"], max(0.0, math.log(2 / (1 + typical_10m))))
    assert math.isclose(row["field_role_rarity"], -math.log(role.field_probability("email")))
    # no history: the actor's (action, resource type) probability is the role's (shrinkage)
    p_pair = role.pair_probability("update customer_profile")
    assert math.isclose(p_pair, (10 + 0.5) / (40 + 2 * 0.5))  # 10 of 40, smoothed
    assert math.isclose(row["access_role_rarity"], -math.log(p_pair))
    # pair + never-returned field + missing ticket (the role always has one: 0 -> floor)
    expected_surprise = (
        -math.log(p_pair) - math.log(role.field_probability("email")) - math.log(1e-4)
    )
    assert math.isclose(row["access_surprise"], expected_surprise)
    assert surprise > RARE_SURPRISAL
    assert row["new_ip_or_device"] == 0.0  # not established yet


def test_established_actor_gets_novelty_flags():
    peers = _peers()
    first = parse_event(event_bytes(0, source_ip="10.0.0.1", device_id="d1"))
    state = new_state(first)
    for i in range(40):
        e = parse_event(event_bytes(i, source_ip="10.0.0.1", device_id="d1"))
        advance_windows(state, e)
        absorb_into_baseline(state, e)
    odd = parse_event(event_bytes(100, action="export", source_ip="203.0.113.9", device_id="d2"))
    role = peers.profile("customer_support")
    surprise = access_surprise(odd, state, role)
    advance_windows(state, odd)
    row = dict(
        zip(
            FEATURE_NAMES,
            feature_row(odd, state, peers, surprise, is_rare_access(odd, role, surprise)),
            strict=True,
        )
    )
    assert row["new_ip_or_device"] == 2.0
    # the role never exports: the pair gets the probability floor, shrunk with 40 events
    expected = -math.log((0 + PRIOR_EVENTS * 1e-4) / (40 + PRIOR_EVENTS))
    assert math.isclose(row["access_surprise"], expected)  # ticketed, no fields
    assert math.isclose(row["rare_accesses_1h"], math.log(2.0))  # this rare access itself


def test_correlated_pair_is_not_rare_when_the_role_does_it():
    """The joint pair, not the product of marginals: 'search product_listing' is common for
    this role although 'search' and 'product_listing' each appear in only half the accesses."""
    mix = [("search", "product_listing"), ("view", "internal_report")]
    history = [
        parse_event(event_bytes(i, action=mix[i % 2][0], resource_type=mix[i % 2][1]))
        for i in range(40)
    ]
    role = build_peer_baseline(history).profile("customer_support")
    event = parse_event(event_bytes(99, action="search", resource_type="product_listing"))
    assert math.isclose(access_surprise(event, new_state(event), role), -math.log(20.5 / 41))
    crossed = parse_event(event_bytes(98, action="search", resource_type="internal_report"))
    assert access_surprise(crossed, new_state(crossed), role) > RARE_SURPRISAL


def test_rare_access_reason_counts_what_the_feature_counts():
    """The explanation of a rare-access count says the number the forest saw."""
    from insiderwatch.models.detector import observe
    from insiderwatch.models.explain import _describe

    peers = _peers()
    role = peers.profile("customer_support")
    states = {}
    for i in range(40):
        observe(parse_event(event_bytes(i)), states, peers)
    export = parse_event(event_bytes(100, action="export"))  # the role never exports
    state, _, is_rare, row = observe(export, states, peers)
    assert is_rare
    for name in ("rare_accesses_1h", "rare_accesses_24h"):
        observed, _, text = _describe(name, export, state, role)
        assert math.isclose(math.log1p(observed), row[FEATURE_NAMES.index(name)])
        assert text.startswith("1 access in")


def test_role_rarities_passed_in_give_the_row_computed_without_them():
    peers = _peers()
    role = peers.profile("customer_support")
    for fields, action in ([], "view"), (["email"], "update"), (["email", "phone"], "export"):
        event = parse_event(event_bytes(7, action=action, ticket_id=None, fields=fields))
        state = new_state(event)
        surprise = access_surprise(event, state, role)
        advance_windows(state, event)
        rarities = role_rarities(event, role)
        assert math.isclose(sum(rarities), role_surprise(event, role))
        rare = is_rare_access(event, role, surprise)
        assert is_rare_access(event, role, surprise, rarities) == rare
        assert feature_row(event, state, peers, surprise, rare, rarities) == feature_row(
            event, state, peers, surprise, rare
        )


def test_time_novelty_counts_the_day_of_the_week_as_well_as_the_hour():
    peers = _peers()  # the role's history: Monday 2026-01-05 09:00 only
    role = peers.profile("customer_support")
    state = None
    for day in range(5, 10):  # Monday to Friday, 09:00, 20 accesses each
        for i in range(20):
            event = parse_event(event_bytes(i, timestamp=f"2026-01-{day:02d}T09:{i:02d}:00Z"))
            state = state or new_state(event)
            advance_windows(state, event)
            absorb_into_baseline(state, event)

    def novelty(timestamp):
        event = parse_event(event_bytes(99, timestamp=timestamp))
        surprise = access_surprise(event, state, role)
        row = feature_row(event, state, peers, surprise, is_rare_access(event, role, surprise))
        return dict(zip(FEATURE_NAMES, row, strict=True))["time_novelty"]

    weekday, saturday, night = (
        novelty("2026-01-13T09:30:00Z"),  # a Tuesday, the usual hour
        novelty("2026-01-10T09:30:00Z"),  # a Saturday, the usual hour
        novelty("2026-01-13T03:30:00Z"),  # a Tuesday, at night
    )
    assert weekday + 3.0 < saturday
    assert weekday < night
    # Saturday at 09:00: all 100 past accesses at that hour, none on that day of the week;
    # each part shrunk to the role's mix with 20 pseudo-events.
    n = 100 + PRIOR_EVENTS
    expected = -math.log((100 + PRIOR_EVENTS * role.hour_p[9]) / n) - math.log(
        PRIOR_EVENTS * role.weekday_p[5] / n
    )
    assert math.isclose(saturday, expected)

    from insiderwatch.models.explain import _describe

    saturday_event = parse_event(event_bytes(99, timestamp="2026-01-10T09:30:00Z"))
    _, _, text = _describe("time_novelty", saturday_event, state, role)
    assert text == (
        "at 09:00 UTC on a Saturday (of this actor's 100 past accesses, 100 at that hour and 0 on "
        "that day of the week)"
    )


def _export_after_history():
    """``(role, event, state, feature row)``: an export without a ticket, returning an email,
    by an actor with 40 ordinary accesses before it."""
    from insiderwatch.models.detector import observe

    peers = _peers()
    states = {}
    for i in range(40):
        observe(parse_event(event_bytes(i)), states, peers)
    event = parse_event(event_bytes(100, action="export", fields=["email"], ticket_id=None))
    state, _, _, row = observe(event, states, peers)
    return peers.profile(event.actor_role), event, state, row


def test_every_feature_has_an_explanation():
    """An alert's reasons describe any feature the forest credits; a feature without a
    description would make the worker fail on the alert."""
    from insiderwatch.models.explain import _describe

    role, event, state, _ = _export_after_history()
    for name in FEATURE_NAMES:
        _, _, text = _describe(name, event, state, role)
        assert text


def test_reasons_are_only_features_above_what_is_common_in_training():
    """The forest may credit a feature whose value is ordinary (it split on it on the way);
    an analyst must not read that as a reason. Only features above their training 95th
    percentile are reasons, unless none is."""
    import numpy as np

    from insiderwatch.models.explain import explain

    role, event, state, row = _export_after_history()
    features = np.asarray(row)
    n = len(FEATURE_NAMES)
    records, rarity = (
        FEATURE_NAMES.index("records_vs_role"),
        FEATURE_NAMES.index("access_role_rarity"),
    )
    attribution = np.full(n, 0.01)
    attribution[rarity] = 0.5  # the forest's top credit goes to an ordinary value
    attribution[records] = 0.2
    common = features + 1.0  # every value is below what is common ...
    common[records] = features[records] - 1.0  # ... except the records
    reasons = explain(event, state, role, attribution, np.zeros(n), features, common)
    assert [r.feature for r in reasons] == ["records_vs_role"]
    # Nothing above the bar: the top credited features are still phrased.
    reasons = explain(event, state, role, attribution, np.zeros(n), features, features + 1.0)
    assert [r.feature for r in reasons][:2] == ["access_role_rarity", "records_vs_role"]


def test_missing_ticket_is_mentioned_only_where_tickets_are_the_rule():
    """In a feed without tickets (or for an actor who mostly works without), "without a
    ticket" explains nothing; where tickets are usual, it is part of the reason."""
    from insiderwatch.models.explain import _describe
    from insiderwatch.models.peers import build_peer_baseline

    def surprise_text(ticketed_history: bool) -> str:
        history = [
            parse_event(event_bytes(i, ticket_id="T-1" if ticketed_history else None))
            for i in range(40)
        ]
        peers = build_peer_baseline(history)
        state = new_state(history[0])
        for event in history:
            advance_windows(state, event)
            absorb_into_baseline(state, event)
        odd = parse_event(event_bytes(100, action="export", ticket_id=None))
        return _describe("access_surprise", odd, state, peers.profile(odd.actor_role))[2]

    assert surprise_text(ticketed_history=True).startswith("export on ")
    assert " without a ticket: about 1 in " in surprise_text(ticketed_history=True)
    assert "ticket" not in surprise_text(ticketed_history=False)


def _day_of(kinds: list[str], states: dict, peers) -> list[float]:
    """The feature rows of 'alice' doing ``kinds`` one per minute from 09:00 on 2026-01-19."""
    rows = []
    for i, kind in enumerate(kinds):
        timestamp = f"2026-01-19T{9 + i // 60:02d}:{i % 60:02d}:00Z"
        e = parse_event(event_bytes(5000 + i, timestamp=timestamp, resource_type=kind))
        state, _, _, row = observe(e, states, peers)
        absorb_into_baseline(state, e)
        rows.append(row)
    return rows


def test_a_day_concentrated_on_one_kind_of_access_stands_out_and_a_busy_day_does_not():
    column = FEATURE_NAMES.index("pair_share_24h_vs_actor")
    # A busy day with the usual mix (nine profile views to one order history, 60 in an hour).
    states, peers = support_veteran()
    usual = ["order_history" if i % 10 == 9 else "customer_profile" for i in range(60)]
    busy = max(row[column] for row in _day_of(usual, states, peers)[20:])
    # The same number of accesses, but order histories (usually 1 in 10) one after another.
    states, peers = support_veteran()
    rows = _day_of(["customer_profile"] * 30 + ["order_history"] * 30, states, peers)
    concentrated = rows[-1][column]
    assert busy < 0.25 and concentrated > 0.9, (busy, concentrated)  # ~1 = e times the usual


def test_every_feature_is_declared_with_a_formula_and_a_phrase():
    from insiderwatch.models.features import FEATURE_NAMES, FEATURES

    assert len(set(FEATURE_NAMES)) == len(FEATURES) == 18
    for feature in FEATURES:
        assert callable(feature.describe) and feature.formula and feature.unit


def test_the_generated_feature_math_is_up_to_date():
    """models/feature_math.py is what the declarations generate (regenerate with
    ``python -m insiderwatch.models.features``)."""
    from insiderwatch.models.features import FEATURE_MATH_PATH, feature_math_source

    assert FEATURE_MATH_PATH.read_text() == feature_math_source()


def test_every_formula_uses_declared_quantities_only(monkeypatch):
    from insiderwatch.models import features

    bad = features.Feature("x", "u", "m", "clip(log(undeclared))", features.FEATURES[0].describe)
    monkeypatch.setattr(features, "FEATURES", (*features.FEATURES, bad))
    with pytest.raises(ValueError, match="undeclared"):
        features.feature_math_source()
