"""Loader for the language-neutral vectors in ``tests/vectors/`` (format: its README.md).

Used by the Python core's tests and by the C codec's tests, so it knows nothing about either.
"""

import json
from pathlib import Path

import pytest

VECTORS_DIR = Path(__file__).resolve().parent.parent / "vectors"
#: the files holding SOCKS message cases
MESSAGE_FILES = ("socks4.json", "socks5.json", "udp.json")


def load(filename: str) -> "list[dict]":
    """All cases of one vector file, in file order."""
    with open(VECTORS_DIR / filename, encoding="utf-8") as f:
        return json.load(f)["cases"]


def all_cases() -> "list[dict]":
    """Cases of every message file."""
    return [case for filename in MESSAGE_FILES for case in load(filename)]


def case_bytes(case: dict) -> bytes:
    """The case's bytes (``bytes.fromhex`` skips the grouping spaces)."""
    return bytes.fromhex(case["hex"])


def kind(case: dict) -> str:
    """``"valid"``, ``"error"`` or ``"incomplete"``."""
    if "decoded" in case:
        return "valid"
    if "error" in case:
        return "error"
    if case.get("incomplete"):
        return "incomplete"
    raise ValueError(f"vector {case['name']!r} has no decoded/error/incomplete")


def select(cases=None, *, kinds=None, messages=None, versions=None) -> "list[dict]":
    """Filter cases by kind, message and version (``None`` = any)."""
    if cases is None:
        cases = all_cases()
    return [
        c
        for c in cases
        if (kinds is None or kind(c) in kinds)
        and (messages is None or c["message"] in messages)
        and (versions is None or c["version"] in versions)
    ]


def params(cases: "list[dict]") -> list:
    """``pytest.param`` per case, with the case name as id."""
    return [pytest.param(c, id=c["name"]) for c in cases]


def text_or_hex(fields: dict, name: str) -> bytes:
    """A bytes field given as ``name`` (UTF-8 text) or ``name + "_hex"``."""
    if name + "_hex" in fields:
        return bytes.fromhex(fields[name + "_hex"])
    return fields.get(name, "").encode("utf-8")
