"""The role pulse (models/pulse.py) and its stream table (stream/pulse.py), by hand."""

from __future__ import annotations

import math
import random

import orjson
import pytest

from insiderwatch.models.events import AccessEvent
from insiderwatch.models.features import FEATURE_NAMES
from insiderwatch.models.pulse import (
    PULSE_CAP,
    HourlyCounts,
    count_events,
    expected_in_window,
    fit_usual,
    pulse,
    set_pulses,
)
from insiderwatch.stream.pulse import KEEP_HOURS, PulseTable

HOUR0 = 490_896  # 2026-01-01T00:00Z as an hour index


def _event(hour: int, role: str = "support", actor: str = "a", n: int = 0) -> AccessEvent:
    ts = (HOUR0 + hour) * 3600 + 60 * (n % 59)
    stamp = f"2026-01-{1 + hour // 24:02d}T{hour % 24:02d}:{n % 59 + 1:02d}:00Z"
    event = AccessEvent(
        event_id=f"{role}-{hour}-{n}",
        timestamp=stamp,
        actor_id=actor,
        action="view",
        resource_type="order",
        actor_role=role,
    )
    assert abs(event.ts - ts - 60) < 1e-6
    return event


def test_pulse_is_the_log_ratio_past_a_dead_zone_capped():
    assert pulse(110.0, 100.0) == 0.0  # within 10 %: noise
    assert pulse(50.0, 100.0) == 0.0
    assert pulse(198.0, 100.0) == pytest.approx(math.log(1.8))
    assert pulse(1e6, 100.0) == PULSE_CAP == pytest.approx(math.log(3.0))
    assert pulse(1e6, 19.0) == 0.0  # a window expected to hold < 20 events (a night)
    assert pulse(0.0, 100.0) == 0.0


def test_window_is_hours_h_minus_8_to_h_minus_3():
    counts = HourlyCounts()
    for hour, n in ((1, 1.0), (2, 10.0), (7, 100.0), (8, 1000.0)):
        counts.add("support", hour, n)
    assert counts.in_window("support", 10) == 110.0  # 2..7
    assert counts.in_window("support", 11) == 1100.0  # 3..8
    assert counts.in_window("support", 9) == 11.0  # 1..6
    counts.forget_before(3)
    assert counts.in_window("support", 10) == 100.0


def test_usual_week_is_the_mean_per_hour_of_the_week_for_big_enough_roles():
    # two weeks from Monday 00:00 (hour 96 is 1970-01-05, a Monday): 10 an hour, except the
    # second Monday at 09:00 with 30
    monday = 96
    counts = {h: 10 for h in range(monday, monday + 336)}
    counts[monday + 168 + 9] = 30
    usual = fit_usual({"support": counts, "small": counts}, {"support": 10, "small": 9})
    assert list(usual) == ["support"]
    week = usual["support"]
    assert len(week) == 168 and week[9] == 20.0 and week[10] == 10.0 and week[0] == 10.0
    assert expected_in_window(week, monday + 14) == 70.0  # 06:00..11:00: 10 x 5 + 20


