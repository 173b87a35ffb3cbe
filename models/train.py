"""Training: replay history through the shared state/feature code, fit, calibrate, export.

The threshold is calibrated to an **alert budget** (incidents per 1,000 actor-days) on the
training replay, not to a contamination constant: the SOC says how many incidents it can
triage, and the threshold is the lowest score that keeps the replay within that budget.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest

from insiderwatch.models.artifact import save_model
from insiderwatch.models.compiled import RoleTable, featurize
from insiderwatch.models.detector import rfc3339
from insiderwatch.models.events import AccessEvent
from insiderwatch.models.features import FEATURE_NAMES, FEATURE_VERSION, FEATURES
from insiderwatch.models.forest import ForestArrays, export_forest, path_attribution, score
from insiderwatch.models.incidents import DEFAULT_ALERT_BUDGET, IncidentSettings
from insiderwatch.models.manifest import ForestSettings, Manifest, Risk, Sustained, Window
from insiderwatch.models.peers import PeerBaseline, build_peer_baseline
from insiderwatch.models.pulse import count_events, set_pulses
from insiderwatch.models.risk import (
    DEFAULT_RISK_BUDGET,
    RISK_TAU_DAY_S,
    RISK_TAU_WEEK_S,
    RiskLimits,
    calibrate_limits,
    risk_alert_count,
    risk_excess,
    risk_peaks,
    role_references,
)
from insiderwatch.models.state import DAY_S, ActorState
from insiderwatch.models.sustained import CUSUM_TAU_S, cusum_series

__all__ = [
    "featurize_history",
    "group_incidents",
    "count_incidents",
    "calibrate_threshold",
    "train_model",
]

POINT_SHARE = 0.5  # share of the budget for single-event anomalies; the rest is for sustained ones
# Scores above this training quantile feed the CUSUM. 99.98% (not 99.9%) so that a whole
# team working harder (a seasonal surge: many accesses each a little unusual) does not add
# up to a sustained alert, while a burst of clearly unusual accesses still does.
CUSUM_REFERENCE_QUANTILE = 0.9998
SCORE_QUANTILES = (0.5, 0.9, 0.99, 0.999, 0.9999)
# Entity risk (models.risk): each event's score above its role's RISK_REFERENCE_QUANTILE adds
# to the actor's risk; risk alerts spend their own budget per 1,000 actor-days, half on the
# ~24 h sum and half on the ~7 d sum, at most one per actor per RISK_COOLDOWN_S.
# DEFAULT_RISK_BUDGET is in models.risk.
RISK_REFERENCE_QUANTILE = 0.99
RISK_COOLDOWN_S = 7 * 86400.0
DEFAULT_WARMUP_DAYS = 7.0  # history replayed before fitting, while baselines form
_NEVER = 1e300  # a limit no risk reaches (JSON has no infinity)
_REPLAY_CHUNK = 20_000  # events per kernel call in the training replay


def featurize_history(
    events: Sequence[AccessEvent],
    peers: PeerBaseline,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Feature matrix of a history replay (every event feeds the baseline: no model yet)."""
    states: dict[str, ActorState] = {}
    roles = RoleTable(peers)
    parts = [np.zeros((0, len(FEATURE_NAMES)), dtype=np.float64)]
    for start in range(0, len(events), _REPLAY_CHUNK):
        chunk = events[start : start + _REPLAY_CHUNK]
        parts.append(featurize(chunk, states, roles))
        if progress is not None:
            progress(len(chunk))
    return np.concatenate(parts)


# Severity = how much shorter the average isolation path is than at the alert threshold.
# Training holds only a handful of scores above the threshold (that is what an alert budget
# means), so cuts taken from that tail collapse onto the training maximum and any new
# extreme became "critical". Path-length fractions extend past the training range instead.
SEVERITY_PATH_FRACTIONS = {"medium": 0.9, "high": 0.8, "critical": 0.7}


