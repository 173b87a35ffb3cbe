"""The compiled detection kernel against the Python definition, bit for bit.

:mod:`models.compiled` must compute exactly what :func:`models.detector.observe` and the
state functions define: same feature rows, same scores, same flags, same states afterwards.
The reference below is the pure-Python detection loop (one event at a time), and the traffic
is built to reach every bounded structure's edge: late events, role changes (and a role
flipping back within the cool-down), more pairs, IPs, devices, fields and resources than the
state keeps, histogram halving, missing IPs and devices, denied accesses and insider bursts.
"""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime
from zlib import crc32

import numpy as np
import orjson
import pytest

from insiderwatch.models.artifact import load_model
from insiderwatch.models.compiled import RoleTable, featurize
from insiderwatch.models.detector import Detector, observe
from insiderwatch.models.events import parse_event
from insiderwatch.models.forest import score
from insiderwatch.models.incidents import step_incident
from insiderwatch.models.risk import RISK_EXCESS_CAP, RiskLimits, add_risk, risk_due
from insiderwatch.models.state import (
    HISTOGRAM_HALVING_AT,
    LATENESS_S,
    MAX_DEVICES,
    MAX_IPS,
    OTHER_PAIRS,
    absorb_into_baseline,
    count_rare_access,
    state_to_bytes,
)
from insiderwatch.models.sustained import cusum_step
from insiderwatch.simulation.simulate import SimulationConfig, simulate


