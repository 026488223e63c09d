"""Chip-family mappers. Each module registers its family (limits schema + mapper function).

Adding a family = adding one module here (or anywhere, imported before use) that calls
:func:`hwcheck.profiles.register_family`, plus profile files in ``hwcheck/chip_profiles/``.
"""

from __future__ import annotations

import importlib
import importlib.util

from hwcheck.mappers.base import ERROR, WARNING, FitReport, Violation

BUILTIN_FAMILIES = ("dynapcnn", "xylo", "neurocore", "dense")

for _name in BUILTIN_FAMILIES:
    if importlib.util.find_spec(f"hwcheck.mappers.{_name}") is not None:
        importlib.import_module(f"hwcheck.mappers.{_name}")

__all__ = ["ERROR", "WARNING", "FitReport", "Violation", "BUILTIN_FAMILIES"]