def test_set_pulses_on_a_surge_by_hand():
    events = [_event(h, n=k) for h in range(30) for k in range(10)]  # 10 an hour
    events += [_event(h, n=100 + k) for h in range(20, 30) for k in range(20)]  # 30 from 20
    counts = count_events(events)
    set_pulses(events, counts, {"support": [10.0] * 168})
    by_hour = {}
    for event in events:
        by_hour[(event.ts // 3600) - HOUR0] = event.role_pulse
    assert by_hour[5] == 0.0  # hours -3..2 hold 30 events, expected 60
    assert by_hour[22] == 0.0  # hours 14..19: no rise yet
    # hour 24 reads 16..21: 4 x 10 + 2 x 30 = 100 over 60
    assert by_hour[24] == pytest.approx(math.log(100 / 60) - math.log(1.1))
    # hour 29 reads 21..26, all surge: 180 over 60 = 3x, capped at ln 3 after the dead zone
    assert by_hour[29] == pytest.approx(math.log(3.0) - math.log(1.1))


def test_roles_without_usual_get_no_pulse():
    events = [_event(h, role="tiny", n=k) for h in range(30) for k in range(10)]
    set_pulses(events, count_events(events), {"support": [1.0] * 168})
    assert {e.role_pulse for e in events} == {0.0}


def test_volume_features_subtract_the_pulse():
    from insiderwatch.models.feature_inputs import FEATURE_INPUTS
    from insiderwatch.models.feature_math import feature_values

    inputs = dict.fromkeys(FEATURE_INPUTS, 0.0)
    inputs.update(events_10m=20.0, hour_events_typ=6.0, p_pair=0.5)
    plain = feature_values(*inputs.values())
    inputs["role_pulse"] = math.log(2.0)
    lowered = feature_values(*inputs.values())
    i = FEATURE_NAMES.index("events_10m_vs_actor")
    assert plain[i] == pytest.approx(math.log(21 / 2))
    assert lowered[i] == pytest.approx(math.log(21 / 2) - math.log(2.0))
    inputs["role_pulse"] = 10.0
    assert feature_values(*inputs.values())[i] == 0.0  # clipped at 0
    assert (
        lowered[FEATURE_NAMES.index("access_role_rarity")]
        == plain[FEATURE_NAMES.index("access_role_rarity")]
    )


def _partitioned(seed: int = 3):
    """Two roles over 3 days, spread over 3 partitions by actor, with a surge on day 2."""
    rng = random.Random(seed)
    events = []
    for hour in range(72):
        for k in range(rng.randrange(20, 40) * (3 if 30 <= hour < 40 else 1)):
            role = rng.choice(["support", "support", "analyst", "unknown-role"])
            events.append(_event(hour, role=role, actor=f"u{rng.randrange(30)}", n=k))
    partitions: dict[int, list] = {0: [], 1: [], 2: []}
    for event in events:
        partitions[int(event.actor_id[1:]) % 3].append(event)
    return events, partitions


def test_stream_table_gives_the_offline_pulses_when_partitions_keep_pace():
    events, partitions = _partitioned()
    usual = {"support": [15.0] * 168, "analyst": [7.5] * 168}
    set_pulses(events, count_events(events), usual)
    offline = [e.role_pulse for e in events]
    table = PulseTable(usual)
    stream_pulses = {}
    # batches of each partition in turn, an hour of event time at a time
    positions = {p: 0 for p in partitions}
    for hour in range(72):
        for p, part in partitions.items():
            batch = [e for e in part if (e.ts // 3600) - HOUR0 == hour]
            at = [(p, positions[p] + i) for i in range(len(batch))]
            positions[p] += len(batch)
            table.count(batch, at)
            table.set_pulses(batch)
            stream_pulses.update({e.event_id: e.role_pulse for e in batch})
    assert [stream_pulses[e.event_id] for e in events] == offline
    assert max(offline) > 0.0  # the surge shows


def test_counts_are_exactly_once_across_a_restart_and_a_move():
    events, partitions = _partitioned()
    usual = {"support": [15.0] * 168, "analyst": [7.5] * 168}
    first = PulseTable(usual)
    published: dict[bytes, bytes] = {}  # the compacted topic: last value per key
    part = partitions[0]
    positions = [(0, i) for i in range(len(part))]
    assert len(part) > 600
    early = first.count(part[:100], positions[:100])
    published.update(early)
    for start in range(100, 300, 100):
        published.update(first.count(part[start : start + 100], positions[start : start + 100]))
    # the worker dies after publishing up to offset 299; its last commit was at offset 199
    second = PulseTable(usual)
    for value in published.values():
        second.apply(value)
    assert 290 <= second.through(0) <= 299  # the last counted role's event, at most 299
    assert second.count(part[200:300], positions[200:300]) == []  # already counted
    published.update(second.count(part[300:], positions[300:]))
    whole = count_events(part)
    # every hour an event can still read (KEEP_HOURS behind the newest, hour 71)
    for role in usual:
        for hour in range(HOUR0 + 71 - KEEP_HOURS + 8, HOUR0 + 80):
            assert second.totals.in_window(role, hour) == whole.in_window(role, hour)
    # a third worker that reads only the topic agrees, and an old echo changes nothing
    third = PulseTable(usual)
    for value in published.values():
        third.apply(value)
    for _, value in early:
        third.apply(value)
    for role in usual:
        assert third.totals.in_window(role, HOUR0 + 60) == whole.in_window(role, HOUR0 + 60)


def test_table_skips_unreadable_records_and_unknown_roles():
    table = PulseTable({"support": [10.0] * 168})
    for bad in (b"not json", b"{}", b'{"role":"support","hour":"x"}', None, b"[1]"):
        table.apply(bad)
    assert table.unreadable == 5
    assert table.count([_event(1, role="other")], [(0, 5)]) == []
    assert table.through(0) == 5
    record = orjson.loads(table.count([_event(1)], [(0, 6)])[0][1])
    assert record == {
        "role": "support",
        "hour": HOUR0 + 1,
        "partition": 0,
        "count": 1,
        "through": 6,
    }


def test_table_forgets_hours_no_event_reads():
    table = PulseTable({"support": [10.0] * 168})
    table.count([_event(0)], [(0, 0)])
    assert table.totals.in_window("support", HOUR0 + 3) == 1.0
    later = AccessEvent(
        event_id="far",
        timestamp="2026-01-10T00:00:00Z",
        actor_id="a",
        action="view",
        resource_type="order",
        actor_role="support",
    )
    assert (later.ts // 3600) - HOUR0 > KEEP_HOURS + 3  # 9 days on
    table.count([later], [(0, 1)])
    assert table.totals.in_window("support", HOUR0 + 3) == 0.0  # hour 0 forgotten
