"""Entity risk and write concentration, against expectations computed by hand."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from insiderwatch.models.events import parse_event
from insiderwatch.models.manifest import Risk
from insiderwatch.models.risk import (
    RiskLimits,
    add_risk,
    calibrate_limit,
    days_with_risk,
    risk_alert_count,
    risk_due,
    risk_peaks,
    role_references,
)
from insiderwatch.models.risk_alert import risk_fields
from insiderwatch.models.state import (
    MAX_SUBJECTS_24H,
    ActorState,
    advance_windows,
    new_state,
    subject_writes_24h,
)

DAY = 86400.0


def test_risk_decays_in_event_time_over_a_day_and_a_week():
    state = ActorState(0.0, 0.0)
    add_risk(state, 10 * DAY, 0.70, 0.10, 1)
    add_risk(state, 11 * DAY, 0.75, 0.20, 1)  # one day later
    # day sum: 0.1 * e^-1 + 0.2; week sum: 0.1 * e^(-1/7) + 0.2
    assert state.risk_day == pytest.approx(0.1 / math.e + 0.2, abs=1e-12)
    assert state.risk_week == pytest.approx(0.1 * math.exp(-1 / 7) + 0.2, abs=1e-12)
    assert state.risk_ts == 11 * DAY
    # A late event (half a day before the latest) is added with the decay it would have had.
    add_risk(state, 10.5 * DAY, 0.72, 0.05, 2)
    assert state.risk_day == pytest.approx(0.1 / math.e + 0.2 + 0.05 * math.exp(-0.5), abs=1e-12)
    assert state.risk_ts == 11 * DAY  # time never goes back
    assert days_with_risk(state) == 2  # days 10 and 11


def test_days_with_risk_remember_the_last_seven_days():
    state = ActorState(0.0, 0.0)
    for day in (0, 2, 3):
        add_risk(state, day * DAY + 3600, 0.7, 0.01, 1)
    assert bin(state.risk_days) == "0b1011"  # days 3, 2 and 0 (bit k = k days before day 3)
    add_risk(state, 9 * DAY, 0.7, 0.01, 1)  # days 0 to 2 are now more than a week ago
    assert bin(state.risk_days) == "0b1000001"  # day 9 and day 3
    assert days_with_risk(state) == 2


def test_the_evidence_keeps_the_strongest_events_of_the_last_week():
    state = ActorState(0.0, 0.0)
    for k, score in enumerate((0.70, 0.90, 0.80, 0.60, 0.85)):
        add_risk(state, DAY + k * 60, score, 0.01, k)
    assert sorted(e[1] for e in state.risk_evidence) == [800000, 850000, 900000]
    # Eight days later the old entries are stale: a weak new event replaces the oldest.
    add_risk(state, 9 * DAY, 0.65, 0.01, 9)
    assert sorted(e[2] for e in state.risk_evidence) == [2, 4, 9]


def test_an_actor_is_alerted_once_per_cool_down_whichever_sum_crosses():
    limits = RiskLimits(day_limit=0.25, week_limit=0.5, cooldown_s=DAY)
    state = ActorState(0.0, 0.0)
    add_risk(state, 0.0, 0.7, 0.2, 1)
    assert not risk_due(state, 0.0, limits)
    add_risk(state, 60.0, 0.7, 0.1, 1)  # day sum 0.2 * e^(-60/86400) + 0.1 > 0.25
    assert risk_due(state, 60.0, limits) and state.risk_alert_ts == 60.0
    add_risk(state, 120.0, 0.7, 0.3, 1)
    assert not risk_due(state, 120.0, limits)  # within the cool-down
    add_risk(state, DAY + 60.0, 0.7, 0.3, 1)
    assert risk_due(state, DAY + 60.0, limits)


def test_calibration_spends_exactly_the_budget_on_a_hand_made_replay():
    # Actor 0 builds 0.3 then 0.6 of risk within a minute, actor 1 builds 0.4, actor 2 0.1.
    codes = np.array([0, 0, 1, 2])
    ts = np.array([0.0, 60.0, 30.0, 90.0])
    excess = np.array([0.3, 0.3, 0.4, 0.1])
    peaks = risk_peaks(codes, ts, excess)
    week_peaks = sorted(peaks[4].tolist())
    assert week_peaks[-1] == pytest.approx(0.3 * math.exp(-60 / (7 * DAY)) + 0.3)
    # One alert allowed: the limit is actor 0's peak (only it reaches that).
    limit = calibrate_limit(peaks, 1, 7 * DAY, "week")
    assert limit == pytest.approx(week_peaks[-1])
    assert risk_alert_count(peaks, RiskLimits(math.inf, limit, 7 * DAY)) == 1
    # Two allowed: actor 1's 0.4 (actor 0 crosses it too, once, at its second event).
    limit = calibrate_limit(peaks, 2, 7 * DAY, "week")
    assert limit == pytest.approx(0.4)
    assert risk_alert_count(peaks, RiskLimits(math.inf, limit, 7 * DAY)) == 2


def test_a_role_whose_work_scores_higher_gets_a_higher_reference():
    scores = np.array([0.1, 0.2, 0.3, 0.4] * 250 + [0.5, 0.6, 0.7, 0.8] * 250)
    roles = ["quiet"] * 1000 + ["busy"] * 1000
    references, default = role_references(roles, scores, 0.5)
    assert default == pytest.approx(0.45)
    assert references == {"busy": pytest.approx(0.65), "quiet": pytest.approx(0.45)}


def test_risk_fields_score_and_severity_follow_the_ratio_to_the_limit():
    risk = Risk(1.0, 0.99, {}, 0.5, 1.0, 2.0, 7 * DAY, DAY, 7 * DAY, 3)
    fields = risk_fields(ActorState(0.0, 0.0, risk_day=0.5, risk_week=2.6, risk_days=1), risk)
    assert fields["risk"]["ratio"] == 1.3  # week 2.6 / 2.0 beats day 0.5 / 1.0
    assert fields["score"] == round(1.3 / 2.3, 6) and fields["severity"] == "medium"


def _write(i: int, ts: str, subject: str | None, action: str = "delete", resource: str = "r"):
    doc = {
        "event_id": f"e{i}",
        "timestamp": ts,
        "actor_id": "mod",
        "action": action,
        "resource_type": "review",
        "resource_id": f"{resource}{i}",
    }
    if subject is not None:
        doc["subject_id"] = subject
    return parse_event(orjson.dumps(doc))


def test_writes_concentrated_on_one_subject_are_counted_per_subject():
    events = [
        _write(0, "2026-01-05T10:00:00Z", "seller-a"),
        _write(1, "2026-01-05T10:00:00Z", "seller-a"),
        _write(2, "2026-01-05T10:00:00Z", "seller-b"),
        _write(3, "2026-01-05T10:00:00Z", "seller-a", action="view"),  # a read: not counted
        _write(4, "2026-01-06T10:00:00Z", "seller-a"),  # a day later
    ]
    state = new_state(events[0])
    for event in events[:4]:
        advance_windows(state, event)
    assert subject_writes_24h(state, events[1]) == 2.0
    assert subject_writes_24h(state, events[2]) == 1.0
    assert subject_writes_24h(state, events[3]) == 0.0  # reads have no write count
    advance_windows(state, events[4])
    assert subject_writes_24h(state, events[4]) == pytest.approx(2.0 / math.e + 1.0)
    assert subject_writes_24h(state, events[2]) == pytest.approx(1.0 / math.e)


def test_without_a_subject_id_the_record_itself_is_the_subject():
    same_record = [_write(0, "2026-01-05T10:00:00Z", None), _write(0, "2026-01-05T10:01:00Z", None)]
    state = new_state(same_record[0])
    for event in same_record:
        advance_windows(state, event)
    assert subject_writes_24h(state, same_record[1]) == pytest.approx(math.exp(-60 / DAY) + 1.0)


def test_the_subject_counts_are_capped_forgetting_the_least_recent():
    events = [
        _write(k, f"2026-01-05T10:0{k}:00Z", f"seller-{k}") for k in range(MAX_SUBJECTS_24H + 1)
    ]
    state = new_state(events[0])
    for event in events:
        advance_windows(state, event)
    assert len(state.subject_writes_24h) == MAX_SUBJECTS_24H
    assert subject_writes_24h(state, events[0]) == 0.0  # the first subject was forgotten
    assert subject_writes_24h(state, events[-1]) == 1.0
