"""Randomised organisation profiles and the quiet insider classes they plant."""

from __future__ import annotations

from collections import defaultdict

from insiderwatch.simulation.profiles import QUIET_SCENARIOS
from insiderwatch.simulation.simulate import (
    ROLE_MIX,
    SimulationConfig,
    build_organisation,
    role_table,
    simulate,
)


def _events(profile, seed=3, actors=150, days=28):
    config = SimulationConfig(actors=actors, days=days, seed=seed, profile=profile)
    return list(simulate(config))


def test_a_profile_redraws_the_organisation_deterministically():
    default = SimulationConfig(actors=200, seed=3)
    one, two = (SimulationConfig(actors=200, seed=3, profile=p) for p in (1, 2))
    assert role_table(default) is ROLE_MIX
    assert role_table(one) != role_table(two) != ROLE_MIX
    assert role_table(one) == role_table(SimulationConfig(actors=10, seed=9, profile=1))
    teams = {a.team for a in build_organisation(one)} ^ {a.team for a in build_organisation(two)}
    assert teams  # team structure differs between profiles
    assert _events(1)[:200] == _events(1)[:200]


def test_profiles_plant_three_instances_of_each_quiet_class_over_several_days():
    events = _events(1)
    by_instance = defaultdict(list)
    for e in events:
        if e["sim_scenario"] in QUIET_SCENARIOS:
            by_instance[e["sim_instance"]].append(e)
    classes = defaultdict(int)
    for instance, members in by_instance.items():
        classes[members[0]["sim_scenario"]] += 1
        assert len({e["timestamp"][:10] for e in members}) >= 2, instance
        assert all(e["sim_label"] == "insider" for e in members)
    assert dict(classes) == {name: 3 for name in QUIET_SCENARIOS}
    for members in by_instance.values():
        scenario = members[0]["sim_scenario"]
        if scenario == "in_role_targeting":
            assert len({e["resource_id"] for e in members}) <= 3
            assert all(
                e["ticket_id"] is None and e["action"] in ("update", "delete") for e in members
            )
        if scenario == "justified_peer_outlier":
            role_types = {
                m[2] for m in role_table(SimulationConfig(profile=1))[members[0]["actor_role"]][3]
            }
            assert all(e["ticket_id"] for e in members)
            assert not {e["resource_type"] for e in members} & role_types


def test_the_default_organisation_has_no_quiet_insiders():
    assert not any(e["sim_scenario"] in QUIET_SCENARIOS for e in _events(None, actors=80, days=28))


def test_evaluate_over_profiles_reports_every_class_and_the_worst_profile(tmp_path):
    from insiderwatch.simulation.evaluate import EvaluationConfig, run_profiles

    config = EvaluationConfig(
        actors=80, history_days=12, scored_days=7, trees=30, out_dir=str(tmp_path)
    )
    report = run_profiles(config, 1)
    for name in QUIET_SCENARIOS:
        assert name in report
    assert "worst profile: 1" in report
    assert (tmp_path / "profiles.json").is_file()