def _edge_traffic(seed: int = 11) -> list:
    """Simulated traffic with insider scenarios, plus hand-made edge cases woven in."""
    rng = random.Random(seed)
    config = SimulationConfig(actors=40, days=16, seed=seed, scenarios_from_day=8)
    docs = list(simulate(config))
    docs = [d for d in docs if rng.random() < 0.5]
    extra = []
    start = parse_event(orjson.dumps(docs[0])).ts
    roles = ["customer_support", "seller_support", "unknown", "engineer", "not-in-training"]
    busy = HISTOGRAM_HALVING_AT + 600  # the histograms are halved before the role changes
    for i in range(busy + 1500):  # one very busy, very varied actor
        arrival = start + i * 60.0 + rng.random()
        ts = arrival
        if i % 97 == 0:
            ts -= rng.choice([300.0, 1800.0, 4000.0])  # late, some beyond the lateness bound
        extra.append(
            {
                "_arrival": arrival,
                "event_id": f"x{i}",
                "timestamp": ts,
                "actor_id": "edge",
                "actor_role": roles[0] if i < busy else roles[(i // 150) % len(roles)],
                "action": rng.choice(["view", "export", "search", "edit", "delete"]),
                "resource_type": f"type{rng.randrange(30)}",
                "resource_id": rng.choice([None, f"r{rng.randrange(40)}"]),
                "record_count": rng.choice([1, 1, 3, 250, 40000]),
                "fields": rng.sample([f"f{k}" for k in range(25)], rng.randrange(4)),
                "ticket_id": rng.choice([None, "T-1"]),
                "source_ip": rng.choice([None, *[f"10.0.0.{k}" for k in range(9)]]),
                "device_id": rng.choice([None, *[f"d{k}" for k in range(6)]]),
                "outcome": rng.choice(["success", "success", "denied", "failure"]),
            }
        )
    for doc in extra:
        stamp = datetime.fromtimestamp(doc["timestamp"], UTC).isoformat()
        doc["timestamp"] = stamp.replace("+00:00", "Z")
    for doc in docs:
        doc["_arrival"] = parse_event(orjson.dumps(doc)).ts
    merged = sorted(docs + extra, key=lambda d: d["_arrival"])  # late events arrive late
    events = [
        parse_event(orjson.dumps({k: v for k, v in d.items() if v is not None})) for d in merged
    ]
    assert all(hasattr(e, "ts") for e in events)
    for event in events:  # the role pulse (models.pulse) is an input of both paths
        event.role_pulse = rng.choice([0.0, 0.0, 0.0, 0.25, 1.0986])
    for event in events:  # and so is the context's risk weight (models.analyst)
        if crc32(event.actor_id.encode()) % 3 == 0:
            event.risk_weight = 3.0
    edge = [e.ts for e in events if e.actor_id == "edge"]
    latest = list(itertools.accumulate(edge, max))
    behind = [latest[i - 1] - ts for i, ts in enumerate(edge) if i and ts < latest[i - 1]]
    assert any(d > LATENESS_S for d in behind) and any(0 < d < LATENESS_S for d in behind)
    return events


def _reference(detector: Detector, events: list) -> tuple[list, list, list, dict]:
    """The Python definition: observe, score, settle, one event at a time."""
    model, states = detector.model, {}
    scores, flagged, rows = [], [], []
    for event in events:
        state, is_late, is_rare, row = observe(event, states, model.peers)
        value = float(score(model.forest, np.asarray([row]))[0])
        state.cusum = cusum_step(
            state.cusum, state.cusum_ts, event.ts, value, detector._cusum_reference
        )
        state.cusum_ts = max(state.cusum_ts, event.ts)
        flag = value >= detector.threshold or state.cusum >= detector._cusum_limit
        if flag:
            state.incident = step_incident(
                state.incident,
                event.actor_id,
                event.event_id,
                event.ts,
                value,
                detector.severity_level(value),
                detector.incident_settings,
            ).incident
        else:
            absorb_into_baseline(state, event)
            if is_rare and not is_late:
                count_rare_access(state, event)
            excess = min(value - detector._roles.risk_reference(event.actor_role), RISK_EXCESS_CAP)
            excess *= event.risk_weight
            if excess > 0.0:
                add_risk(state, event.ts, value, excess, event.pair_hash)
                risk_due(state, event.ts, detector._risk_limits)
        scores.append(value)
        flagged.append(flag)
        rows.append(row)
    return scores, flagged, rows, states


@pytest.fixture(scope="module")
def edge_events():
    return _edge_traffic()


def test_the_kernel_scores_and_updates_states_exactly_as_the_python_definition(
    small_model, edge_events
):
    detector = Detector(load_model(small_model))
    # A low alert bar, so that many events are flagged and kept out of the baseline.
    values = [s.score for s in detector.process(edge_events, {}, "t").scored]
    detector.threshold = float(np.quantile(values, 0.97))
    # ... and low risk limits and a short cool-down, so that risk alerts recur.
    detector._risk_limits = RiskLimits(0.05, 0.2, 3600.0)
    scores, flagged, _, expected_states = _reference(detector, edge_events)
    assert 0 < sum(flagged) < len(flagged)
    assert sum(len(s.risk_evidence) == 3 for s in expected_states.values()) >= 3
    assert sum(s.risk_alert_ts > 0 for s in expected_states.values()) >= 3
    paths = {"compiled": detector._process_compiled, "python": detector._process_in_python}
    for (path, process), batch_size in itertools.product(
        paths.items(), (1, 37, 5000, len(edge_events))
    ):
        states: dict = {}
        got_scores, got_flagged = [], []
        for i in range(0, len(edge_events), batch_size):
            outcome = process(edge_events[i : i + batch_size], states, "t")
            got_scores += [s.score for s in outcome.scored]
            got_flagged += [s.flagged for s in outcome.scored]
        assert got_scores == scores, (path, batch_size)
        assert got_flagged == flagged, (path, batch_size)
        assert {k: state_to_bytes(v) for k, v in states.items()} == {
            k: state_to_bytes(v) for k, v in expected_states.items()
        }, (path, batch_size)


def test_both_paths_emit_the_same_alerts(small_model, edge_events):
    detector = Detector(load_model(small_model))
    values = [s.score for s in detector.process(edge_events, {}, "t").scored]
    detector.threshold = float(np.quantile(values, 0.99))
    detector._risk_limits = RiskLimits(0.05, 0.2, 3600.0)
    compiled = detector._process_compiled(edge_events, {}, "t").alerts
    python = detector._process_in_python(edge_events, {}, "t").alerts
    assert compiled and compiled == python
    kinds = {alert["kind"] for alert in compiled}
    assert kinds == {"event", "entity_risk"}


def test_a_batch_takes_the_compiled_path_when_actors_have_several_events(small_model, edge_events):
    detector = Detector(load_model(small_model))
    calls = []
    detector._process_compiled = lambda *a: calls.append("compiled")
    detector._process_in_python = lambda *a: calls.append("python")
    distinct = list({e.actor_id: e for e in edge_events}.values())
    detector.process(distinct, {}, "t")
    detector.process(edge_events[:1000], {}, "t")
    assert calls == ["python", "compiled"]


def test_the_training_replay_gives_the_python_features_and_states(small_model, edge_events):
    peers = load_model(small_model).peers
    states: dict = {}
    rows = []
    for event in edge_events:
        state, is_late, is_rare, row = observe(event, states, peers)
        absorb_into_baseline(state, event)
        if is_rare and not is_late:
            count_rare_access(state, event)
        rows.append(row)
    compiled_states: dict = {}
    roles = RoleTable(peers)
    got = np.concatenate(
        [
            featurize(edge_events[i : i + 3000], compiled_states, roles)
            for i in range(0, len(edge_events), 3000)
        ]
    )
    assert np.array_equal(got, np.asarray(rows))
    edge = compiled_states["edge"]
    # The traffic reached the edges: folded pairs, full IP and device lists, a re-baseline.
    assert OTHER_PAIRS in edge.pairs and edge.rebaselined_ts > 0
    assert len(edge.ips) == MAX_IPS and len(edge.devices) == MAX_DEVICES
    assert {k: state_to_bytes(v) for k, v in compiled_states.items()} == {
        k: state_to_bytes(v) for k, v in states.items()
    }


def test_the_role_table_caches_stay_bounded_and_give_the_uncached_values(small_model, monkeypatch):
    """Hostile input (endless new pairs and field sets) cannot grow the look-up caches, and a
    value looked up again after the cache was cleared is the same."""
    peers = load_model(small_model).peers
    roles = RoleTable(peers)
    monkeypatch.setattr(RoleTable, "CACHE_LIMIT", 50)
    fresh = RoleTable(peers)
    for i in range(500):
        role = ["customer_support", "unknown", "never-seen-role"][i % 3]
        pair = f"view type{i}" if i % 2 else "view review"
        fields = (f"field{i}", "email") if i % 5 else ("email",)
        assert roles.pair_terms(role, pair) == fresh.pair_terms(role, pair)
        assert roles.field_rarities(role, fields) == fresh.field_rarities(role, fields)
        assert roles.resource_prefix(f"type{i}") == crc32(f"type{i}/".encode())
    assert max(map(len, (roles._pair_terms, roles._field_rarities, roles._resource_prefixes))) <= 50
    profile = peers.profile("never-seen-role")
    p = profile.pair_p.get("view review", profile.unseen_p)
    assert roles.pair_terms("never-seen-role", "view review") == (p, -math.log(p))


def test_the_kernel_was_compiled_for_the_declared_row_layout():
    """numba caches kernels by the source of models/compiled.py only; its copy of the layout
    digest must change with models.state.ROW_LAYOUT so that a layout change recompiles."""
    from insiderwatch.models import compiled
    from insiderwatch.models.state import ROW_LAYOUT, row_layout_digest, row_offsets

    assert row_layout_digest() == compiled.ROW_LAYOUT_DIGEST
    assert compiled.WIDTH == row_offsets()["width"] == sum(width for _, width in ROW_LAYOUT)


def test_the_kernel_names_the_feature_math_it_inlines():
    """numba caches the kernel by models/compiled.py's source only, and the kernel inlines
    models/feature_math.py: its copy of that file's digest must change with it, so that a
    feature change recompiles instead of running a stale cached kernel."""
    import hashlib
    from pathlib import Path

    from insiderwatch.models import compiled, feature_math

    source = Path(feature_math.__file__).read_bytes()
    assert hashlib.sha256(source).hexdigest()[:16] == compiled.FEATURE_MATH_DIGEST
