"""Fixtures of the fault tests: the C programs, built once per session."""

from __future__ import annotations

import pytest

from ._native import PROGS


@pytest.fixture(scope="session")
def progs(build_c):
    """``progs("name")`` -> path of tests/faults/progs/name.c, compiled once."""

    def get(name: str) -> str:
        return build_c(PROGS / f"{name}.c", "-O1", "-Wall", "-Werror", "-pthread")

    return get
