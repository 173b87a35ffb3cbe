"""The built wheel installs one import package, ``insiderwatch``, with the broker recipe.

The wheel is built from this checkout (``pip wheel``), unpacked into a folder outside the
repository and run from an empty working directory with that folder first on the path, so the
checkout's own files cannot stand in for missing ones.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy of the sources: setuptools' in-tree build/ folder keeps files that
    # were since deleted, and a wheel built there could hide a missing one.
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in ("insiderwatch", "models", "stream"):
        shutil.copytree(
            REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)],
        check=True,
        timeout=600,
    )
    (built,) = out.glob("insiderwatch-*.whl")
    return built


def test_the_wheel_holds_only_the_insiderwatch_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"insiderwatch", wheel.name.split("-py")[0] + ".dist-info"}
    for required in (
        "insiderwatch/__main__.py",
        "insiderwatch/models/detector.py",
        "insiderwatch/stream/cli.py",
        "insiderwatch/stream/broker-pom.xml",
        "insiderwatch/stream/alert.schema.json",
        "insiderwatch/simulation/simulate.py",
    ):
        assert required in names
    entry_points = zipfile.ZipFile(wheel).read(
        next(name for name in names if name.endswith("entry_points.txt"))
    )
    assert b"insiderwatch = insiderwatch.stream.cli:main" in entry_points


def test_the_installed_wheel_runs_from_an_empty_folder(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], cwd=empty, env=env, capture_output=True, text=True, timeout=120
        )

    where = run(
        "-c",
        "import insiderwatch, insiderwatch.stream.broker as b;"
        "print(insiderwatch.__file__); print(b.POM.is_file())",
    )
    assert where.returncode == 0, where.stderr
    location, pom_found = where.stdout.split()
    assert location.startswith(str(site)) and pom_found == "True"
    status = run("-m", "insiderwatch", "kafka", "status")
    assert status.returncode != 0 and "not running" in status.stdout + status.stderr
    assert "Traceback" not in status.stderr
    assert list(empty.iterdir()) == [] or all(p.name == ".local" for p in empty.iterdir())
