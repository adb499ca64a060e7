"""Loading the hardening scripts' modules (scripts/hardening/) from a checkout."""

from __future__ import annotations

import importlib
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"


def hardening_module(name: str):
    """``scripts/hardening/<name>.py`` as a module (the scripts are not an installed package)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module(f"hardening.{name}")
