"""The README's configuration and features tables match the code exactly."""

from __future__ import annotations

from stream.cli import _NO_FLAG
from stream.settings import SETTINGS_DOC, env_name, flag_name
from tests.conftest import REPO


def settings_table() -> str:
    rows = ["| setting | env var | flag | default | meaning |", "|---|---|---|---|---|"]
    for name, (default, meaning) in SETTINGS_DOC.items():
        flag = "(env only: a secret)" if name in _NO_FLAG else f"`{flag_name(name)}`"
        rows.append(f"| `{name}` | `{env_name(name)}` | {flag} | `{default}` | {meaning} |")
    return "\n".join(rows)


def test_readme_settings_table_matches_the_code():
    readme = (REPO / "README.md").read_text()
    assert settings_table() in readme, (
        "README configuration table is stale; regenerate it with "
        "python -c 'from tests.test_readme import settings_table; print(settings_table())'"
    )


def features_table() -> str:
    from models.features import FEATURES

    rows = ["| feature | unit | meaning |", "|---|---|---|"]
    rows += [f"| `{f.name}` | {f.unit} | {f.meaning} |" for f in FEATURES]
    return "\n".join(rows)


def test_readme_features_table_matches_the_code():
    readme = (REPO / "README.md").read_text()
    assert features_table() in readme, (
        "README features table is stale; regenerate it with "
        "python -c 'from tests.test_readme import features_table; print(features_table())'"
    )