def severity_cuts(threshold: float) -> dict[str, float]:
    """Score cuts where the mean isolation path is 90 / 80 / 70 % of the threshold's.

    A score is ``s = 2 ** (-E[h] / c)``, so a path ``f`` times as long as the threshold's has
    score ``threshold ** f``.

    >>> {k: round(v, 3) for k, v in severity_cuts(0.73).items()}
    {'medium': 0.753, 'high': 0.777, 'critical': 0.802}
    """
    return {name: float(threshold**f) for name, f in SEVERITY_PATH_FRACTIONS.items()}


def group_incidents(
    actor_codes: np.ndarray, ts: np.ndarray, flagged: np.ndarray, settings: IncidentSettings
) -> list[list[int]]:
    """Indices of the flagged events of each incident :mod:`models.incidents` would open.

    >>> group_incidents(np.array([0, 0, 0, 1]), np.array([0., 60., 9000., 5.]),
    ...                 np.array([True, True, True, True]), IncidentSettings(gap_s=3600))
    [[0, 1], [2], [3]]
    """
    index = np.flatnonzero(flagged)
    order = index[np.lexsort((ts[index], actor_codes[index]))]
    incidents: list[list[int]] = []
    current_actor = None
    first = last = 0.0
    for i in order:
        actor, t = actor_codes[i], ts[i]
        if (
            actor != current_actor
            or t - last > settings.gap_s
            or t - first > settings.max_duration_s
        ):
            incidents.append([])
            current_actor, first = actor, t
        incidents[-1].append(int(i))
        last = t
    return incidents


def count_incidents(
    actor_codes: np.ndarray, ts: np.ndarray, flagged: np.ndarray, settings: IncidentSettings
) -> int:
    """How many incidents :func:`group_incidents` finds.

    >>> count_incidents(np.array([0, 0, 0, 1]), np.array([0., 60., 9000., 5.]),
    ...                 np.array([True, True, True, True]), IncidentSettings(gap_s=3600))
    3
    """
    return len(group_incidents(actor_codes, ts, flagged, settings))


def calibrate_threshold(
    scores: np.ndarray,
    actor_codes: np.ndarray,
    ts: np.ndarray,
    allowed_incidents: float,
    settings: IncidentSettings,
) -> float:
    """Lowest score threshold whose replay opens at most ``allowed_incidents`` incidents."""
    candidates = np.unique(scores)[::-1]  # descending
    # Only the top tail can matter; cap the search to keep training fast on big histories.
    limit = min(candidates.size, max(2000, int(allowed_incidents * 200)))
    candidates = candidates[:limit]
    lo, hi = 0, candidates.size - 1  # find the largest index still within budget
    best = 0
    while lo <= hi:
        mid = (lo + hi) // 2
        n = count_incidents(actor_codes, ts, scores >= candidates[mid], settings)
        if n <= allowed_incidents:
            best = mid
            lo = mid + 1
        else:
            hi = mid - 1
    return float(candidates[best])


def _calibrate_cusum(point_flags, cusum, actor_codes, ts, allowed, settings) -> float:
    """Lowest CUSUM limit keeping point + sustained incidents within ``allowed``."""
    candidates = np.unique(cusum[cusum > 0])[::-1]
    if candidates.size == 0:
        return float("inf")
    candidates = candidates[: max(2000, int(allowed * 200))]
    best = float("inf")
    lo, hi = 0, candidates.size - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        n = count_incidents(actor_codes, ts, point_flags | (cusum >= candidates[mid]), settings)
        if n <= allowed:
            best = float(candidates[mid])
            lo = mid + 1
        else:
            hi = mid - 1
    return best


