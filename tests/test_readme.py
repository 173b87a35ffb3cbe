"""The README's configuration table lists every setting, exactly as the code defines it."""

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
