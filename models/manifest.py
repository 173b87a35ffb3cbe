"""The model manifest: one typed, frozen definition, read and validated in one place.

``manifest.json`` beside ``model.npz`` is this dataclass as JSON, plus the artifact's own
fields (format version, peer baseline, array file name and the two sha256 checksums), which
:mod:`insiderwatch.models.artifact` adds on save and checks on load. Every other module reads
the manifest through these attributes, never by key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from insiderwatch.models.incidents import IncidentSettings

__all__ = ["Manifest", "ManifestError", "Window", "Sustained", "Risk", "ForestSettings"]


class ManifestError(ValueError):
    """A manifest field is missing or of the wrong type (the message names it)."""


@dataclass(frozen=True)
class Window:
    """An event-time window, RFC 3339 ``start`` and ``end``."""

    start: str
    end: str


@dataclass(frozen=True)
class Sustained:
    """The CUSUM detector of sustained excess: reference score, alert limit, decay."""

    reference: float
    limit: float
    tau_s: float


@dataclass(frozen=True)
class Risk:
    """Entity risk (:mod:`insiderwatch.models.risk`): which scores add to an actor's risk
    (above its role's reference), the limits that raise an alert, and how they were set."""

    budget_per_1000_actor_days: float
    reference_quantile: float
    references: dict[str, float]  # role -> reference score
    default_reference: float  # roles not in ``references``
    day_limit: float
    week_limit: float
    cooldown_s: float
    tau_day_s: float
    tau_week_s: float
    training_alerts: int  # entity-risk alerts the training replay raises at these limits

    def with_references(self, references: dict[str, float]) -> Risk:
        return replace(self, references=references)


@dataclass(frozen=True)
class ForestSettings:
    n_estimators: int
    max_samples: int
    seed: int


@dataclass(frozen=True)
class Manifest:
    """What a trained model is and how it was calibrated.

    Examples
    --------
    >>> manifest = Manifest.from_json({**_EXAMPLE, "threshold": "high"})
    Traceback (most recent call last):
    ...
    insiderwatch.models.manifest.ManifestError: manifest field 'threshold' must be a number, not str
    >>> Manifest.from_json(_EXAMPLE).sustained.limit
    3.5
    """

    model_version: str
    feature_names: tuple[str, ...]
    feature_version: int
    features: tuple[dict, ...]  # each feature's declaration (name, unit, meaning)
    training_window: Window
    event_count: int
    calibration_window: Window
    calibration_event_count: int
    actor_count: int
    actor_days: int
    alert_budget_per_1000_actor_days: float
    training_incidents_at_threshold: int
    threshold: float
    sustained: Sustained
    risk: Risk
    severity_thresholds: dict[str, float]  # medium / high / critical score cuts
    feature_medians: tuple[float, ...]
    feature_p95: tuple[float, ...]  # an alert's reasons are the features above these
    score_quantiles: dict[str, float]
    incident: IncidentSettings
    forest: ForestSettings

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in ``manifest.json`` (without the artifact's own fields)."""
        doc = asdict(self)
        doc["feature_names"] = list(self.feature_names)
        doc["features"] = list(self.features)
        doc["feature_medians"] = list(self.feature_medians)
        doc["feature_p95"] = list(self.feature_p95)
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Manifest:
        """Read and type-check a manifest; raises :class:`ManifestError` naming the field."""
        values = {f.name: _field(doc, f.name) for f in fields(cls)}
        for name in ("threshold", "alert_budget_per_1000_actor_days"):
            values[name] = _number(name, values[name])
        for name in ("feature_version", "event_count", "calibration_event_count", "actor_count"):
            values[name] = _integer(name, values[name])
        for name in ("actor_days", "training_incidents_at_threshold"):
            values[name] = _integer(name, values[name])
        values["model_version"] = _text("model_version", values["model_version"])
        values["feature_names"] = tuple(_text("feature_names", n) for n in values["feature_names"])
        values["features"] = tuple(dict(f) for f in _list("features", values["features"]))
        for name in ("feature_medians", "feature_p95"):
            values[name] = tuple(_number(name, v) for v in _list(name, values[name]))
        for name in ("severity_thresholds", "score_quantiles"):
            values[name] = {
                str(k): _number(name, v) for k, v in _object(name, values[name]).items()
            }
        values["training_window"] = _nested(Window, "training_window", values["training_window"])
        values["calibration_window"] = _nested(
            Window, "calibration_window", values["calibration_window"]
        )
        values["sustained"] = _nested(Sustained, "sustained", values["sustained"])
        values["risk"] = _risk(values["risk"])
        values["incident"] = _nested(IncidentSettings, "incident", values["incident"])
        values["forest"] = _nested(ForestSettings, "forest", values["forest"])
        return cls(**values)


def _risk(value: Any) -> Risk:
    """The ``risk`` object: numbers, and a role -> number ``references`` object."""
    value = _object("risk", value)
    references = {
        str(k): _number("risk.references", v)
        for k, v in _object("risk.references", _field(value, "references")).items()
    }
    return _nested(Risk, "risk", {**value, "references": {}}).with_references(references)


def _field(doc: dict, name: str) -> Any:
    if name not in doc:
        raise ManifestError(f"manifest field '{name}' is missing")
    return doc[name]


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManifestError(f"manifest field '{name}' must be a number, not {type(value).__name__}")
    return float(value)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestError(
            f"manifest field '{name}' must be an integer, not {type(value).__name__}"
        )
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"manifest field '{name}' must be text, not {type(value).__name__}")
    return value


def _list(name: str, value: Any) -> list:
    if not isinstance(value, list):
        raise ManifestError(f"manifest field '{name}' must be a list, not {type(value).__name__}")
    return value


def _object(name: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise ManifestError(
            f"manifest field '{name}' must be an object, not {type(value).__name__}"
        )
    return value


def _nested(kind: type, name: str, value: Any) -> Any:
    """``kind(**value)`` with every field present and numbers where ``kind`` has numbers."""
    value = _object(name, value)
    out = {}
    for f in fields(kind):
        if f.name not in value:
            raise ManifestError(f"manifest field '{name}.{f.name}' is missing")
        item = value[f.name]
        annotation = f.type if isinstance(f.type, str) else f.type.__name__
        if annotation == "float":
            item = _number(f"{name}.{f.name}", item)
        elif annotation == "int":
            item = _integer(f"{name}.{f.name}", item)
        elif annotation == "str":
            item = _text(f"{name}.{f.name}", item)
        out[f.name] = item
    return kind(**out)


_EXAMPLE: dict[str, Any] = {
    "model_version": "20260125-d4a68e46",
    "feature_names": ["records_vs_role"],
    "feature_version": 5,
    "features": [{"name": "records_vs_role"}],
    "training_window": {"start": "2026-01-05T00:00:00Z", "end": "2026-01-25T23:59:00Z"},
    "event_count": 100_000,
    "calibration_window": {"start": "2026-01-12T00:00:00Z", "end": "2026-01-25T23:59:00Z"},
    "calibration_event_count": 70_000,
    "actor_count": 500,
    "actor_days": 7_000,
    "alert_budget_per_1000_actor_days": 2.5,
    "training_incidents_at_threshold": 17,
    "threshold": 0.74,
    "sustained": {"reference": 0.6, "limit": 3.5, "tau_s": 86400.0},
    "risk": {
        "budget_per_1000_actor_days": 1.0,
        "reference_quantile": 0.99,
        "references": {"customer_support": 0.56},
        "default_reference": 0.55,
        "day_limit": 0.4,
        "week_limit": 0.9,
        "cooldown_s": 604800.0,
        "tau_day_s": 86400.0,
        "tau_week_s": 604800.0,
        "training_alerts": 7,
    },
    "severity_thresholds": {"medium": 0.76, "high": 0.78, "critical": 0.8},
    "feature_medians": [0.0],
    "feature_p95": [0.4],
    "score_quantiles": {"0.5": 0.42},
    "incident": {"gap_s": 7200.0, "max_duration_s": 86400.0},
    "forest": {"n_estimators": 100, "max_samples": 256, "seed": 0},
}
