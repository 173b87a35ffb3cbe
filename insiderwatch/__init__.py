"""insiderwatch: a streaming detector of insider data-access anomalies.

The import package is ``insiderwatch``. Its parts are the repository's top-level folders:
``insiderwatch.models`` (``models/``: events, features, state, isolation forest, training,
artifacts), ``insiderwatch.stream`` (``stream/``: the Faust worker, topics, CLI) and
``insiderwatch.simulation`` (simulated organisations and the detection evaluation). A built
wheel maps the folders into ``insiderwatch/`` (``[tool.setuptools.package-dir]``). Run from a
source checkout, the repository root is added to this package's search path, which gives the
same names without an install.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

_SOURCE_ROOT = Path(__file__).resolve().parent.parent
if (_SOURCE_ROOT / "pyproject.toml").is_file() and (_SOURCE_ROOT / "models").is_dir():
    # A source checkout: models/ and stream/ sit beside this folder, not inside it.
    __path__.append(str(_SOURCE_ROOT))  # noqa: F821 (the package's own __path__)
