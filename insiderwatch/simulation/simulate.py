"""Simulated organisation: roles, shifts, weekends, tickets, devices, and labelled behaviour.

Deterministic per seed. Every day of every actor is drawn from its own seeded generator, so
any slice of days (``start_day``..``end_day``) is exactly that slice of the full simulation:
history and "live" traffic are two slices of one organisation.

Each event carries ``sim_label`` (``normal``, ``insider`` or ``benign_unusual``),
``sim_scenario`` and ``sim_instance``; the contract keeps unknown fields and ignores them,
so the labels never reach the model.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from insiderwatch.simulation.profiles import (
    QUIET_SCENARIOS,
    org_shape,
    quiet_events,
    quiet_plan,
    role_mix,
)

__all__ = [
    "Actor",
    "SimulationConfig",
    "build_organisation",
    "simulate",
    "INSIDER_SCENARIOS",
    "BENIGN_GROUPS",
    "QUIET_SCENARIOS",
    "role_table",
]

DAY_S = 86400
INSIDER_SCENARIOS = (
    "reviewer_email_harvest",
    "seller_metrics_leak",
    "paid_review_deletion",
    "ban_reversal",
    "bulk_export_non_analyst",
    "account_takeover",
)
BENIGN_GROUPS = (
    "analyst_ticketed_export",
    "new_hire",
    "oncall_night",
    "role_change",
    "seasonal_surge",
)

# role -> (share of staff, events per working day, ticket probability,
#          [(weight, action, resource_type, fields, (min_records, max_records))])
ROLE_MIX: dict[str, tuple[float, int, float, list]] = {
    "customer_support": (
        0.36,
        70,
        0.92,
        [
            (40, "view", "customer_profile", ["name", "address"], (1, 1)),
            (30, "view", "order_history", [], (1, 12)),
            (12, "view", "customer_contact", ["email", "phone"], (1, 1)),
            (8, "search", "customer_profile", ["name"], (1, 25)),
            (5, "update", "customer_profile", ["address"], (1, 1)),
            (5, "view", "review", [], (1, 3)),
        ],
    ),
    "seller_support": (
        0.2,
        60,
        0.88,
        [
            (38, "view", "seller_account", ["name", "status"], (1, 1)),
            (22, "view", "product_listing", [], (1, 20)),
            (18, "view", "seller_metrics", ["sales"], (1, 1)),
            (12, "search", "seller_account", [], (1, 30)),
            (6, "update", "seller_account", ["contact"], (1, 1)),
            (4, "view", "review", [], (1, 5)),
        ],
    ),
    "trust_safety": (
        0.1,
        45,
        0.95,
        [
            (38, "view", "review", [], (1, 5)),
            (10, "update", "review", ["status"], (1, 1)),
            (4, "delete", "review", [], (1, 1)),
            (22, "view", "seller_account", ["status"], (1, 1)),
            (4, "update", "seller_account", ["status"], (1, 1)),
            (22, "view", "customer_profile", ["name"], (1, 1)),
        ],
    ),
    "data_analyst": (
        0.08,
        25,
        0.7,
        [
            (45, "view", "internal_report", [], (1, 200)),
            (10, "export", "internal_report", [], (500, 20000)),
            (20, "view", "seller_metrics", ["sales"], (10, 500)),
            (15, "search", "order_history", [], (50, 2000)),
            (10, "view", "product_listing", [], (10, 300)),
        ],
    ),
    "engineer": (
        0.13,
        18,
        0.45,
        [
            (35, "view", "internal_report", [], (1, 20)),
            (25, "login", "internal_report", [], (1, 1)),
            (25, "view", "product_listing", [], (1, 50)),
            (10, "view", "order_history", [], (1, 5)),
            (5, "search", "product_listing", [], (1, 100)),
        ],
    ),
    "manager": (
        0.05,
        10,
        0.5,
        [
            (55, "view", "internal_report", [], (1, 50)),
            (30, "view", "seller_metrics", ["sales"], (1, 50)),
            (15, "export", "internal_report", [], (10, 500)),
        ],
    ),
    "service": (
        0.08,
        0,
        0.0,
        [
            (60, "search", "order_history", [], (50, 300)),
            (40, "view", "product_listing", [], (100, 500)),
        ],
    ),
}
SERVICE_EVENTS_PER_HOUR = 8


@dataclass
class Actor:
    """One employee or service account of the simulated organisation."""

    actor_id: str
    role: str
    team: str
    shift_start_h: int
    works_weekends: bool
    ips: list[str]
    device: str
    start_day: int = 0
    later_role: tuple[int, str] | None = None  # (from_day, role) for a role change


@dataclass
class SimulationConfig:
    """Size and shape of the simulation (all times UTC)."""

    actors: int = 500
    days: int = 28
    start: str = "2026-01-05"
    seed: int = 7
    scenarios_from_day: int = 21
    start_day: int = 0
    end_day: int | None = None
    with_scenarios: bool = True
    # A randomised organisation (insiderwatch.simulation.profiles), with quiet insiders.
    profile: int | None = None

    @property
    def start_epoch(self) -> float:
        return datetime.fromisoformat(self.start).replace(tzinfo=UTC).timestamp()


@dataclass
class _Plan:
    """Scenario instances placed on (actor, day)."""

    insiders: list[tuple[str, str, int, float]] = field(default_factory=list)
    benign: list[tuple[str, str, int, float]] = field(default_factory=list)
    surge_days: set[int] = field(default_factory=set)
    quiet: list[tuple[str, str, int]] = field(default_factory=list)  # profiles only


_ROLE_TABLES: dict[int | None, dict] = {}


def role_table(config: SimulationConfig) -> dict:
    """ROLE_MIX, or its redrawn version for the config's profile."""
    found = _ROLE_TABLES.get(config.profile)
    if found is None:
        found = _ROLE_TABLES[config.profile] = role_mix(config.profile, ROLE_MIX)
    return found


