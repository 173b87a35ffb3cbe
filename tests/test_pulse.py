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


def test_pulse_is_the_log_ratio_above_usual_capped():
    assert pulse(100.0, 100.0) == 0.0
    assert pulse(50.0, 100.0) == 0.0
    assert pulse(150.0, 100.0) == pytest.approx(math.log(1.5))
    assert pulse(1e6, 100.0) == PULSE_CAP == pytest.approx(math.log(3.0))
    assert pulse(1e6, 0.0) == 0.0  # a role without a usual level has no pulse


def test_trailing_window_is_hours_h_minus_26_to_h_minus_3():
    counts = HourlyCounts()
    for hour, n in ((0, 1.0), (1, 10.0), (24, 100.0), (25, 1000.0), (26, 10000.0)):
        counts.add("support", hour, n)
    # hour 28 reads 2..25: 100 + 1000; hour 27 reads 1..24: 10 + 100; hour 26 reads 0..23
    assert counts.trailing("support", 28) == 1100.0
    assert counts.trailing("support", 27) == 110.0
    assert counts.trailing("support", 26) == 11.0
    assert counts.trailing("support", 29) == 11100.0  # 3..26
    counts.forget_before(25)
    assert counts.trailing("support", 29) == 11000.0
    assert counts.trailing("support", 28) == 1000.0


def test_usual_is_the_75th_percentile_of_active_hours_for_big_enough_roles():
    # 10 events an hour for 100 hours: every complete trailing window holds 240
    steady = {h: 10 for h in range(100)}
    # one busy day from hour 60: trailing sums rise from hour 63 on
    busy = {h: (40 if 60 <= h < 84 else 10) for h in range(100)}
    usual = fit_usual(
        {"steady": steady, "busy": busy, "small": steady}, {"steady": 10, "busy": 12, "small": 9}
    )
    assert usual == {"steady": 240.0, "busy": pytest.approx(usual["busy"])}
    assert usual["busy"] > 240.0  # the busy day lifts the upper quartile


def test_set_pulses_on_a_surge_by_hand():
    events = [_event(h, n=k) for h in range(30) for k in range(10)]  # 10 an hour
    surge = [_event(28, n=100 + k) for k in range(5)]
    events += [_event(29, n=200 + k) for k in range(50)] + surge
    counts = count_events(events)
    set_pulses(events, counts, {"support": 120.0})
    by_hour = {}
    for event in events:
        by_hour[(event.ts // 3600) - HOUR0] = event.role_pulse
    assert by_hour[2] == 0.0  # trailing is empty at the start
    assert by_hour[27] == pytest.approx(math.log(240 / 120))  # hours 1..24: 240 events
    assert by_hour[29] == pytest.approx(math.log(240 / 120))  # hour 29 reads 3..26 only
    # an event at hour 31 reads 5..28: 240 - 10 + ... including hour 28's extra 5
    late = _event(31, n=7)
    count_events([late], counts)
    set_pulses([late], counts, {"support": 120.0})
    assert late.role_pulse == pytest.approx(math.log(245 / 120))


def test_roles_without_usual_get_no_pulse():
    events = [_event(h, role="tiny", n=k) for h in range(30) for k in range(10)]
    set_pulses(events, count_events(events), {"support": 1.0})
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
    usual = {"support": 600.0, "analyst": 300.0}
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
    usual = {"support": 600.0, "analyst": 300.0}
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
        for hour in range(HOUR0 + 71 - KEEP_HOURS + 26, HOUR0 + 80):
            assert second.totals.trailing(role, hour) == whole.trailing(role, hour)
    # a third worker that reads only the topic agrees, and an old echo changes nothing
    third = PulseTable(usual)
    for value in published.values():
        third.apply(value)
    for _, value in early:
        third.apply(value)
    for role in usual:
        assert third.totals.trailing(role, HOUR0 + 50) == whole.trailing(role, HOUR0 + 50)


def test_table_skips_unreadable_records_and_unknown_roles():
    table = PulseTable({"support": 10.0})
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
    table = PulseTable({"support": 10.0})
    table.count([_event(0)], [(0, 0)])
    assert table.totals.trailing("support", HOUR0 + 3) == 1.0
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
    assert table.totals.trailing("support", HOUR0 + 3) == 0.0  # hour 0 forgotten
