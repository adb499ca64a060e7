"""Fixtures of the fault tests: the C programs, built once per session."""

from __future__ import annotations

import pytest

from ._native import compile_prog


@pytest.fixture(scope="session")
def progs(tmp_path_factory):
    """``progs("name")`` -> path of tests/faults/progs/name.c, compiled once."""
    out = tmp_path_factory.mktemp("faults-progs")
    built: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in built:
            built[name] = compile_prog(name, out)
        return built[name]

    return get
