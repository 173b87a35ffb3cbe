"""Peer baselines: what is normal for each ``actor_role``, learned once at training time.

The profiles are frozen into the model artifact, so the stream and an offline replay see the
same peer baseline and therefore compute the same features. The one live per-role aggregate,
the role pulse (:mod:`insiderwatch.models.pulse`), keeps only its usual level here.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from insiderwatch.models.events import AccessEvent, pair_key
from insiderwatch.models.pulse import fit_usual

__all__ = ["RoleProfile", "PeerBaseline", "build_peer_baseline", "pair_key", "GLOBAL_ROLE"]

GLOBAL_ROLE = "*"
PROBABILITY_FLOOR = 1e-4
_DAY_S = 86400


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def _quantile(values: list[int], q: float) -> float:
    if not values:
        return 1.0
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


@dataclass(slots=True)
class RoleProfile:
    """Access mix and daily volume of one role (probabilities sum to about 1)."""

    actors: int
    # Joint (action, resource type) shares: "search product_listing" is common for engineers
    # even though "search" and "product_listing" are each only moderately common, so the
    # product of the marginals would overstate how rare the pair is.
    pair_p: dict[str, float]
    hour_p: list[float]
    weekday_p: list[float]
    median_day_events: float
    median_day_records: float
    no_ticket_share: float
    p99_records_per_event: float
    field_p: dict[str, float]
    # Probability of anything the role never did in training: below that of anything it did
    # once (a fixed floor would rank "never" above "once" for a busy role).
    unseen_p: float = PROBABILITY_FLOOR
    # The role's usual events per hour of the week (models.pulse); empty: no pulse.
    pulse_week: list[float] = field(default_factory=list)

    def pair_probability(self, pair: str) -> float:
        """Share of the role's accesses that are ``pair`` (see :func:`pair_key`)."""
        return self.pair_p.get(pair, self.unseen_p)

    def field_probability(self, name: str) -> float:
        """Share of the role's accesses that return field ``name``."""
        return self.field_p.get(name, self.unseen_p)


@dataclass(slots=True)
class PeerBaseline:
    """Role profiles plus a global profile for roles never seen in training."""

    roles: dict[str, RoleProfile]

    def profile(self, role: str) -> RoleProfile:
        found = self.roles.get(role)
        return found if found is not None else self.roles[GLOBAL_ROLE]

    def pair_names(self) -> dict[int, str]:
        """Every (action, resource type) pair seen in training, by its hash
        (:attr:`~insiderwatch.models.events.AccessEvent.pair_hash`)."""
        return {
            zlib.crc32(pair.encode()): pair
            for profile in self.roles.values()
            for pair in profile.pair_p
        }

    def pulse_usual(self) -> dict[str, list[float]]:
        """Role -> usual week, for the roles that have a pulse (models.pulse)."""
        return {
            role: profile.pulse_week for role, profile in self.roles.items() if profile.pulse_week
        }

    def to_json(self) -> dict:
        return {role: asdict(profile) for role, profile in sorted(self.roles.items())}

    @classmethod
    def from_json(cls, data: dict) -> PeerBaseline:
        return cls(roles={role: RoleProfile(**profile) for role, profile in data.items()})


def _distribution(counts: Counter, smoothing: float = 0.5) -> dict[str, float]:
    total = sum(counts.values()) + smoothing * len(counts)
    return {key: (count + smoothing) / total for key, count in sorted(counts.items())}


def _histogram(counts: list[int], smoothing: float = 1.0) -> list[float]:
    total = sum(counts) + smoothing * len(counts)
    return [(c + smoothing) / total for c in counts]


def build_peer_baseline(events: Iterable[AccessEvent]) -> PeerBaseline:
    """Aggregate training events into one profile per role plus a global one.

    >>> from insiderwatch.models.events import parse_event
    >>> raw = (b'{"event_id":"%d","timestamp":"2026-01-05T09:00:00Z","actor_id":"a",'
    ...        b'"actor_role":"support","action":"view","resource_type":"review"}')
    >>> peers = build_peer_baseline(parse_event(raw % i) for i in range(4))
    >>> round(peers.profile("support").pair_p["view review"], 3), peers.profile("support").actors
    (1.0, 1)
    """
    pairs: dict[str, Counter] = defaultdict(Counter)
    hours: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    weekdays: dict[str, list[int]] = defaultdict(lambda: [0] * 7)
    no_ticket: Counter = Counter()
    totals: Counter = Counter()
    field_counts: dict[str, Counter] = defaultdict(Counter)
    records_per_event: dict[str, list[int]] = defaultdict(list)
    actor_day_events: Counter = Counter()
    actor_day_records: Counter = Counter()
    actor_roles: dict[str, str] = {}
    hour_counts: dict[str, Counter] = defaultdict(Counter)

    for event in events:
        for role in (event.actor_role, GLOBAL_ROLE):
            pairs[role][event.pair] += 1
            hours[role][(int(event.ts) % _DAY_S) // 3600] += 1
            weekdays[role][(int(event.ts // _DAY_S) + 3) % 7] += 1
            totals[role] += 1
            if not event.ticket_id:
                no_ticket[role] += 1
            for name in set(event.fields):
                field_counts[role][name] += 1
            records_per_event[role].append(event.record_count)
        day_key = (event.actor_id, event.actor_role, int(event.ts // _DAY_S))
        actor_day_events[day_key] += 1
        actor_day_records[day_key] += event.record_count
        actor_roles[event.actor_id] = event.actor_role
        hour_counts[event.actor_role][int(event.ts // 3600)] += 1

    day_events_by_role: dict[str, list[float]] = defaultdict(list)
    day_records_by_role: dict[str, list[float]] = defaultdict(list)
    for day_key, count in actor_day_events.items():
        records = actor_day_records[day_key]
        for key in (day_key[1], GLOBAL_ROLE):
            day_events_by_role[key].append(count)
            day_records_by_role[key].append(records)
    actor_counts = Counter(actor_roles.values())
    actor_counts[GLOBAL_ROLE] = len(actor_roles)

    pulse_usual = fit_usual(hour_counts, actor_counts)
    roles = {}
    for role in totals:
        roles[role] = RoleProfile(
            actors=actor_counts[role],
            pair_p=_distribution(pairs[role]),
            hour_p=_histogram(hours[role]),
            weekday_p=_histogram(weekdays[role]),
            median_day_events=_median(day_events_by_role[role]),
            median_day_records=_median(day_records_by_role[role]),
            no_ticket_share=no_ticket[role] / totals[role],
            p99_records_per_event=_quantile(records_per_event[role], 0.99),
            field_p={
                k: (v + 0.5) / (totals[role] + 1.0) for k, v in sorted(field_counts[role].items())
            },
            unseen_p=min(PROBABILITY_FLOOR, 0.5 / (totals[role] + 1.0)),
            pulse_week=pulse_usual.get(role, []),
        )
    if GLOBAL_ROLE not in roles:
        roles[GLOBAL_ROLE] = RoleProfile(0, {}, [1 / 24] * 24, [1 / 7] * 7, 0.0, 0.0, 0.0, 1.0, {})
    return PeerBaseline(roles=roles)
