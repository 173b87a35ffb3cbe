"""Randomised organisation profiles and quiet insider behaviour for the simulator.

A *profile* (``SimulationConfig.profile``) redraws the shape of the organisation from its own
seed: each role's share of staff, its accesses per working day, its ticket discipline and the
weights of its resource mix, the number of teams, the shift starts and who works weekends. An
evaluation over several profiles cannot be won by fitting one organisation.

Profiles also plant three classes of quiet insider behaviour, written from what the loud
scenarios do not cover (each instance spans several working days):

``in_role_targeting``
    The role's own write actions (update, delete), at a modest daily count, concentrated on
    two or three outside parties without a ticket: either the same few records again and
    again, or (half the instances, for reviews and listings) different records that all
    belong to the same few sellers (``subject_id``).
``low_and_slow``
    A modest daily excess (1.5-2.5x the actor's usual count) of the role's most sensitive read,
    every working day for a week, half of it without a ticket.
``justified_peer_outlier``
    Reads of a resource type that the actor's role never reads in this organisation, each
    with a plausible ticket id, over two days.
"""

from __future__ import annotations

import random
from functools import lru_cache

__all__ = ["QUIET_SCENARIOS", "org_shape", "role_mix", "quiet_plan", "quiet_events"]

QUIET_SCENARIOS = ("in_role_targeting", "low_and_slow", "justified_peer_outlier")
SENSITIVE_TYPES = ("customer_contact", "payment_instrument", "seller_metrics", "customer_profile")
_DAY_S = 86400


def role_mix(profile: int | None, base: dict) -> dict:
    """The role table for ``profile``: ``base`` (the simulator's ROLE_MIX) itself when None,
    otherwise every number redrawn around it from the profile's seed."""
    roles = base
    if profile is None:
        return roles
    rng = random.Random(f"profile-{profile}")
    out = {}
    for role, (share, per_day, ticket_p, mix) in roles.items():
        new_mix = [
            (max(1, round(weight * rng.uniform(0.4, 1.8))), action, rtype, fields, records)
            for weight, action, rtype, fields, records in mix
        ]
        out[role] = (
            share * rng.uniform(0.5, 1.6),
            int(per_day * rng.uniform(0.5, 1.8)),
            min(0.99, ticket_p * rng.uniform(0.45, 1.08)) if ticket_p else 0.0,
            new_mix,
        )
    return out


@lru_cache(maxsize=64)
def org_shape(profile: int | None) -> tuple[int, float, tuple[int, ...]]:
    """``(teams per role, share working weekends, shift start hours)`` for ``profile``."""
    if profile is None:
        return 5, 0.12, (7, 8, 8, 9, 9, 10, 13, 14)
    rng = random.Random(f"shape-{profile}")
    shifts = tuple(sorted(rng.choice(range(5, 16)) for _ in range(rng.randint(3, 8))))
    return rng.randint(2, 9), rng.uniform(0.03, 0.3), shifts


def quiet_plan(rng: random.Random, by_role: dict, mixes: dict, pick, first_day: int, days: int):
    """``(scenario, actor_id, first_day)`` of each quiet instance: three per class."""
    plan = []
    writers = [
        role
        for role, (_, _, _, mix) in mixes.items()
        if any(m[1] in ("update", "delete") for m in mix)
    ]
    readers = [
        role
        for role, (_, _, _, mix) in mixes.items()
        if role != "service" and any(m[2] in SENSITIVE_TYPES and m[1] == "view" for m in mix)
    ]
    humans = [role for role in mixes if role != "service"]
    last = max(first_day, days - 5)
    for scenario, roles in (
        ("in_role_targeting", writers),
        ("low_and_slow", readers),
        ("justified_peer_outlier", humans),
    ):
        candidates = [a for role in roles for a in by_role.get(role, [])]
        for _ in range(3 if candidates else 0):
            actor = pick(candidates)
            plan.append((scenario, actor.actor_id, rng.randint(first_day, last)))
    return plan


def quiet_events(actor, role_table: dict, scenario: str, working: list[int], instance: str, emit):
    """The events of one quiet instance on the actor's ``working`` days from its start;
    ``emit(day, offset_s, action, rtype, fields, records, resource_id, ticket, subject=None)``
    builds one (labelled) event."""
    rng = random.Random(f"quiet-{instance}")
    _, per_day, _, mix = role_table[actor.role]
    weight_total = sum(m[0] for m in mix)
    if scenario == "in_role_targeting":
        writes = [m for m in mix if m[1] in ("update", "delete")]
        _, action, rtype, fields, _ = rng.choice(writes)
        targets = [f"target-{rng.getrandbits(30):08x}" for _ in range(rng.randint(2, 3))]
        by_owner = rtype in ("review", "product_listing") and rng.random() < 0.5
        for day in working[:4]:
            for _ in range(rng.randint(6, 12)):
                target = rng.choice(targets)
                emit(
                    day,
                    rng.uniform(0, 7.5 * 3600),
                    action,
                    rtype,
                    list(fields),
                    1,
                    f"{rtype}-{rng.getrandbits(40):010x}" if by_owner else target,
                    None,
                    target if by_owner else None,
                )
    elif scenario == "low_and_slow":
        reads = [m for m in mix if m[2] in SENSITIVE_TYPES and m[1] == "view"]
        weight, action, rtype, fields, _ = max(reads, key=lambda m: m[0])
        usual = max(2.0, per_day * weight / weight_total)
        for day in working[:5]:
            for _ in range(round(usual * rng.uniform(1.5, 2.5))):
                ticket = f"T-{rng.getrandbits(32):08x}" if rng.random() < 0.5 else None
                emit(
                    day,
                    rng.uniform(0, 8 * 3600),
                    action,
                    rtype,
                    list(fields),
                    1,
                    f"{rtype}-{rng.randrange(300_000)}",
                    ticket,
                )
    else:  # justified_peer_outlier
        own = {m[2] for m in mix}
        foreign = [t for t in SENSITIVE_TYPES + ("order_history", "review") if t not in own]
        rtype = rng.choice(foreign or list(SENSITIVE_TYPES))
        fields = {
            "customer_contact": ["email", "phone"],
            "payment_instrument": ["card_last4"],
            "seller_metrics": ["sales"],
        }.get(rtype, [])
        for day in working[:2]:
            for _ in range(rng.randint(8, 16)):
                emit(
                    day,
                    rng.uniform(0, 7.5 * 3600),
                    "view",
                    rtype,
                    list(fields),
                    1,
                    f"{rtype}-{rng.randrange(300_000)}",
                    f"T-{rng.getrandbits(32):08x}",
                )
