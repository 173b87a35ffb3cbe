"""The detection loop compiled with numba: state updates, features, scoring and the decision.

:func:`models.detector.observe` and the functions of :mod:`models.state` and
:mod:`models.features` are the readable definition of what insiderwatch computes for one
event. In pure Python they cost ~20 us per event (attribute look-ups, small lists, boxed
floats), which made detection two thirds of a worker's CPU. This module runs the same
arithmetic, in the same order, over a batch at once:

* the batch's actor states are packed into one float64 matrix, one row per actor
  (:data:`WIDTH` columns; the layout below), integers held exactly (all < 2**53);
* each event becomes one row of an event matrix (:func:`pack_events`), with what needs a
  string or a dictionary (the role's share of the pair and of each field) looked up in Python;
* :func:`run_waves` processes the batch wave by wave (wave k = every actor's k-th event, see
  :mod:`models.detector`): rebaseline on a change of role, advance the windows, compute the
  feature row, walk the forest for the whole wave, then settle each event (CUSUM, threshold,
  baseline). It stops after a wave that flagged an event, so the caller can explain and group
  it with the actor's state exactly as it was at that event.

The training replay always runs this kernel (:func:`featurize`); offline ``score`` and the
worker run it for every batch whose actors have two or more events each, and a batch of
mostly one event per actor takes the Python definition,
because packing a state into a row and back costs about as much as one Python event
(:meth:`models.detector.Detector.process`). ``tests/test_compiled.py`` holds the two to the
same bits (features, scores, flags, states, alerts) on simulated traffic with insider
scenarios, late events and role changes. Why numba: it is already the
scorer's compiler (see :mod:`models.forest`), and a loop over a few hundred floats per event
is what it compiles well; the Python definition stays as the specification the tests hold
the kernel to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import NamedTuple
from zlib import crc32

import numpy as np
from numba import njit

from insiderwatch.models.events import AccessEvent
from insiderwatch.models.feature_math import N_FEATURES, feature_values_compiled
from insiderwatch.models.features import (
    FEATURE_NAMES,
    MATURE_EVENTS,
    PRIOR_DAYS,
    PRIOR_EVENTS,
    RARE_SURPRISAL,
)
from insiderwatch.models.forest import ForestArrays, _walk_depths, isolation_score
from insiderwatch.models.peers import PROBABILITY_FLOOR, PeerBaseline
from insiderwatch.models.risk import (
    RISK_DAYS_KEPT,
    RISK_EXCESS_CAP,
    RISK_TAU_DAY_S,
    RISK_TAU_WEEK_S,
    RiskLimits,
)
from insiderwatch.models.state import (
    DAILY_EWMA_ALPHA,
    DAY_S,
    HISTOGRAM_HALVING_AT,
    LATENESS_S,
    MAX_DEVICES,
    MAX_FIELDS_SEEN,
    MAX_IPS,
    MAX_PAIRS,
    MAX_PAIRS_24H,
    MAX_SUBJECTS_24H,
    OTHER_PAIRS,
    PAIR_TAU_DAYS,
    REBASELINE_COOLDOWN_S,
    REBASELINE_DAYS,
    REBASELINE_EVENTS,
    RECENT_RESOURCES,
    RISK_EVIDENCE,
    ROW_SCALARS,
    UNKNOWN_ROLE,
    ActorState,
    new_state,
    row_offsets,
)
from insiderwatch.models.sustained import CUSUM_TAU_S

__all__ = [
    "WIDTH",
    "pack_states",
    "pack_events",
    "RoleTable",
    "run_waves",
    "wave_order",
    "PackedBatch",
    "featurize",
    "FLAG_LATE",
    "FLAG_RARE",
    "FLAG_POINT",
    "FLAG_SUSTAINED",
    "FLAG_RISK",
]

# --- actor state row -------------------------------------------------------------------------
# Column offsets, derived from the one declaration of the row (models.state.ROW_LAYOUT).
_AT = row_offsets()
FIRST_TS, LAST_TS, N_SEEN, WIN_TS = (_AT[n] for n in ("first_ts", "last_ts", "n_seen", "win_ts"))
DAY, DAY_EVENTS = _AT["day"], _AT["day_events"]
DAY_CLEAN_EVENTS, DAY_CLEAN_RECORDS = _AT["day_clean_events"], _AT["day_clean_records"]
ACTIVE_DAYS, EWMA_DAY_EVENTS = _AT["active_days"], _AT["ewma_day_events"]
EWMA_DAY_RECORDS, HIST_N, NO_TICKET_N = _AT["ewma_day_records"], _AT["hist_n"], _AT["no_ticket_n"]
CUSUM, CUSUM_TS, REBASELINED_TS = _AT["cusum"], _AT["cusum_ts"], _AT["rebaselined_ts"]
ROLE, N_IPS, N_DEVICES, N_FIELDS = _AT["role"], _AT["n_ips"], _AT["n_devices"], _AT["n_fields"]
N_RECENT, N_PAIRS, N_PAIRS_24H = _AT["n_recent"], _AT["n_pairs"], _AT["n_pairs_24h"]
N_SUBJECTS, N_EVIDENCE = _AT["n_subjects"], _AT["n_evidence"]
RISK_DAY, RISK_WEEK, RISK_TS = _AT["risk_day"], _AT["risk_week"], _AT["risk_ts"]
RISK_ALERT_TS, RISK_DAYS = _AT["risk_alert_ts"], _AT["risk_days"]
WIN, HOURS, WEEKDAYS = _AT["win"], _AT["hours"], _AT["weekdays"]
IPS, DEVICES, FIELDS, RECENT = (
    _AT["ips"],
    _AT["devices"],
    _AT["fields_seen"],
    _AT["recent_resources"],
)
PAIRS, PAIRS_24H, SUBJECTS = _AT["pairs"], _AT["pairs_24h"], _AT["subject_writes_24h"]
EVIDENCE, WIDTH = _AT["risk_evidence"], _AT["width"]
MAX_PAIR_ENTRIES = MAX_PAIRS + 1  # the folded OTHER_PAIRS entry included
# numba caches compiled functions by this file's source only: a change of ROW_LAYOUT must
# change this file too, or stale kernels would keep the old offsets (and old feature math). tests/test_compiled.py
# fails until this literal equals models.state.row_layout_digest().
ROW_LAYOUT_DIGEST = "a036289d56bf028e"
# The same for the generated feature math that the kernel inlines (models/feature_math.py):
# tests/test_compiled.py fails until this literal equals feature_math_digest().
FEATURE_MATH_DIGEST = "63d25c21e955a542"

# --- event row -------------------------------------------------------------------------------
(
    E_SLOT,
    E_ROLE,
    E_TS,
    E_RECORDS,
    E_PAIR,
    E_TICKET,
    E_SUCCESS,
    E_RESOURCE,
    E_IP,
    E_DEVICE,
    E_P_ROLE_PAIR,
    E_PAIR_RARITY,
    E_FIELDS_FROM,
    E_FIELDS_TO,
    E_SUBJECT,
    E_WRITE,
    E_PULSE,
    E_RISK_WEIGHT,
) = range(18)
E_WIDTH = 18
NO_HASH = -1.0  # an absent IP or device (hashes are crc32 values, never negative)
UNKNOWN_ROLE_CODE = 0  # models.state.UNKNOWN_ROLE's code in every batch

# --- role row --------------------------------------------------------------------------------
R_HOUR = 0
R_WEEKDAY = 24
R_MEDIAN_DAY_EVENTS = 31
R_MEDIAN_DAY_RECORDS = 32
R_NO_TICKET_SHARE = 33
R_P99_RECORDS = 34
R_RISK_REFERENCE = 35  # the score above which an event adds to its actor's risk
R_WIDTH = 36

# --- per-event outcome flags -----------------------------------------------------------------
FLAG_LATE = 1
FLAG_RARE = 2
FLAG_POINT = 4
FLAG_SUSTAINED = 8
FLAG_RISK = 16
_KEPT_OUT = FLAG_POINT | FLAG_SUSTAINED  # flags that keep an event out of the baseline
_RISK_DAYS_MASK = (1 << RISK_DAYS_KEPT) - 1
_EVIDENCE_HORIZON_S = RISK_DAYS_KEPT * 86400

_TAU_10M, _TAU_1H, _TAU_24H = 600.0, 3600.0, 86400.0
_TAU_3D = PAIR_TAU_DAYS * 86400.0  # models.state._TAU_3D: the same float
_N_Q = 6  # quantities per window (models.state.N_QUANTITIES)
_WORKING_HOURS_PER_DAY = 8.0
_ZEROS = [0.0] * WIDTH


# --- packing (Python) ------------------------------------------------------------------------
def _pad(row: list, values: list, capacity: int, what: str) -> None:
    if len(values) > capacity:
        raise ValueError(f"actor state holds {len(values)} {what}, more than {capacity}")
    row.extend(values)
    row.extend(_ZEROS[: capacity - len(values)])


_row_scalars = attrgetter(*ROW_SCALARS)
_SCALAR_COLUMNS = tuple((_AT[name], name) for name in ROW_SCALARS)
# Which row scalars are integers in ActorState (the others are floats), for unpacking.
_INTEGER_SCALARS = frozenset(f.name for f in fields(ActorState) if f.type == "int")


def _state_row(state: ActorState, role_code: int) -> list:
    """One actor state as a flat list of :data:`WIDTH` numbers (raises on a malformed state)."""
    if len(state.win) != 18 or len(state.hours) != 24 or len(state.weekdays) != 7:
        raise ValueError("actor state has windows or histograms of the wrong length")
    row = [
        *_row_scalars(state),
        role_code,
        len(state.ips),
        len(state.devices),
        len(state.fields_seen),
        len(state.recent_resources),
        len(state.pairs),
        len(state.pairs_24h),
        len(state.subject_writes_24h),
        len(state.risk_evidence),
    ]
    row.extend(state.win)
    row.extend(state.hours)
    row.extend(state.weekdays)
    _pad(row, [v for entry in state.ips for v in entry], 2 * MAX_IPS, "IP numbers")
    _pad(row, [v for entry in state.devices for v in entry], 2 * MAX_DEVICES, "devices")
    _pad(row, state.fields_seen, MAX_FIELDS_SEEN, "fields")
    _pad(row, state.recent_resources, RECENT_RESOURCES, "recent resources")
    _pad(row, [v for item in state.pairs.items() for v in item], 2 * MAX_PAIR_ENTRIES, "pairs")
    _pad(
        row,
        [v for key, entry in state.pairs_24h.items() for v in (key, *entry)],
        4 * MAX_PAIRS_24H,
        "day pairs",
    )
    _pad(
        row,
        [v for key, entry in state.subject_writes_24h.items() for v in (key, *entry)],
        3 * MAX_SUBJECTS_24H,
        "subjects",
    )
    _pad(row, [v for entry in state.risk_evidence for v in entry], 3 * RISK_EVIDENCE, "evidence")
    if len(row) != WIDTH:
        raise ValueError("actor state has malformed IP, device or pair entries")
    return row


def pack_states(states: Sequence[ActorState], role_codes: dict[str, int]) -> np.ndarray:
    """The states as a ``(len(states), WIDTH)`` float64 matrix; each ``state.role`` gets a code
    in ``role_codes`` (added when new)."""
    matrix = np.empty((len(states), WIDTH), dtype=np.float64)
    for i, state in enumerate(states):
        code = role_codes.setdefault(state.role, len(role_codes))
        # Row by row: np.array(list of rows) is twice as slow (it first works out the shape).
        matrix[i] = _state_row(state, code)
    return matrix


class RoleTable:
    """Role profiles as rows of numbers for the kernel, and the per-event look-ups of
    :func:`pack_events` (a role's share of a pair and of a set of fields, a resource type's
    hash prefix), cached: the same few hundred combinations recur in every batch, and looking
    them up again was a tenth of packing. Each cache is cleared when it reaches
    :attr:`CACHE_LIMIT` entries, so hostile input (endless new names) cannot grow it."""

    CACHE_LIMIT = 100_000

    def __init__(
        self,
        peers: PeerBaseline,
        risk_references: Mapping[str, float] | None = None,
        default_risk_reference: float = math.inf,
    ) -> None:
        self.peers = peers
        self.risk_references = dict(risk_references or {})
        self.default_risk_reference = default_risk_reference
        self._rows: dict[str, list[float]] = {}
        self._pair_terms: dict[tuple[str, str], tuple[float, float]] = {}
        self._field_rarities: dict[tuple[str, tuple[str, ...]], list[float]] = {}
        self._resource_prefixes: dict[str, int] = {}

    def row(self, role: str) -> list[float]:
        found = self._rows.get(role)
        if found is None:
            p = self.peers.profile(role)
            found = [
                *p.hour_p,
                *p.weekday_p,
                p.median_day_events,
                p.median_day_records,
                p.no_ticket_share,
                p.p99_records_per_event,
                self.risk_reference(role),
            ]
            self._rows[role] = found
        return found

    def risk_reference(self, role: str) -> float:
        """The score above which an event of ``role`` adds to its actor's risk
        (:mod:`models.risk`); infinite without a model (the training replay)."""
        return self.risk_references.get(role, self.default_risk_reference)

    def matrix(self, role_names: Sequence[str]) -> np.ndarray:
        return np.array([self.row(name) for name in role_names], dtype=np.float64).reshape(
            len(role_names), R_WIDTH
        )

    def pair_terms(self, role: str, pair: str) -> tuple[float, float]:
        """``(p, -ln p)``: the role's share of the pair (where
        :func:`~models.features.actor_pair_probability` starts) and its surprisal."""
        cache = self._pair_terms
        if len(cache) >= self.CACHE_LIMIT:
            cache.clear()
        profile = self.peers.profile(role)
        p = profile.pair_p.get(pair, profile.unseen_p)
        found = cache[role, pair] = (p, -math.log(p))
        return found

    def field_rarities(self, role: str, fields: tuple[str, ...]) -> list[float]:
        """``-ln`` of the role's share of each field (as :func:`~models.features.role_rarities`)."""
        cache = self._field_rarities
        if len(cache) >= self.CACHE_LIMIT:
            cache.clear()
        profile = self.peers.profile(role)
        shares, unseen, log = profile.field_p, profile.unseen_p, math.log
        found = cache[role, fields] = [-log(shares.get(name, unseen)) for name in fields]
        return found

    def resource_prefix(self, resource_type: str) -> int:
        """CRC-32 of ``"<resource type>/"``, to continue with the resource id (zlib's crc32
        takes a running value, so ``crc32(id, prefix) == crc32(type + "/" + id)``)."""
        cache = self._resource_prefixes
        if len(cache) >= self.CACHE_LIMIT:
            cache.clear()
        found = cache[resource_type] = crc32(f"{resource_type}/".encode())
        return found