def calibrate_risk(
    kept: Sequence[AccessEvent],
    ts: np.ndarray,
    train_scores: np.ndarray,
    budget: float,
    threshold: float,
    quantile: float = RISK_REFERENCE_QUANTILE,
    cooldown_s: float = RISK_COOLDOWN_S,
) -> Risk:
    """Role references and the ~24 h and ~7 d limits that spend ``budget`` entity-risk
    alerts per 1,000 actor-days of ``kept`` (its replay scores ``train_scores``). Events at
    or over the per-event ``threshold`` raise their own alerts and add no risk."""
    roles = [e.actor_role for e in kept]
    references, default = role_references(roles, train_scores, quantile)
    excess = risk_excess(roles, train_scores, train_scores < threshold, references, default)
    code_of: dict[str, int] = {}
    codes = np.fromiter(
        (code_of.setdefault(e.actor_id, len(code_of)) for e in kept),
        dtype=np.int64,
        count=len(kept),
    )
    actor_days = len({(e.actor_id, int(e.ts // DAY_S)) for e in kept})
    limits = calibrate_limits(codes, ts, excess, budget * actor_days / 1000.0, cooldown_s)
    day_limit, week_limit = (min(limit, _NEVER) for limit in limits)
    peaks = risk_peaks(codes, ts, excess)
    return Risk(
        budget_per_1000_actor_days=float(budget),
        reference_quantile=quantile,
        references=references,
        default_reference=default,
        day_limit=day_limit,
        week_limit=week_limit,
        cooldown_s=cooldown_s,
        tau_day_s=RISK_TAU_DAY_S,
        tau_week_s=RISK_TAU_WEEK_S,
        training_alerts=risk_alert_count(peaks, RiskLimits(day_limit, week_limit, cooldown_s)),
    )


@dataclass(frozen=True)
class _Calibration:
    threshold: float
    reference: float  # CUSUM reference score
    cusum_limit: float
    incidents: int  # training incidents at the threshold and the CUSUM limit
    actor_count: int
    actor_days: int


def _after_warmup(ts_all: np.ndarray, warmup_days: float) -> np.ndarray:
    """Mask of the events after the warm-up. Every actor starts cold at the start of a history
    replay, which never happens live; fit and calibrate once baselines have formed (all events
    when that would leave too few)."""
    warm = ts_all >= ts_all.min() + warmup_days * DAY_S
    if warm.sum() < max(1000, len(ts_all) // 4):
        warm = np.ones(len(ts_all), dtype=bool)
    return warm


def _default_version(arrays: ForestArrays, window_end: float) -> str:
    """``YYYYMMDD-<8 hex>``: the training window's last day and a digest of the forest."""
    digest = hashlib.sha256(
        b"".join(np.ascontiguousarray(a).tobytes() for a in arrays.as_dict().values())
    )
    return f"{rfc3339(window_end)[:10].replace('-', '')}-{digest.hexdigest()[:8]}"


def _calibrate(
    kept: Sequence[AccessEvent],
    ts: np.ndarray,
    train_scores: np.ndarray,
    alert_budget: float,
    incident: IncidentSettings,
) -> _Calibration:
    """The alert threshold and the CUSUM limit that spend ``alert_budget`` incidents per
    1,000 actor-days of ``kept``: half for point anomalies, the rest for sustained ones."""
    actors = sorted({e.actor_id for e in kept})
    code_of = {actor: code for code, actor in enumerate(actors)}
    actor_codes = np.fromiter((code_of[e.actor_id] for e in kept), dtype=np.int64, count=len(kept))
    actor_days = len({(e.actor_id, int(e.ts // DAY_S)) for e in kept})
    allowed = alert_budget * actor_days / 1000.0
    threshold = calibrate_threshold(train_scores, actor_codes, ts, allowed * POINT_SHARE, incident)
    reference = float(np.quantile(train_scores, CUSUM_REFERENCE_QUANTILE))
    cusum = cusum_series(actor_codes, ts, train_scores, reference)
    cusum_limit = _calibrate_cusum(
        train_scores >= threshold, cusum, actor_codes, ts, allowed, incident
    )
    flagged = (train_scores >= threshold) | (cusum >= cusum_limit)
    return _Calibration(
        threshold=threshold,
        reference=reference,
        cusum_limit=cusum_limit,
        incidents=count_incidents(actor_codes, ts, flagged, incident),
        actor_count=len(actors),
        actor_days=actor_days,
    )


def train_model(
    events: Sequence[AccessEvent],
    model_dir: str | Path,
    *,
    alert_budget: float = DEFAULT_ALERT_BUDGET,
    risk_budget: float = DEFAULT_RISK_BUDGET,
    n_estimators: int = 100,
    max_samples: int = 256,
    seed: int = 0,
    incident: IncidentSettings | None = None,
    model_version: str | None = None,
    warmup_days: float = DEFAULT_WARMUP_DAYS,
    progress: Callable[[int], None] | None = None,
) -> Manifest:
    """Fit and export a model from ``events`` (in event-time order). Returns the manifest.

    Examples
    --------
    >>> import tempfile, orjson
    >>> from insiderwatch.models.artifact import load_model
    >>> from insiderwatch.models.events import parse_event
    >>> from insiderwatch.simulation import simulate as sim
    >>> history = [parse_event(orjson.dumps(e)) for e in sim.simulate(sim.SimulationConfig(40, 10))]
    >>> with tempfile.TemporaryDirectory() as model_dir:
    ...     manifest = train_model(history, model_dir, n_estimators=20, warmup_days=3)
    ...     model = load_model(model_dir)
    >>> model.version == manifest.model_version, 0.5 < manifest.threshold < 1.0
    (True, True)
    """
    if len(events) < 100:
        raise ValueError(f"need at least 100 valid events to train, got {len(events)}")
    incident = incident or IncidentSettings()
    peers = build_peer_baseline(events)
    set_pulses(events, count_events(events), peers.pulse_usual())
    x_all = featurize_history(events, peers, progress)
    ts_all = np.fromiter((e.ts for e in events), dtype=np.float64, count=len(events))
    warm = _after_warmup(ts_all, warmup_days)
    kept = [e for e, keep in zip(events, warm, strict=True) if keep]
    x, ts = x_all[warm], ts_all[warm]
    forest = IsolationForest(
        n_estimators=n_estimators, max_samples=min(max_samples, len(kept)), random_state=seed
    ).fit(x.astype(np.float32))
    arrays = export_forest(forest)
    train_scores = score(arrays, x)

    calibration = _calibrate(kept, ts, train_scores, alert_budget, incident)
    threshold = calibration.threshold
    severity = severity_cuts(threshold)

    rng = np.random.default_rng(seed)
    sample = x[rng.choice(len(x), size=min(5000, len(x)), replace=False)]
    attribution_baseline = path_attribution(arrays, sample).mean(axis=0)
    window_end = float(ts.max())
    version = model_version or _default_version(arrays, window_end)
    manifest = Manifest(
        model_version=version,
        feature_names=FEATURE_NAMES,
        feature_version=FEATURE_VERSION,
        features=tuple(f.documentation() for f in FEATURES),
        training_window=Window(rfc3339(float(ts_all.min())), rfc3339(window_end)),
        event_count=len(events),
        calibration_window=Window(rfc3339(float(ts.min())), rfc3339(window_end)),
        calibration_event_count=len(kept),
        actor_count=calibration.actor_count,
        actor_days=calibration.actor_days,
        alert_budget_per_1000_actor_days=float(alert_budget),
        training_incidents_at_threshold=calibration.incidents,
        threshold=threshold,
        sustained=Sustained(calibration.reference, calibration.cusum_limit, CUSUM_TAU_S),
        risk=calibrate_risk(kept, ts, train_scores, risk_budget, threshold),
        severity_thresholds=severity,
        feature_medians=tuple(float(v) for v in np.median(x, axis=0)),
        feature_p95=tuple(float(v) for v in np.quantile(x, 0.95, axis=0)),
        score_quantiles={str(q): float(np.quantile(train_scores, q)) for q in SCORE_QUANTILES},
        incident=incident,
        forest=ForestSettings(n_estimators, int(forest._max_samples), seed),
    )
    return save_model(model_dir, arrays, attribution_baseline, manifest, peers)
