"""The Examples in the docstrings run, against the modules as the package names them.

Each module of the ``insiderwatch`` package is imported by its package name (never as a
top-level ``models`` or ``stream``, which a wheel does not install) and its doctests run.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PARTS = ("insiderwatch.models", "insiderwatch.stream", "insiderwatch.simulation")
MODULES = sorted(
    info.name
    for part in PARTS
    for info in pkgutil.iter_modules(importlib.import_module(part).__path__, prefix=part + ".")
)


@pytest.mark.parametrize("name", MODULES)
def test_module_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_examples_are_found():
    attempted = sum(
        doctest.testmod(importlib.import_module(name), report=False).attempted for name in MODULES
    )
    assert attempted >= 40
