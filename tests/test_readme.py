"""The README's configuration and features tables match the code exactly."""

from __future__ import annotations

import pytest

from insiderwatch.stream.cli import _NO_FLAG
from insiderwatch.stream.settings import SETTINGS_DOC, env_name, flag_name
from tests.conftest import REPO


def settings_table() -> str:
    rows = ["| setting | env var | flag | default | meaning |", "|---|---|---|---|---|"]
    for name, (default, meaning) in SETTINGS_DOC.items():
        flag = "(env only: a secret)" if name in _NO_FLAG else f"`{flag_name(name)}`"
        rows.append(f"| `{name}` | `{env_name(name)}` | {flag} | `{default}` | {meaning} |")
    return "\n".join(rows)


def features_table() -> str:
    from insiderwatch.models.features import FEATURES

    rows = ["| feature | unit | meaning |", "|---|---|---|"]
    rows += [f"| `{f.name}` | {f.unit} | {f.meaning} |" for f in FEATURES]
    return "\n".join(rows)


@pytest.mark.parametrize("table", [settings_table, features_table], ids=["settings", "features"])
def test_readme_table_matches_the_code(table):
    readme = (REPO / "README.md").read_text()
    assert table() in readme, (
        f"README {table.__name__.removesuffix('_table')} table is stale; regenerate it with "
        f"python -c 'from tests.test_readme import {table.__name__}; print({table.__name__}())'"
    )