def build_organisation(config: SimulationConfig) -> list[Actor]:
    """The actors, drawn from the seed (and the profile) alone."""
    rng = random.Random(f"org-{config.seed}")
    table = role_table(config)
    teams, weekend_share, shifts = org_shape(config.profile)
    roles = list(table)
    weights = [table[r][0] for r in roles]
    actors = []
    for i in range(config.actors):
        role = rng.choices(roles, weights)[0]
        prefix = "svc" if role == "service" else "emp"
        shift = 0 if role == "service" else rng.choice(shifts)
        actors.append(
            Actor(
                actor_id=f"{prefix}-{i:05d}",
                role=role,
                team=f"{role}-team-{rng.randrange(1, teams + 1)}",
                shift_start_h=shift,
                works_weekends=role == "service" or rng.random() < weekend_share,
                ips=[
                    f"10.{rng.randrange(1, 250)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                    for _ in range(rng.choice([1, 1, 2]))
                ],
                device=f"dev-{rng.getrandbits(40):010x}",
            )
        )
    return actors


def _plan(config: SimulationConfig, actors: list[Actor]) -> _Plan:
    rng = random.Random(f"plan-{config.seed}")
    plan = _Plan()
    first = min(config.scenarios_from_day, config.days - 1)
    by_role: dict[str, list[Actor]] = {}
    for actor in actors:
        by_role.setdefault(actor.role, []).append(actor)
    humans = [a for a in actors if a.role != "service"]
    used: set[str] = set()

    def pick(candidates: list[Actor]) -> Actor:
        pool = [a for a in candidates if a.actor_id not in used] or candidates
        chosen = rng.choice(pool)
        used.add(chosen.actor_id)
        return chosen

    def day_hour(actor: Actor, night: bool = False) -> tuple[int, float]:
        day = rng.randrange(first, config.days)
        for _ in range(50):  # prefer a working day; a window of weekend days keeps the last draw
            if actor.works_weekends or (day + _weekday0(config)) % 7 < 5:
                break
            day = rng.randrange(first, config.days)
        hour = rng.uniform(1, 4) if night else actor.shift_start_h + rng.uniform(1, 6)
        return day, hour

    insider_roles = {
        "reviewer_email_harvest": ["customer_support"],
        "seller_metrics_leak": ["seller_support"],
        "paid_review_deletion": ["trust_safety", "customer_support"],
        "ban_reversal": ["seller_support", "trust_safety"],
        "bulk_export_non_analyst": ["customer_support", "engineer", "seller_support"],
        "account_takeover": ["customer_support", "seller_support"],
    }
    for scenario in INSIDER_SCENARIOS:
        for _ in range(2):
            candidates = [a for r in insider_roles[scenario] for a in by_role.get(r, [])]
            if not candidates:
                continue
            actor = pick(candidates)
            day, hour = day_hour(actor, night=scenario == "account_takeover")
            plan.insiders.append((scenario, actor.actor_id, day, hour))
    for group in ("analyst_ticketed_export", "oncall_night"):
        roles = (
            ["data_analyst"]
            if group == "analyst_ticketed_export"
            else ["engineer", "customer_support"]
        )
        candidates = [a for r in roles for a in by_role.get(r, [])]
        for _ in range(4 if candidates else 0):
            actor = pick(candidates)
            day, hour = day_hour(actor, night=group == "oncall_night")
            plan.benign.append((group, actor.actor_id, day, hour))
    for actor in rng.sample(humans, k=max(1, len(humans) // 60)):
        if actor.actor_id in used:
            continue
        used.add(actor.actor_id)
        actor.start_day = rng.randrange(first, max(first + 1, config.days - 2))
        plan.benign.append(("new_hire", actor.actor_id, actor.start_day, 0.0))
    support = by_role.get("customer_support", [])
    for actor in rng.sample(support, k=min(len(support), 3)):
        if actor.actor_id in used:
            continue
        used.add(actor.actor_id)
        from_day = rng.randrange(first, config.days)
        actor.later_role = (from_day, "seller_support")
        plan.benign.append(("role_change", actor.actor_id, from_day, 0.0))
    surge_start = rng.randrange(first, max(first + 1, config.days - 1))
    plan.surge_days = {surge_start, surge_start + 1}
    if config.profile is not None:
        plan.quiet = quiet_plan(rng, by_role, role_table(config), pick, first, config.days)
    return plan


def _weekday0(config: SimulationConfig) -> int:
    return datetime.fromisoformat(config.start).weekday()


def _choose(rng: random.Random, mix: list) -> tuple:
    total = sum(item[0] for item in mix)
    pick = rng.uniform(0, total)
    for item in mix:
        pick -= item[0]
        if pick <= 0:
            return item
    return mix[-1]


def _resource_id(rng: random.Random, resource_type: str) -> str:
    pools = {
        "customer_profile": ("cust", 300_000),
        "customer_contact": ("cust", 300_000),
        "order_history": ("cust", 300_000),
        "payment_instrument": ("cust", 300_000),
        "seller_account": ("sell", 30_000),
        "seller_metrics": ("sell", 30_000),
        "product_listing": ("prod", 900_000),
        "review": ("rev", 2_000_000),
        "internal_report": ("rpt", 400),
    }
    prefix, size = pools.get(resource_type, ("res", 10_000))
    return f"{prefix}-{rng.randrange(size)}"


def subject_of(resource_type: str, resource_id: str) -> str | None:
    """The seller a review or a product listing belongs to (None for other records, whose
    subject is the record itself: a customer, a seller).

    >>> subject_of("review", "rev-12"), subject_of("customer_contact", "cust-3")
    ('sell-9132', None)
    """
    if resource_type not in ("review", "product_listing"):
        return None
    number = resource_id.rsplit("-", 1)[-1]
    if not number.isdigit():
        return None
    return f"sell-{int(number) * 2654435761 % 30_000}"  # a fixed, well-mixed owner


def _event(
    actor: Actor,
    role: str,
    ts: float,
    action: str,
    resource_type: str,
    fields: list,
    records: int,
    ticket: str | None,
    ip: str,
    device: str,
    resource_id: str,
    label: str = "normal",
    scenario: str = "",
    instance: str = "",
    subject_id: str | None = None,
) -> dict:
    doc = {
        "ts": ts,
        "actor_id": actor.actor_id,
        "actor_role": role,
        "actor_team": actor.team,
        "action": action,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "record_count": records,
        "fields": fields,
        "ticket_id": ticket,
        "source_ip": ip,
        "device_id": device,
        "outcome": "success",
        "sim_label": label,
        "sim_scenario": scenario,
        "sim_instance": instance,
    }
    subject = subject_id or subject_of(resource_type, resource_id)
    if subject is not None:
        doc["subject_id"] = subject
    return doc


def _normal_day(config: SimulationConfig, actor: Actor, day: int, surge: bool) -> list[dict]:
    rng = random.Random(f"day-{config.seed}-{actor.actor_id}-{day}")
    if day < actor.start_day:
        return []
    weekday = (day + _weekday0(config)) % 7
    role = actor.role
    if actor.later_role and day >= actor.later_role[0]:
        role = actor.later_role[1]
    _, per_day, ticket_p, mix = role_table(config)[role]
    base = config.start_epoch + day * DAY_S
    events = []
    if role == "service":
        for hour in range(24):
            for _ in range(SERVICE_EVENTS_PER_HOUR + rng.randrange(-2, 3)):
                _, action, rtype, fields, (lo, hi) = _choose(rng, mix)
                ts = base + hour * 3600 + rng.uniform(0, 3600)
                events.append(
                    _event(
                        actor,
                        role,
                        ts,
                        action,
                        rtype,
                        fields,
                        rng.randint(lo, hi),
                        None,
                        actor.ips[0],
                        actor.device,
                        _resource_id(rng, rtype),
                    )
                )
        return events
    if weekday >= 5 and not actor.works_weekends:
        return []
    if rng.random() < 0.06:  # leave, sick day
        return []
    volume = per_day * rng.uniform(0.6, 1.4) * (1.8 if surge and role.endswith("support") else 1.0)
    ip = actor.ips[0] if len(actor.ips) == 1 or rng.random() < 0.7 else actor.ips[1]
    if rng.random() < 0.03:  # travelling: a new IP for the day, same device
        ip = f"10.{rng.randrange(1, 250)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    n = 0
    target = int(volume)
    while n < target:
        # a session: one ticket (or none), one subject, a few accesses
        ticket = f"T-{rng.getrandbits(32):08x}" if rng.random() < ticket_p else None
        _, action, rtype, fields, (lo, hi) = _choose(rng, mix)
        subject = _resource_id(rng, rtype)
        start = base + actor.shift_start_h * 3600 + rng.uniform(0, 8.5 * 3600)
        for k in range(rng.randint(1, 4)):
            if k:
                _, action, rtype, fields, (lo, hi) = _choose(rng, mix)
                if rtype.startswith("customer") or rtype == "order_history":
                    subject = subject if subject.startswith("cust") else _resource_id(rng, rtype)
                else:
                    subject = _resource_id(rng, rtype)
            ts = start + k * rng.uniform(20, 240)
            events.append(
                _event(
                    actor,
                    role,
                    ts,
                    action,
                    rtype,
                    list(fields),
                    rng.randint(lo, hi),
                    ticket,
                    ip,
                    actor.device,
                    subject,
                )
            )
            n += 1
    return events


def _insider(
    config: SimulationConfig, actor: Actor, scenario: str, day: int, hour: float, instance: str
) -> list[dict]:
    rng = random.Random(f"ins-{config.seed}-{instance}")
    t0 = config.start_epoch + day * DAY_S + hour * 3600
    ip, device = actor.ips[0], actor.device
    out = []

    def add(offset_s, action, rtype, fields, records, resource_id, ticket=None, ip_=None, dev=None):
        out.append(
            _event(
                actor,
                actor.role,
                t0 + offset_s,
                action,
                rtype,
                fields,
                records,
                ticket,
                ip_ or ip,
                dev or device,
                resource_id,
                "insider",
                scenario,
                instance,
            )
        )

    if scenario == "reviewer_email_harvest":
        for i in range(rng.randint(150, 400)):
            add(
                i * rng.uniform(6, 18),
                "view",
                "customer_contact",
                ["email"],
                1,
                f"cust-{rng.randrange(300_000)}",
            )
    elif scenario == "seller_metrics_leak":
        for i in range(rng.randint(40, 120)):
            add(
                i * rng.uniform(20, 60),
                "view",
                "seller_metrics",
                ["sales", "revenue"],
                1,
                f"sell-{rng.randrange(30_000)}",
            )
        add(
            130 * 60,
            "export",
            "seller_metrics",
            ["sales", "revenue"],
            rng.randint(200, 2000),
            "sell-bulk",
        )
    elif scenario == "paid_review_deletion":
        seller = f"sell-{rng.randrange(30_000)}"
        for i in range(rng.randint(10, 25)):
            add(
                i * rng.uniform(60, 240), "view", "review", [], 1, f"rev-{rng.randrange(2_000_000)}"
            )
            add(
                i * rng.uniform(60, 240) + 30,
                "delete",
                "review",
                [],
                1,
                f"rev-{rng.randrange(2_000_000)}",
            )
        add(5, "view", "seller_account", ["status"], 1, seller)
    elif scenario == "ban_reversal":
        for i in range(rng.randint(3, 8)):
            seller = f"sell-{rng.randrange(30_000)}"
            offset = i * rng.uniform(600, 3600)
            add(offset, "view", "seller_account", ["status"], 1, seller)
            add(offset + 40, "update", "seller_account", ["status", "ban_reason"], 1, seller)
    elif scenario == "bulk_export_non_analyst":
        for i in range(rng.randint(2, 5)):
            rtype = rng.choice(["customer_profile", "order_history", "customer_contact"])
            add(
                i * rng.uniform(120, 900),
                "export",
                rtype,
                ["email", "name", "address"],
                rng.randint(5_000, 60_000),
                f"{rtype}-bulk",
            )
    elif scenario == "account_takeover":
        new_ip = f"203.0.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        new_device = f"dev-{rng.getrandbits(40):010x}"
        for i in range(rng.randint(30, 80)):
            rtype = rng.choice(["customer_contact", "payment_instrument", "customer_profile"])
            add(
                i * rng.uniform(15, 90),
                rng.choice(["view", "view", "search"]),
                rtype,
                ["email", "card_last4"] if rtype != "customer_profile" else ["name"],
                rng.randint(1, 40),
                f"cust-{rng.randrange(300_000)}",
                ip_=new_ip,
                dev=new_device,
            )
    return out


def _quiet(
    config: SimulationConfig, actor: Actor, scenario: str, first_day: int, n: int, days: range
) -> list[dict]:
    """One quiet insider instance (see profiles.py), the part inside the ``days`` slice."""
    instance = f"{scenario}#{n}"
    working = [
        day
        for day in range(first_day, config.days)
        if actor.works_weekends or (day + _weekday0(config)) % 7 < 5
    ][:9]
    out: list[dict] = []

    def emit(
        day, offset_s, action, rtype, fields, records, resource_id, ticket, subject=None
    ) -> None:
        if day not in days:
            return
        ts = config.start_epoch + day * DAY_S + actor.shift_start_h * 3600 + offset_s
        ip = actor.ips[0]
        out.append(
            _event(
                actor,
                actor.role,
                ts,
                action,
                rtype,
                fields,
                records,
                ticket,
                ip,
                actor.device,
                resource_id,
                "insider",
                scenario,
                instance,
                subject,
            )
        )

    quiet_events(actor, role_table(config), scenario, working, instance, emit)
    return out


def _benign(
    config: SimulationConfig, actor: Actor, group: str, day: int, hour: float, instance: str
) -> list[dict]:
    rng = random.Random(f"ben-{config.seed}-{instance}")
    t0 = config.start_epoch + day * DAY_S + hour * 3600
    out = []
    if group == "analyst_ticketed_export":
        ticket = f"T-{rng.getrandbits(32):08x}"
        for i in range(rng.randint(2, 4)):
            out.append(
                _event(
                    actor,
                    actor.role,
                    t0 + i * 900,
                    "export",
                    rng.choice(["internal_report", "order_history"]),
                    [],
                    rng.randint(20_000, 100_000),
                    ticket,
                    actor.ips[0],
                    actor.device,
                    f"rpt-{rng.randrange(400)}",
                    "benign_unusual",
                    group,
                    instance,
                )
            )
    elif group == "oncall_night":
        ticket = f"INC-{rng.getrandbits(24):06x}"
        _, _, _, mix = role_table(config)[actor.role]
        for i in range(rng.randint(20, 50)):
            _, action, rtype, fields, (lo, hi) = _choose(rng, mix)
            out.append(
                _event(
                    actor,
                    actor.role,
                    t0 + i * rng.uniform(60, 200),
                    action,
                    rtype,
                    list(fields),
                    rng.randint(lo, hi),
                    ticket,
                    actor.ips[0],
                    actor.device,
                    _resource_id(rng, rtype),
                    "benign_unusual",
                    group,
                    instance,
                )
            )
    return out


def simulate(config: SimulationConfig) -> Iterator[dict]:
    """Yield contract-v1 events (plus ``sim_*`` labels) in event-time order."""
    actors = build_organisation(config)
    plan = _plan(config, actors)
    end_day = config.days if config.end_day is None else min(config.end_day, config.days)
    days = range(config.start_day, end_day)
    labels: dict[tuple[str, int], tuple[str, str]] = {}
    for group, actor_id, day, _ in plan.benign:
        if group in ("new_hire", "role_change"):
            labels[(actor_id, day)] = (group, f"{group}#{actor_id}")
    events: list[dict] = []
    by_id = {a.actor_id: a for a in actors}
    for day in days:
        surge = day in plan.surge_days
        for actor in actors:
            day_events = _normal_day(config, actor, day, surge)
            label = labels.get((actor.actor_id, day))
            if label is None and actor.start_day and actor.start_day <= day < actor.start_day + 3:
                label = ("new_hire", f"new_hire#{actor.actor_id}")
            if (
                label is None
                and actor.later_role
                and actor.later_role[0] <= day < actor.later_role[0] + 3
            ):
                label = ("role_change", f"role_change#{actor.actor_id}")
            if label is None and surge and actor.role.endswith("support"):
                label = ("seasonal_surge", f"seasonal_surge#day{min(plan.surge_days)}")
            if label is not None:
                for e in day_events:
                    e["sim_label"], e["sim_scenario"], e["sim_instance"] = (
                        "benign_unusual",
                        label[0],
                        label[1],
                    )
            events.extend(day_events)
    if config.with_scenarios:
        for n, (scenario, actor_id, day, hour) in enumerate(plan.insiders):
            if day in days:
                events.extend(
                    _insider(config, by_id[actor_id], scenario, day, hour, f"{scenario}#{n}")
                )
        for n, (group, actor_id, day, hour) in enumerate(plan.benign):
            if day in days and group in ("analyst_ticketed_export", "oncall_night"):
                events.extend(_benign(config, by_id[actor_id], group, day, hour, f"{group}#{n}"))
        for n, (scenario, actor_id, first_day) in enumerate(plan.quiet):
            events.extend(_quiet(config, by_id[actor_id], scenario, first_day, n, days))
    events.sort(key=lambda e: (e["ts"], e["actor_id"]))
    seen_ids: dict[str, int] = {}
    for e in events:
        ts = e.pop("ts")
        e["timestamp"] = (
            datetime.fromtimestamp(round(ts, 3), UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        # Stable id: same org, seed and time slot give the same id in any day slice.
        event_id = f"ev-{config.seed}-{e['actor_id']}-{int(round(ts * 1000))}"
        repeat = seen_ids.get(event_id, 0)
        seen_ids[event_id] = repeat + 1
        e["event_id"] = event_id if repeat == 0 else f"{event_id}-{repeat}"
        yield e


def write_jsonl(events: Iterator[dict], path: str) -> int:
    """Write events one JSON object per line; return how many."""
    count = 0
    with open(path, "wb") as handle:
        for event in events:
            handle.write(orjson.dumps(event) + b"\n")
            count += 1
    return count