def pack_events(
    events: Sequence[AccessEvent],
    slots: Mapping[str, int],
    role_codes: dict[str, int],
    roles: RoleTable,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(event matrix, field hashes, field rarities)`` for :func:`run_waves`.

    What needs a string look-up is done here, once per event: the actor's slot, the role code,
    the role's share of the (action, resource type) pair and ``-ln`` of its share of each
    returned field, and the hash of the resource (as :func:`models.state.advance_windows`).
    """
    flat: list = []  # E_WIDTH numbers per event (one flat list converts 2x faster)
    field_hashes: list[int] = []
    field_rarities: list[float] = []
    pair_cache, pair_terms = roles._pair_terms, roles.pair_terms
    field_cache, rarities_of = roles._field_rarities, roles.field_rarities
    prefix_cache, prefix_of = roles._resource_prefixes, roles.resource_prefix
    add = flat.extend
    for event in events:
        role = event.actor_role
        pair = event.pair
        terms = pair_cache.get((role, pair)) or pair_terms(role, pair)
        start = len(field_hashes)
        fields = event.fields
        if fields:
            field_hashes.extend(event.field_hashes)
            field_rarities.extend(field_cache.get((role, fields)) or rarities_of(role, fields))
        resource_type = event.resource_type
        prefix = prefix_cache.get(resource_type)
        if prefix is None:
            prefix = prefix_of(resource_type)
        ip, device = event.ip_hash, event.device_hash
        add(
            (
                slots[event.actor_id],
                role_codes.setdefault(role, len(role_codes)),
                event.ts,
                event.record_count,
                event.pair_hash,
                1.0 if event.ticket_id else 0.0,
                1.0 if event.outcome == "success" else 0.0,
                # models.events.stable_hash(f"{type}/{id or type}"), from the cached prefix
                crc32((event.resource_id or resource_type).encode(), prefix),
                NO_HASH if ip is None else ip,
                NO_HASH if device is None else device,
                *terms,  # E_P_ROLE_PAIR, E_PAIR_RARITY
                start,
                len(field_hashes),
                event.subject_hash,  # NO_SUBJECT (-1) is NO_HASH
                1.0 if event.is_write else 0.0,
                event.role_pulse,
                event.risk_weight,
            )
        )
    return (
        np.array(flat, dtype=np.float64).reshape(len(events), E_WIDTH),
        np.array(field_hashes, dtype=np.float64),
        np.array(field_rarities, dtype=np.float64),
    )


# --- kernel (numba) --------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _find(s, r, start, count, stride, key):  # pragma: no cover - compiled
    for i in range(count):
        if s[r, start + stride * i] == key:
            return i
    return -1


@njit(cache=True, nogil=True)
def _delete(s, r, start, count, stride, index):  # pragma: no cover - compiled
    """Remove entry ``index`` of a list of ``count`` entries, keeping the order (zeros after)."""
    for i in range(index, count - 1):
        for k in range(stride):
            s[r, start + stride * i + k] = s[r, start + stride * (i + 1) + k]
    for k in range(stride):
        s[r, start + stride * (count - 1) + k] = 0.0


@njit(cache=True, nogil=True)
def _roll_day(s, r, day):  # pragma: no cover - compiled
    if s[r, DAY_CLEAN_EVENTS] > 0:
        s[r, ACTIVE_DAYS] += 1.0
        if s[r, ACTIVE_DAYS] == 1:
            s[r, EWMA_DAY_EVENTS] = s[r, DAY_CLEAN_EVENTS]
            s[r, EWMA_DAY_RECORDS] = s[r, DAY_CLEAN_RECORDS]
        else:
            a = DAILY_EWMA_ALPHA
            s[r, EWMA_DAY_EVENTS] += a * (s[r, DAY_CLEAN_EVENTS] - s[r, EWMA_DAY_EVENTS])
            s[r, EWMA_DAY_RECORDS] += a * (s[r, DAY_CLEAN_RECORDS] - s[r, EWMA_DAY_RECORDS])
    s[r, DAY] = day
    s[r, DAY_EVENTS] = 0.0
    s[r, DAY_CLEAN_EVENTS] = 0.0
    s[r, DAY_CLEAN_RECORDS] = 0.0


@njit(cache=True, nogil=True)
def _count_keyed(s, r, start, count_at, cap, key, ts):  # pragma: no cover - compiled
    """models.state._count_pair on the (key, decayed count, as of) list at ``start``."""
    n = int(s[r, count_at])
    i = _find(s, r, start, n, 3, key)
    if i < 0:
        if n >= cap:
            oldest = 0  # the least recently counted, the first of equals (dict order)
            for k in range(1, n):
                if s[r, start + 3 * k + 2] < s[r, start + 3 * oldest + 2]:
                    oldest = k
            _delete(s, r, start, n, 3, oldest)
            n -= 1
        s[r, start + 3 * n] = key
        s[r, start + 3 * n + 1] = 1.0
        s[r, start + 3 * n + 2] = ts
        s[r, count_at] = n + 1
        return
    at = start + 3 * i
    dt = ts - s[r, at + 2]
    if dt >= 0:
        s[r, at + 1] = s[r, at + 1] * math.exp(-dt / _TAU_24H) + 1.0
        s[r, at + 2] = ts
    else:
        s[r, at + 1] += math.exp(dt / _TAU_24H)


@njit(cache=True, nogil=True)
def _count_pair_days(s, r, key, ts):  # pragma: no cover - compiled
    """models.state._count_pair_days on the (pair, count, as of, ~3-day count) list."""
    n = int(s[r, N_PAIRS_24H])
    i = _find(s, r, PAIRS_24H, n, 4, key)
    if i < 0:
        if n >= MAX_PAIRS_24H:
            oldest = 0  # the least recently counted, the first of equals (dict order)
            for k in range(1, n):
                if s[r, PAIRS_24H + 4 * k + 2] < s[r, PAIRS_24H + 4 * oldest + 2]:
                    oldest = k
            _delete(s, r, PAIRS_24H, n, 4, oldest)
            n -= 1
        at = PAIRS_24H + 4 * n
        s[r, at], s[r, at + 1], s[r, at + 2], s[r, at + 3] = key, 1.0, ts, 1.0
        s[r, N_PAIRS_24H] = n + 1
        return
    at = PAIRS_24H + 4 * i
    dt = ts - s[r, at + 2]
    if dt >= 0:
        s[r, at + 1] = s[r, at + 1] * math.exp(-dt / _TAU_24H) + 1.0
        s[r, at + 3] = s[r, at + 3] * math.exp(-dt / _TAU_3D) + 1.0
        s[r, at + 2] = ts
    else:
        s[r, at + 1] += math.exp(dt / _TAU_24H)
        s[r, at + 3] += math.exp(dt / _TAU_3D)


@njit(cache=True, nogil=True)
def _keyed_count(s, r, start, count_at, key, stride):  # pragma: no cover - compiled
    """models.state.pair_count_24h (and subject_writes_24h) on the list at ``start``."""
    i = _find(s, r, start, int(s[r, count_at]), stride, key)
    if i < 0:
        return 0.0
    value, as_of = s[r, start + stride * i + 1], s[r, start + stride * i + 2]
    if as_of == s[r, WIN_TS]:
        return value
    return value * math.exp(-(s[r, WIN_TS] - as_of) / _TAU_24H)


@njit(cache=True, nogil=True)
def _pair_count_3d(s, r, key):  # pragma: no cover - compiled
    """models.state.pair_count_3d."""
    i = _find(s, r, PAIRS_24H, int(s[r, N_PAIRS_24H]), 4, key)
    if i < 0:
        return 0.0
    value, as_of = s[r, PAIRS_24H + 4 * i + 3], s[r, PAIRS_24H + 4 * i + 2]
    if as_of == s[r, WIN_TS]:
        return value
    return value * math.exp(-(s[r, WIN_TS] - as_of) / _TAU_3D)


@njit(cache=True, nogil=True)
def _advance_windows(s, r, e, j):  # pragma: no cover - compiled
    """models.state.advance_windows; returns is_late."""
    ts = e[j, E_TS]
    if ts < s[r, WIN_TS] - LATENESS_S:
        return True
    resource = e[j, E_RESOURCE]
    n = int(s[r, N_RECENT])
    found = _find(s, r, RECENT, n, 1, resource)
    is_new_resource = found < 0
    if is_new_resource:
        if n == RECENT_RESOURCES:  # append, then drop the first
            _delete(s, r, RECENT, n, 1, 0)
            n -= 1
        s[r, RECENT + n] = resource
        s[r, N_RECENT] = n + 1
    else:
        _delete(s, r, RECENT, n, 1, found)
        s[r, RECENT + n - 1] = resource

    _count_pair_days(s, r, e[j, E_PAIR], ts)
    if e[j, E_WRITE] != 0.0 and e[j, E_SUBJECT] != NO_HASH:
        _count_keyed(s, r, SUBJECTS, N_SUBJECTS, MAX_SUBJECTS_24H, e[j, E_SUBJECT], ts)
    records = e[j, E_RECORDS]
    new_resources = 1.0 if is_new_resource and s[r, N_SEEN] > 0 else 0.0
    no_ticket = 0.0 if e[j, E_TICKET] != 0.0 else 1.0
    denied = 0.0 if e[j, E_SUCCESS] != 0.0 else 1.0
    dt = ts - s[r, WIN_TS]
    if dt >= 0:
        for t in range(3):
            tau = _TAU_10M if t == 0 else (_TAU_1H if t == 1 else _TAU_24H)
            d = math.exp(-dt / tau)
            w = WIN + t * _N_Q
            s[r, w] = s[r, w] * d + 1.0
            s[r, w + 1] = s[r, w + 1] * d + records
            s[r, w + 2] = s[r, w + 2] * d + new_resources
            s[r, w + 3] = s[r, w + 3] * d + no_ticket
            s[r, w + 4] = s[r, w + 4] * d + denied
            s[r, w + 5] = s[r, w + 5] * d + 0.0
    else:
        for t in range(3):
            tau = _TAU_10M if t == 0 else (_TAU_1H if t == 1 else _TAU_24H)
            k = math.exp(dt / tau)
            w = WIN + t * _N_Q
            s[r, w] = s[r, w] + 1.0 * k
            s[r, w + 1] = s[r, w + 1] + records * k
            s[r, w + 2] = s[r, w + 2] + new_resources * k
            s[r, w + 3] = s[r, w + 3] + no_ticket * k
            s[r, w + 4] = s[r, w + 4] + denied * k
            s[r, w + 5] = s[r, w + 5] + 0.0 * k
    if dt > 0:
        s[r, WIN_TS] = ts
    day = ts // DAY_S  # a float, as int(ts // DAY_S) in Python
    if day > s[r, DAY]:
        _roll_day(s, r, day)
    if day == s[r, DAY]:
        s[r, DAY_EVENTS] += 1.0
    s[r, N_SEEN] += 1.0
    if ts > s[r, LAST_TS]:
        s[r, LAST_TS] = ts
    return False


@njit(cache=True, nogil=True)
def _count_rare_access(s, r, ts):  # pragma: no cover - compiled
    dt = ts - s[r, WIN_TS]
    if dt < -LATENESS_S:
        return
    m = dt if dt < 0.0 else 0.0
    s[r, WIN + 5] += math.exp(m / _TAU_10M)
    s[r, WIN + _N_Q + 5] += math.exp(m / _TAU_1H)
    s[r, WIN + 2 * _N_Q + 5] += math.exp(m / _TAU_24H)


@njit(cache=True, nogil=True)
def _scale_counts(s, r, start, count, keep, total):  # pragma: no cover - compiled
    for i in range(count):
        s[r, start + i] = float(int(s[r, start + i]) * keep // total)


@njit(cache=True, nogil=True)
def _rebaseline(s, r, role, ts, unknown):  # pragma: no cover - compiled
    """models.state.rebaseline_for_new_role."""
    if role == s[r, ROLE] or role == unknown:
        return
    if s[r, ROLE] == unknown or ts - s[r, REBASELINED_TS] < REBASELINE_COOLDOWN_S:
        s[r, ROLE] = role
        return
    s[r, ROLE] = role
    s[r, REBASELINED_TS] = ts
    if s[r, HIST_N] > REBASELINE_EVENTS:
        keep, total = REBASELINE_EVENTS, int(s[r, HIST_N])
        s[r, HIST_N] = keep
        s[r, NO_TICKET_N] = float(int(s[r, NO_TICKET_N]) * keep // total)
        _scale_counts(s, r, HOURS, 24, keep, total)
        _scale_counts(s, r, WEEKDAYS, 7, keep, total)
        _scale_pairs(s, r, keep, total)
    if s[r, ACTIVE_DAYS] > REBASELINE_DAYS:
        s[r, ACTIVE_DAYS] = REBASELINE_DAYS


@njit(cache=True, nogil=True)
def _scale_pairs(s, r, keep, total):  # pragma: no cover - compiled
    """pairs = {k: v * keep // total for k, v in pairs.items() if v * keep // total}."""
    n = int(s[r, N_PAIRS])
    kept = 0
    for i in range(n):
        value = int(s[r, PAIRS + 2 * i + 1]) * keep // total
        if value:
            s[r, PAIRS + 2 * kept] = s[r, PAIRS + 2 * i]
            s[r, PAIRS + 2 * kept + 1] = value
            kept += 1
    for i in range(kept, n):
        s[r, PAIRS + 2 * i] = 0.0
        s[r, PAIRS + 2 * i + 1] = 0.0
    s[r, N_PAIRS] = kept


@njit(cache=True, nogil=True)
def _remember(s, r, start, count_at, cap, value, ts):  # pragma: no cover - compiled
    n = int(s[r, count_at])
    i = _find(s, r, start, n, 2, value)
    if i >= 0:
        s[r, start + 2 * i + 1] = ts
        return
    if n < cap:
        s[r, start + 2 * n] = value
        s[r, start + 2 * n + 1] = ts
        s[r, count_at] = n + 1
        return
    # Appended, then the least recently seen (the first of equals) forgotten.
    oldest = 0
    for k in range(1, n):
        if s[r, start + 2 * k + 1] < s[r, start + 2 * oldest + 1]:
            oldest = k
    if ts < s[r, start + 2 * oldest + 1]:
        return  # the new entry itself is the oldest
    _delete(s, r, start, n, 2, oldest)
    s[r, start + 2 * (n - 1)] = value
    s[r, start + 2 * (n - 1) + 1] = ts


@njit(cache=True, nogil=True)
def _is_known(s, r, start, count_at, value):  # pragma: no cover - compiled
    if value == NO_HASH:
        return True
    return _find(s, r, start, int(s[r, count_at]), 2, value) >= 0


@njit(cache=True, nogil=True)
def _halve(s, r):  # pragma: no cover - compiled
    s[r, HIST_N] = float(int(s[r, HIST_N]) // 2)
    s[r, NO_TICKET_N] = float(int(s[r, NO_TICKET_N]) // 2)
    for i in range(24):
        s[r, HOURS + i] = float(int(s[r, HOURS + i]) // 2)
    for i in range(7):
        s[r, WEEKDAYS + i] = float(int(s[r, WEEKDAYS + i]) // 2)
    _scale_pairs(s, r, 1, 2)


@njit(cache=True, nogil=True)
def _absorb(s, r, e, j, field_hashes):  # pragma: no cover - compiled
    """models.state.absorb_into_baseline."""
    s[r, HIST_N] += 1.0
    pair = e[j, E_PAIR]
    n = int(s[r, N_PAIRS])
    i = _find(s, r, PAIRS, n, 2, pair)
    if i >= 0:
        s[r, PAIRS + 2 * i + 1] += 1.0
    elif n < MAX_PAIRS:
        s[r, PAIRS + 2 * n] = pair
        s[r, PAIRS + 2 * n + 1] = 1.0
        s[r, N_PAIRS] = n + 1
    else:
        other = _find(s, r, PAIRS, n, 2, float(OTHER_PAIRS))
        if other >= 0:
            s[r, PAIRS + 2 * other + 1] += 1.0
        else:
            s[r, PAIRS + 2 * n] = OTHER_PAIRS
            s[r, PAIRS + 2 * n + 1] = 1.0
            s[r, N_PAIRS] = n + 1
    seen_at = int(e[j, E_TS])
    day = seen_at // DAY_S
    s[r, HOURS + (seen_at % DAY_S) // 3600] += 1.0
    s[r, WEEKDAYS + (day + 3) % 7] += 1.0
    if e[j, E_TICKET] == 0.0:
        s[r, NO_TICKET_N] += 1.0
    if e[j, E_IP] != NO_HASH:
        _remember(s, r, IPS, N_IPS, MAX_IPS, e[j, E_IP], float(seen_at))
    if e[j, E_DEVICE] != NO_HASH:
        _remember(s, r, DEVICES, N_DEVICES, MAX_DEVICES, e[j, E_DEVICE], float(seen_at))
    for f in range(int(e[j, E_FIELDS_FROM]), int(e[j, E_FIELDS_TO])):
        n = int(s[r, N_FIELDS])
        if n < MAX_FIELDS_SEEN and _find(s, r, FIELDS, n, 1, field_hashes[f]) < 0:
            s[r, FIELDS + n] = field_hashes[f]
            s[r, N_FIELDS] = n + 1
    if day == s[r, DAY]:
        s[r, DAY_CLEAN_EVENTS] += 1.0
        s[r, DAY_CLEAN_RECORDS] += e[j, E_RECORDS]
    if s[r, HIST_N] >= HISTOGRAM_HALVING_AT:
        _halve(s, r)


@njit(cache=True, nogil=True)
def _typical_day(s, r, role_median, actor_value):  # pragma: no cover - compiled
    days = s[r, ACTIVE_DAYS]
    return (actor_value * days + role_median * PRIOR_DAYS) / (days + PRIOR_DAYS)


@njit(cache=True, nogil=True)
def _clip(value):  # pragma: no cover - compiled
    return value if value > 0.0 else 0.0


@njit(cache=True, nogil=True)
def _max_rarity(field_rarities, f_from, f_to):  # pragma: no cover - compiled
    """The largest of the event's field rarities (0 without fields), as role_rarities."""
    field_rarity = 0.0
    if f_to > f_from:
        field_rarity = field_rarities[f_from]
        for f in range(f_from + 1, f_to):
            if field_rarities[f] > field_rarity:
                field_rarity = field_rarities[f]
    return field_rarity


@njit(cache=True, nogil=True)
def _time_novelty(s, r, roles, role, ts):  # pragma: no cover - compiled
    """models.features.time_novelty."""
    seconds = int(ts)
    hour = (seconds % DAY_S) // 3600
    weekday = (seconds // DAY_S + 3) % 7
    denominator = s[r, HIST_N] + PRIOR_EVENTS
    return -math.log(
        (s[r, HOURS + hour] + PRIOR_EVENTS * roles[role, R_HOUR + hour]) / denominator
    ) - math.log(
        (s[r, WEEKDAYS + weekday] + PRIOR_EVENTS * roles[role, R_WEEKDAY + weekday]) / denominator
    )


@njit(cache=True, nogil=True)
def _observe(s, r, e, j, field_hashes, field_rarities, roles, x, xi):  # pragma: no cover
    """models.detector.observe after the re-baseline: the feature row into ``x[xi]``;
    returns the event's FLAG_LATE / FLAG_RARE bits."""
    log = math.log
    role = int(e[j, E_ROLE])
    hist_n = s[r, HIST_N]
    # actor_pair_probability (before the windows advance)
    i = _find(s, r, PAIRS, int(s[r, N_PAIRS]), 2, e[j, E_PAIR])
    count = s[r, PAIRS + 2 * i + 1] if i >= 0 else 0.0
    p_pair = (count + PRIOR_EVENTS * e[j, E_P_ROLE_PAIR]) / (hist_n + PRIOR_EVENTS)
    # access_surprise
    denominator = hist_n + PRIOR_EVENTS
    surprise = -log(p_pair)
    f_from, f_to = int(e[j, E_FIELDS_FROM]), int(e[j, E_FIELDS_TO])
    n_fields = int(s[r, N_FIELDS])
    if f_to > f_from:
        field_surprise = 0.0
        for f in range(f_from, f_to):
            unseen = _find(s, r, FIELDS, n_fields, 1, field_hashes[f]) < 0
            if unseen and field_rarities[f] > field_surprise:
                field_surprise = field_rarities[f]
        surprise += field_surprise
    no_ticket_share_prior = PRIOR_EVENTS * roles[role, R_NO_TICKET_SHARE]
    if e[j, E_TICKET] == 0.0:
        share = (s[r, NO_TICKET_N] + no_ticket_share_prior) / denominator
        surprise -= log(PROBABILITY_FLOOR if share < PROBABILITY_FLOOR else share)
    is_late = _advance_windows(s, r, e, j)
    # role_rarities and is_rare_access
    pair_rarity = e[j, E_PAIR_RARITY]
    field_rarity = _max_rarity(field_rarities, f_from, f_to)
    is_rare = surprise > RARE_SURPRISAL or pair_rarity + field_rarity > RARE_SURPRISAL

    # feature_inputs, in FEATURE_INPUTS order (state now includes the event in its windows)
    hist_n = s[r, HIST_N]
    mature = hist_n >= MATURE_EVENTS
    day_events_typ = _typical_day(s, r, roles[role, R_MEDIAN_DAY_EVENTS], s[r, EWMA_DAY_EVENTS])
    day_records_typ = _typical_day(s, r, roles[role, R_MEDIAN_DAY_RECORDS], s[r, EWMA_DAY_RECORDS])
    w10, w1h, w24 = WIN, WIN + _N_Q, WIN + 2 * _N_Q
    rare_now = 1.0 if is_rare else 0.0
    values = feature_values_compiled(
        e[j, E_RECORDS],
        roles[role, R_P99_RECORDS],
        s[r, w10],
        s[r, w1h],
        s[r, w24],
        s[r, w1h + 1],
        s[r, w1h + 2],
        s[r, w1h + 3],
        s[r, w24 + 3],
        s[r, w1h + 4],
        s[r, w1h + 5] + rare_now,
        s[r, w24 + 5] + rare_now,
        _keyed_count(s, r, PAIRS_24H, N_PAIRS_24H, e[j, E_PAIR], 4),
        _pair_count_3d(s, r, e[j, E_PAIR]),
        day_events_typ / _WORKING_HOURS_PER_DAY,
        day_records_typ / _WORKING_HOURS_PER_DAY,
        day_events_typ,
        (s[r, NO_TICKET_N] + PRIOR_EVENTS * roles[role, R_NO_TICKET_SHARE])
        / (hist_n + PRIOR_EVENTS),
        p_pair,
        pair_rarity,
        field_rarity,
        _time_novelty(s, r, roles, role, e[j, E_TS]),
        surprise,
        1.0 if mature and not _is_known(s, r, IPS, N_IPS, e[j, E_IP]) else 0.0,
        1.0 if mature and not _is_known(s, r, DEVICES, N_DEVICES, e[j, E_DEVICE]) else 0.0,
        _keyed_count(s, r, SUBJECTS, N_SUBJECTS, e[j, E_SUBJECT], 3)
        if e[j, E_WRITE] != 0.0
        else 0.0,
        e[j, E_PULSE],
    )
    for c in range(N_FEATURES):
        x[xi, c] = values[c]
    return (FLAG_LATE if is_late else 0) | (FLAG_RARE if is_rare else 0)


@njit(cache=True, nogil=True)
def wave_order(slots):  # pragma: no cover - compiled
    """``(order, starts)``: event indices wave by wave (wave k = each actor's k-th event, input
    order within a wave) and where each wave starts in ``order`` (one more entry at the end)."""
    n = slots.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(1, np.int64)
    seen = np.zeros(int(slots.max()) + 1, np.int64)
    k = np.empty(n, np.int64)
    n_waves = 0
    for j in range(n):
        k[j] = seen[slots[j]]
        seen[slots[j]] += 1
        if k[j] + 1 > n_waves:
            n_waves = k[j] + 1
    starts = np.zeros(n_waves + 1, np.int64)
    for j in range(n):
        starts[k[j] + 1] += 1
    for w in range(n_waves):
        starts[w + 1] += starts[w]
    fill = starts[:-1].copy()
    order = np.empty(n, np.int64)
    for j in range(n):
        order[fill[k[j]]] = j
        fill[k[j]] += 1
    return order, starts


class KernelBatch(NamedTuple):
    """A packed batch as :func:`run_waves` reads it (see :class:`PackedBatch`)."""

    states: np.ndarray  # float64 (actors, WIDTH): the state rows
    events: np.ndarray  # float64 (events, E_WIDTH): the event rows
    field_hashes: np.ndarray  # int64: every event's returned fields, concatenated
    field_rarities: np.ndarray  # float64: the role's rarity of each of those fields
    roles: np.ndarray  # float64 (roles, R_WIDTH): the peer profiles
    order: np.ndarray  # int64: event indices, wave by wave
    starts: np.ndarray  # int64: where each wave starts in ``order``
    unknown_role: int


class ForestLayout(NamedTuple):
    """The forest's traversal arrays (:attr:`models.forest.ForestArrays.layout`)."""

    child: np.ndarray
    feature: np.ndarray
    threshold32: np.ndarray
    tree_depth: np.ndarray
    node_value: np.ndarray
    roots: np.ndarray


class Limits(NamedTuple):
    """The score's normaliser and the decision limits."""

    denominator: float  # c(max_samples): score = 2 ** (-depth / denominator)
    alert_threshold: float
    cusum_reference: float
    cusum_limit: float
    risk_day_limit: float  # models.risk.RiskLimits
    risk_week_limit: float
    risk_cooldown_s: float


class KernelOutput(NamedTuple):
    """What :func:`run_waves` writes, indexed by event."""

    x: np.ndarray  # float64 (events, features)
    scores: np.ndarray  # float64
    flags: np.ndarray  # FLAG_* bits


@njit(cache=True, nogil=True)
def _learn(s, e, j, field_hashes, flags):  # pragma: no cover - compiled
    """An unflagged event joins its actor's baseline (and, if rare, the rare-access count)."""
    r = int(e[j, E_SLOT])
    _absorb(s, r, e, j, field_hashes)
    if flags[j] & FLAG_RARE and not flags[j] & FLAG_LATE:
        _count_rare_access(s, r, e[j, E_TS])


@njit(cache=True, nogil=True)
def _judge(s, e, j, value, roles, limits):  # pragma: no cover - compiled
    """Advance the actor's CUSUM by the event's score: FLAG_POINT or FLAG_SUSTAINED; an
    unflagged event adds its excess to the actor's risk, with FLAG_RISK when that risk is due
    an alert (models.risk.risk_due)."""
    r = int(e[j, E_SLOT])
    ts = e[j, E_TS]
    dt = ts - s[r, CUSUM_TS]
    previous = s[r, CUSUM]
    decayed = previous * math.exp(-dt / CUSUM_TAU_S) if dt > 0 else previous
    cusum = decayed + value - limits.cusum_reference
    s[r, CUSUM] = cusum if cusum > 0.0 else 0.0
    if ts > s[r, CUSUM_TS]:
        s[r, CUSUM_TS] = ts
    flag = 0
    if value >= limits.alert_threshold:
        flag = FLAG_POINT
    elif s[r, CUSUM] >= limits.cusum_limit:
        flag = FLAG_SUSTAINED
    excess = min(value - roles[int(e[j, E_ROLE]), R_RISK_REFERENCE], RISK_EXCESS_CAP)
    excess *= e[j, E_RISK_WEIGHT]
    if flag == 0 and excess > 0.0:
        _add_risk(s, r, ts, value, excess, e[j, E_PAIR])
        if _risk_due(s, r, ts, limits):
            flag |= FLAG_RISK
    return flag


@njit(cache=True, nogil=True)
def _add_risk(s, r, ts, value, excess, pair):  # pragma: no cover - compiled
    """models.risk.add_risk."""
    dt = ts - s[r, RISK_TS]
    day, last_day = int(ts // DAY_S), int(s[r, RISK_TS] // DAY_S)
    if dt >= 0:
        s[r, RISK_DAY] = s[r, RISK_DAY] * math.exp(-dt / RISK_TAU_DAY_S) + excess
        s[r, RISK_WEEK] = s[r, RISK_WEEK] * math.exp(-dt / RISK_TAU_WEEK_S) + excess
        shift = day - last_day
        days = 0
        if shift < RISK_DAYS_KEPT:
            days = (int(s[r, RISK_DAYS]) << shift) & _RISK_DAYS_MASK
        s[r, RISK_DAYS] = days | 1
        s[r, RISK_TS] = ts
    else:
        s[r, RISK_DAY] += excess * math.exp(dt / RISK_TAU_DAY_S)
        s[r, RISK_WEEK] += excess * math.exp(dt / RISK_TAU_WEEK_S)
        back = last_day - day
        if back < RISK_DAYS_KEPT:
            s[r, RISK_DAYS] = int(s[r, RISK_DAYS]) | (1 << back)
    _keep_evidence(s, r, int(ts), int(value * 1e6), pair)


@njit(cache=True, nogil=True)
def _keep_evidence(s, r, seconds, micro, pair):  # pragma: no cover - compiled
    """models.risk._keep_evidence."""
    n = int(s[r, N_EVIDENCE])
    if n < RISK_EVIDENCE:
        at = EVIDENCE + 3 * n
        s[r, at], s[r, at + 1], s[r, at + 2] = seconds, micro, pair
        s[r, N_EVIDENCE] = n + 1
        return
    cutoff = seconds - _EVIDENCE_HORIZON_S
    weakest = 0
    for k in range(1, n):
        if _evidence_rank_less(s, r, k, weakest, cutoff):
            weakest = k
    at = EVIDENCE + 3 * weakest
    if s[r, at] < cutoff or micro > s[r, at + 1]:
        s[r, at], s[r, at + 1], s[r, at + 2] = seconds, micro, pair


@njit(cache=True, nogil=True)
def _evidence_rank_less(s, r, a, b, cutoff):  # pragma: no cover - compiled
    """models.risk._evidence_rank(entry a) < _evidence_rank(entry b)."""
    ta, tb = s[r, EVIDENCE + 3 * a], s[r, EVIDENCE + 3 * b]
    stale_a, stale_b = ta < cutoff, tb < cutoff
    if stale_a != stale_b:
        return stale_a
    if stale_a:
        return ta < tb
    return s[r, EVIDENCE + 3 * a + 1] < s[r, EVIDENCE + 3 * b + 1]


@njit(cache=True, nogil=True)
def _risk_due(s, r, ts, limits):  # pragma: no cover - compiled
    """models.risk.risk_due."""
    last = s[r, RISK_ALERT_TS]
    if last > 0.0 and ts - last < limits.risk_cooldown_s:
        return False
    if s[r, RISK_DAY] >= limits.risk_day_limit or s[r, RISK_WEEK] >= limits.risk_week_limit:
        s[r, RISK_ALERT_TS] = ts
        return True
    return False


@njit(cache=True, nogil=True)
def run_waves(batch, first_wave, detect, forest, limits, out):  # pragma: no cover - compiled
    """Process waves from ``first_wave``; return the index of the next wave to process.

    ``batch`` is a :class:`KernelBatch`, ``forest`` a :class:`ForestLayout`, ``limits`` a
    :class:`Limits` and ``out`` a :class:`KernelOutput` (typed named tuples, which numba
    passes by field). ``detect`` False is the training replay: no scores, every event feeds
    the baseline. With ``detect`` the forest scores each wave; an event at or above the alert
    threshold (FLAG_POINT) or whose CUSUM reaches its limit (FLAG_SUSTAINED) is flagged and
    kept out of the baseline; one that makes its actor's risk due an alert gets FLAG_RISK
    (and still feeds the baseline); the function returns after a wave with any of them.
    """
    s, e, order, starts = batch.states, batch.events, batch.order, batch.starts
    field_hashes, field_rarities, roles = batch.field_hashes, batch.field_rarities, batch.roles
    x, scores, flags = out.x, out.scores, out.flags
    n_features = x.shape[1]
    n_waves = starts.shape[0] - 1
    x32 = np.empty((order.shape[0], n_features), np.float32)
    depths = np.empty(order.shape[0], np.float64)
    for w in range(first_wave, n_waves):
        a, b = starts[w], starts[w + 1]
        for q in range(a, b):
            j = order[q]
            r = int(e[j, E_SLOT])
            _rebaseline(s, r, e[j, E_ROLE], e[j, E_TS], batch.unknown_role)
            flags[j] = _observe(s, r, e, j, field_hashes, field_rarities, roles, x, j)
        if not detect:
            for q in range(a, b):
                _learn(s, e, order[q], field_hashes, flags)
            continue
        m = b - a
        for q in range(m):
            j = order[a + q]
            for c in range(n_features):
                x32[q, c] = x[j, c]
        _walk_depths(
            x32[:m],
            forest.child,
            forest.feature,
            forest.threshold32,
            forest.tree_depth,
            forest.node_value,
            forest.roots,
            depths[:m],
        )
        any_flagged = False
        for q in range(m):
            j = order[a + q]
            value = isolation_score(depths[q], limits.denominator)
            scores[j] = value
            flag = _judge(s, e, j, value, roles, limits)
            if flag:
                flags[j] |= flag
                any_flagged = True
            if not flag & _KEPT_OUT:
                _learn(s, e, j, field_hashes, flags)
        if any_flagged:
            return w + 1
    return n_waves


# --- batches (Python) ------------------------------------------------------------------------
class PackedBatch:
    """A batch of events and its actors' states, packed for :func:`run_waves`.

    ``actors`` are the batch's states in slot order (new actors get :func:`new_state` from
    their first event, and are added to the caller's mapping); :meth:`unpack` writes the
    kernel's rows back into them.
    """

    def __init__(
        self,
        events: Sequence[AccessEvent],
        states: MutableMapping[str, ActorState],
        roles: RoleTable,
    ) -> None:
        slots: dict[str, int] = {}
        actors: list[ActorState] = []
        for event in events:
            if event.actor_id not in slots:
                state = states.get(event.actor_id)
                if state is None:
                    state = new_state(event)
                    states[event.actor_id] = state
                slots[event.actor_id] = len(actors)
                actors.append(state)
        role_codes = {UNKNOWN_ROLE: UNKNOWN_ROLE_CODE}
        self.actors = actors
        self.slots = slots
        self.states = pack_states(actors, role_codes)
        self.events, self.field_hashes, self.field_rarities = pack_events(
            events, slots, role_codes, roles
        )
        self.role_names = list(role_codes)
        self.roles = roles.matrix(self.role_names)
        self.order, self.starts = wave_order(self.events[:, E_SLOT].astype(np.int64))

    @property
    def n_waves(self) -> int:
        return len(self.starts) - 1

    def run(
        self,
        first_wave: int,
        x: np.ndarray,
        scores: np.ndarray,
        flags: np.ndarray,
        detection: Detection | None = None,
    ) -> int:
        """:func:`run_waves` on this batch from ``first_wave``; return the next wave to run.
        Without ``detection`` every event feeds the baseline (the training replay)."""
        forest = _NO_FOREST if detection is None else detection.forest_layout
        limits = _NO_LIMITS if detection is None else detection.limits
        batch = KernelBatch(
            self.states,
            self.events,
            self.field_hashes,
            self.field_rarities,
            self.roles,
            self.order,
            self.starts,
            UNKNOWN_ROLE_CODE,
        )
        return run_waves(
            batch, first_wave, detection is not None, forest, limits, KernelOutput(x, scores, flags)
        )

    def wave(self, index: int) -> np.ndarray:
        """Event indices of wave ``index``, in input order."""
        return self.order[self.starts[index] : self.starts[index + 1]]

    def unpack(self, slots: Sequence[int] | None = None) -> None:
        """Write the kernel's rows (all, or those of ``slots``) back into the states.

        Column blocks are converted for all rows at once (``astype`` + ``tolist`` is one C
        loop), which is ~4x faster than converting row by row.
        """
        if slots is None:
            actors, s = self.actors, self.states
        else:
            actors, s = [self.actors[slot] for slot in slots], self.states[slots]
        if not actors:
            return
        n = len(actors)
        ints = s.astype(np.int64)
        scalars = s[:, :WIN].tolist()
        int_scalars = ints[:, :WIN].tolist()
        win = s[:, WIN:HOURS].tolist()
        hours = ints[:, HOURS:WEEKDAYS].tolist()
        weekdays = ints[:, WEEKDAYS:IPS].tolist()
        ips = ints[:, IPS:DEVICES].reshape(n, MAX_IPS, 2).tolist()
        devices = ints[:, DEVICES:FIELDS].reshape(n, MAX_DEVICES, 2).tolist()
        fields = ints[:, FIELDS:RECENT].tolist()
        recent = ints[:, RECENT:PAIRS].tolist()
        pair_keys = ints[:, PAIRS:PAIRS_24H:2].tolist()
        pair_counts = ints[:, PAIRS + 1 : PAIRS_24H : 2].tolist()
        day_keys = ints[:, PAIRS_24H:SUBJECTS:4].tolist()
        day_values = s[:, PAIRS_24H:SUBJECTS].reshape(n, MAX_PAIRS_24H, 4)[:, :, 1:].tolist()
        subject_keys = ints[:, SUBJECTS:EVIDENCE:3].tolist()
        subject_values = s[:, SUBJECTS:EVIDENCE].reshape(n, MAX_SUBJECTS_24H, 3)[:, :, 1:].tolist()
        evidence = ints[:, EVIDENCE:WIDTH].reshape(n, RISK_EVIDENCE, 3).tolist()
        role_names = self.role_names
        for i, state in enumerate(actors):
            f, k = scalars[i], int_scalars[i]
            for column, name in _SCALAR_COLUMNS:
                setattr(state, name, k[column] if name in _INTEGER_SCALARS else f[column])
            state.role = role_names[k[ROLE]]
            state.win = win[i]
            state.hours = hours[i]
            state.weekdays = weekdays[i]
            state.ips = ips[i][: k[N_IPS]]
            state.devices = devices[i][: k[N_DEVICES]]
            state.fields_seen = fields[i][: k[N_FIELDS]]
            state.recent_resources = recent[i][: k[N_RECENT]]
            n_pairs = k[N_PAIRS]
            state.pairs = dict(zip(pair_keys[i][:n_pairs], pair_counts[i][:n_pairs], strict=True))
            n_pairs = k[N_PAIRS_24H]
            state.pairs_24h = dict(zip(day_keys[i][:n_pairs], day_values[i][:n_pairs], strict=True))
            n_subjects = k[N_SUBJECTS]
            state.subject_writes_24h = dict(
                zip(subject_keys[i][:n_subjects], subject_values[i][:n_subjects], strict=True)
            )
            state.risk_evidence = evidence[i][: k[N_EVIDENCE]]


@dataclass(frozen=True)
class Detection:
    """What :func:`run_waves` needs to score and decide: the forest's traversal layout (see
    :attr:`models.forest.ForestArrays.layout`) and the score limits."""

    forest_layout: ForestLayout
    limits: Limits

    @classmethod
    def of(
        cls,
        forest: ForestArrays,
        threshold: float,
        cusum_reference: float,
        cusum_limit: float,
        risk: RiskLimits,
    ) -> Detection:
        child, feature, threshold32, tree_depth = forest.layout
        return cls(
            ForestLayout(child, feature, threshold32, tree_depth, forest.node_value, forest.roots),
            Limits(
                float(forest.denominator),
                threshold,
                cusum_reference,
                cusum_limit,
                risk.day_limit,
                risk.week_limit,
                risk.cooldown_s,
            ),
        )


_NO_FOREST = ForestLayout(
    np.zeros(2, np.int32),
    np.zeros(1, np.int32),
    np.zeros(1, np.float32),
    np.zeros(0, np.int32),
    np.zeros(1, np.float64),
    np.zeros(0, np.int32),
)
_NO_LIMITS = Limits(1.0, 1.0, 1.0, 1.0, math.inf, math.inf, 0.0)


def featurize(
    events: Sequence[AccessEvent], states: MutableMapping[str, ActorState], roles: RoleTable
) -> np.ndarray:
    """Feature rows of ``events`` when every event feeds the baseline (the training replay:
    no model yet). ``states`` are updated in place."""
    n_features = len(FEATURE_NAMES)
    if not events:
        return np.zeros((0, n_features), dtype=np.float64)
    batch = PackedBatch(events, states, roles)
    x = np.empty((len(events), n_features), dtype=np.float64)
    n = len(events)
    batch.run(0, x, np.empty(n, dtype=np.float64), np.zeros(n, dtype=np.int64))
    batch.unpack()
    return x
