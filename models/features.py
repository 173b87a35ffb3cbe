"""The features, each declared once: name, unit, meaning, formula and how it is explained.

:data:`FEATURES` is the one definition. Each feature's ``formula`` is a Python expression
over the quantities of :data:`~insiderwatch.models.feature_inputs.FEATURE_INPUTS`
(``clip(v)`` is ``max(v, 0)``; ``log``, ``exp`` and ``sqrt`` are :mod:`math`'s); from the formulas, :func:`feature_math_source` writes
``models/feature_math.py``, whose one function both the Python reference path
(:func:`feature_row`) and the compiled kernel (:mod:`insiderwatch.models.compiled`, through
its numba twin) call, so the two compute the same bits. Each feature's ``describe`` (in
:mod:`insiderwatch.models.feature_phrases`) phrases it for an alert, and the README's feature
table is this list (``tests/test_readme.py``).

Adding a feature over the existing quantities: one :class:`Feature` here (and its
``describe``), ``FEATURE_VERSION`` bumped, then ``python -m insiderwatch.models.features``
regenerates ``feature_math.py`` and stamps its digest into ``compiled.py`` (numba caches the
kernel by that file's source; ``tests/test_features.py`` and ``tests/test_compiled.py`` fail
until it is done). A feature
that needs a new quantity adds it to ``FEATURE_INPUTS`` and to both input paths
(:func:`~insiderwatch.models.feature_inputs.feature_inputs` and the kernel's ``_observe``).

Ratios are natural logs so that "10x the usual" and "1/10 of the usual" are equally far from
0; volume ratios are clipped at 0: an actor doing *less* than usual is not an insider signal,
and the clip leaves normal traffic concentrated at 0, where the forest isolates any excess
quickly.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from insiderwatch.models import feature_phrases as phrases
from insiderwatch.models.events import AccessEvent
from insiderwatch.models.feature_inputs import (
    FEATURE_INPUTS,
    MATURE_EVENTS,
    PRIOR_DAYS,
    PRIOR_EVENTS,
    RARE_SURPRISAL,
    WORKING_HOURS_PER_DAY,
    access_surprise,
    actor_pair_probability,
    feature_inputs,
    field_role_rarity,
    is_rare_access,
    role_rarities,
    role_surprise,
    time_novelty,
    typical_day,
)
from insiderwatch.models.feature_math import feature_values
from insiderwatch.models.peers import PeerBaseline
from insiderwatch.models.state import PAIR_TAU_DAYS, ActorState

__all__ = [
    "Feature",
    "FEATURES",
    "FEATURE_NAMES",
    "FEATURE_VERSION",
    "MATURE_EVENTS",
    "PRIOR_DAYS",
    "PRIOR_EVENTS",
    "RARE_SURPRISAL",
    "WORKING_HOURS_PER_DAY",
    "access_surprise",
    "actor_pair_probability",
    "feature_math_source",
    "feature_row",
    "field_role_rarity",
    "is_rare_access",
    "role_rarities",
    "role_surprise",
    "time_novelty",
    "typical_day",
]

# Bump when a feature's definition or the peer-baseline layout changes: a model trained on
# other features is refused with one sentence instead of failing to load.
FEATURE_VERSION = 8


@dataclass(frozen=True, slots=True)
class Feature:
    """One model input, declared once.

    ``formula`` is an expression over :data:`FEATURE_INPUTS`, optionally wrapped in
    ``clip(...)``; ``describe`` gives ``(observed, expected, phrase)`` for an alert;
    ``window_count`` marks features whose observed value is a decayed count (an alert does
    not cite one that rounds to 0).
    """

    name: str
    unit: str
    meaning: str
    formula: str
    describe: Callable[..., phrases.Phrase]
    window_count: bool = False

    def documentation(self) -> dict[str, str]:
        """Name, unit, meaning and formula (what a model's manifest records)."""
        return {
            "name": self.name,
            "unit": self.unit,
            "meaning": self.meaning,
            "formula": self.formula,
        }


FEATURES: tuple[Feature, ...] = (
    Feature(
        "records_vs_role",
        "ln ratio >= 0",
        "records in this access above the role's 99th percentile per access",
        formula="clip(log((1.0 + record_count) / (1.0 + p99_records)))",
        describe=phrases.describe_records_vs_role,
    ),
    Feature(
        "events_10m_vs_actor",
        "ln ratio >= 0",
        "accesses in the last ~10 min above the actor's usual pace",
        formula="clip(log((1.0 + events_10m) / (1.0 + hour_events_typ / 6.0)) - role_pulse)",
        describe=phrases.describe_events_10m,
        window_count=True,
    ),
    Feature(
        "records_1h_vs_actor",
        "ln ratio >= 0",
        "records in the last hour above the actor's usual hour",
        formula="clip(log((1.0 + records_1h) / (1.0 + hour_records_typ)) - role_pulse)",
        describe=phrases.describe_records_1h,
        window_count=True,
    ),
    Feature(
        "new_resources_1h_vs_actor",
        "ln ratio >= 0",
        "distinct, not recently seen records in the last hour above the actor's usual hour",
        formula="clip(log((1.0 + new_resources_1h) / (1.0 + hour_events_typ)) - role_pulse)",
        describe=phrases.describe_new_resources_1h,
        window_count=True,
    ),
    Feature(
        "no_ticket_1h_vs_actor",
        "ln ratio >= 0",
        "accesses without a ticket in the last hour above the actor's usual share",
        formula="clip(log((1.0 + no_ticket_1h) / (1.0 + events_1h * no_ticket_share))"
        " - role_pulse)",
        describe=phrases.describe_no_ticket_1h,
        window_count=True,
    ),
    Feature(
        "rare_accesses_1h",
        "ln(1+events)",
        "rare (p < 0.1%) accesses for this actor or the role in the last hour: this one and "
        "earlier ones that raised no alert on their own",
        formula="log(1.0 + rare_1h)",
        describe=phrases.describe_rare_accesses(1, "~1 h"),
        window_count=True,
    ),
    Feature(
        "rare_accesses_24h",
        "ln(1+events)",
        "rare (p < 0.1%) accesses for this actor or the role in the last day: this one and "
        "earlier ones that raised no alert on their own",
        formula="log(1.0 + rare_24h)",
        describe=phrases.describe_rare_accesses(2, "~24 h"),
        window_count=True,
    ),
    Feature(
        "no_ticket_24h_vs_actor",
        "ln ratio >= 0",
        "accesses without a ticket in the last day above the actor's usual day",
        formula="clip(log((1.0 + no_ticket_24h) / (1.0 + day_events_typ * no_ticket_share))"
        " - role_pulse)",
        describe=phrases.describe_no_ticket_24h,
        window_count=True,
    ),
    Feature(
        "access_role_rarity",
        "-ln p",
        "how rare this (action, resource type) pair is for the role",
        formula="pair_rarity",
        describe=phrases.describe_access_role_rarity,
    ),
    Feature(
        "field_role_rarity",
        "-ln p",
        "rarest sensitive field returned, by the role's share of accesses returning it",
        formula="field_rarity",
        describe=phrases.describe_field_role_rarity,
    ),
    Feature(
        "time_novelty",
        "-ln p",
        "how unusual this hour of the day and this day of the week (UTC) are for the actor "
        "(shrunk to the role), taken together",
        formula="time_novelty",
        describe=phrases.describe_time_novelty,
    ),
    Feature(
        "access_surprise",
        "-ln p",
        "how improbable the whole access is for the actor: the pair, any field the actor never "
        "returned, and a missing ticket, taken together",
        formula="surprise",
        describe=phrases.describe_access_surprise,
    ),
    Feature(
        "new_ip_or_device",
        "count 0..2",
        "an established actor on an IP and/or device never seen before",
        formula="new_ip + new_device",
        describe=phrases.describe_new_ip_or_device,
    ),
    Feature(
        "denied_1h",
        "ln(1+events)",
        "denied or failed accesses in the last hour",
        formula="log(1.0 + denied_1h)",
        describe=phrases.describe_denied_1h,
        window_count=True,
    ),
    Feature(
        "pair_share_24h_vs_actor",
        "ln ratio >= 0",
        "accesses of this kind (action, resource type) in the last day above the actor's usual "
        "share of a day's accesses",
        formula="clip(log((1.0 + pair_count_24h) / (1.0 + events_24h * p_pair)))",
        describe=phrases.describe_pair_share_24h,
    ),
    Feature(
        "pair_24h_vs_actor",
        "ln ratio >= 0",
        "accesses of this kind (action, resource type) in the last day above the actor's usual "
        "daily count of them",
        formula="clip(log((1.0 + pair_count_24h) / (1.0 + day_events_typ * p_pair)) - role_pulse)",
        describe=phrases.describe_pair_24h,
    ),
    Feature(
        "pair_3d_vs_actor",
        "sd >= 0",
        f"accesses of this kind over ~{PAIR_TAU_DAYS:g} days above the actor's usual count of "
        "them in as many days, in standard deviations of a count (a modest excess day after "
        "day adds up; an expected count under 9 counts as 9: a kind of access the actor rarely "
        "does is the rarity features' business)",
        formula=f"clip((pair_count_3d - {PAIR_TAU_DAYS} * day_events_typ * p_pair * exp(role_pulse))"
        f" / sqrt(9.0 + {PAIR_TAU_DAYS} * day_events_typ * p_pair * exp(role_pulse)))",
        describe=phrases.describe_pair_3d,
    ),
    Feature(
        "subject_writes_24h",
        "ln(1+events)",
        "writes (update, delete, ...) on this access's subject, the outside party the record "
        "belongs to, in the last day: concentration on a few sellers or customers",
        formula="log(1.0 + subject_writes_24h)",
        describe=phrases.describe_subject_writes_24h,
        window_count=True,
    ),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


def feature_row(
    event: AccessEvent,
    state: ActorState,
    peers: PeerBaseline,
    surprise: float,
    is_rare: bool,
    rarities: tuple[float, float] | None = None,
    p_pair: float | None = None,
) -> tuple[float, ...]:
    """The :data:`FEATURES` vector of ``event`` (see
    :func:`~insiderwatch.models.feature_inputs.feature_inputs` for the arguments)."""
    role = peers.profile(event.actor_role)
    return feature_values(*feature_inputs(event, state, role, surprise, is_rare, rarities, p_pair))


def feature_math_source() -> str:
    """The source of ``models/feature_math.py``, generated from :data:`FEATURES`.

    >>> "def feature_values(" in feature_math_source()
    True
    """
    unknown = {
        name
        for feature in FEATURES
        for name in _names_in(feature.formula)
        if name not in FEATURE_INPUTS and name not in ("clip", "log", "exp", "sqrt")
    }
    if unknown:
        raise ValueError(f"formulas use quantities that FEATURE_INPUTS does not declare: {unknown}")
    lines = [
        '"""Generated from FEATURES in models/features.py by '
        "`python -m insiderwatch.models.features`; do not edit.",
        "",
        "``feature_values`` is plain Python for the reference path; ``feature_values_compiled``",
        "is the same function compiled by numba for the detection kernel.",
        '"""',
        "",
        "from math import exp, log, sqrt",
        "",
        "from numba import njit",
        "",
        f"N_FEATURES = {len(FEATURES)}",
        "",
        "# v<i> below is feature i:",
        *(f"#   v{index}: {feature.name}" for index, feature in enumerate(FEATURES)),
        "",
        "",
        "def feature_values(",
        *(f"    {name}," for name in FEATURE_INPUTS),
        "):",
    ]
    values = []
    for index, feature in enumerate(FEATURES):
        formula, clipped = feature.formula, feature.formula.startswith("clip(")
        expression = formula[len("clip(") : -1] if clipped else formula
        lines.append(f"    v{index} = {expression}")
        values.append(f"v{index} if v{index} > 0.0 else 0.0" if clipped else f"v{index}")
    lines.append("    return (")
    lines += [f"        {value}," for value in values]
    lines += [
        "    )",
        "",
        "",
        "feature_values_compiled = njit(cache=True, nogil=True)(feature_values)",
        "",
    ]
    return "\n".join(lines)


def _names_in(formula: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(formula)) if isinstance(node, ast.Name)}


FEATURE_MATH_PATH = Path(__file__).with_name("feature_math.py")

COMPILED_PATH = Path(__file__).with_name("compiled.py")


def _stamp_kernel(source: str) -> None:
    """Write the new feature math's digest into models/compiled.py (FEATURE_MATH_DIGEST), so
    that numba, which caches the kernel by that file's source, compiles it again."""
    import hashlib
    import re

    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    kernel = COMPILED_PATH.read_text()
    COMPILED_PATH.write_text(
        re.sub(r'FEATURE_MATH_DIGEST = "[0-9a-f]*"', f'FEATURE_MATH_DIGEST = "{digest}"', kernel)
    )


if __name__ == "__main__":  # pragma: no cover - the generator's command line
    generated = feature_math_source()
    FEATURE_MATH_PATH.write_text(generated)
    _stamp_kernel(generated)
    print(f"wrote {FEATURE_MATH_PATH} and its digest in {COMPILED_PATH}", file=sys.stderr)
