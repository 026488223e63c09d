"""Optional cross-check of the DYNAP-CNN verdict against sinabs + samna, where a real samna exists.

The ``samna`` package on PyPI is a bootstrap stub: importing it runs ``pip install
--force-reinstall`` against a GitLab index, which fails offline and changes the environment. So
this module never imports samna to find out what is installed; it looks at the files:

* no ``samna`` on the path -> "samna not installed";
* a ``samna`` package without compiled extension modules, or whose ``__init__.py`` carries the
  stub's marker -> "the PyPI bootstrap stub";
* otherwise a real samna: only then is sinabs' ``DynapcnnNetwork`` built and its
  ``is_compatible_with`` compared with our memory verdict (sinabs checks memory only).
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CrossCheck", "samna_status", "samna_cross_check", "SINABS_DEVICES", "MEMORY_RULES"]

#: sinabs device strings for our profile names.
SINABS_DEVICES = {
    "speck2f": "speck2fmodule",
    "speck2e": "speck2edevkit",
    "dynapcnn": "dynapcnndevkit",
    "speck2cmini": "speck2cmini",
}

#: Our rules that correspond to what sinabs' mapper checks (memory and core assignment).
MEMORY_RULES = frozenset(
    {
        "kernel-memory",
        "neuron-memory",
        "bias-memory",
        "memory-combination",
        "core-assignment",
        "layer-count",
    }
)

_STUB_MARKERS = ("PYPI_SAMNA", "install_real_samna", "__gitlab_packages_index_url__")
_EXT_SUFFIXES = tuple(set(importlib.machinery.EXTENSION_SUFFIXES) | {".so", ".pyd", ".dylib"})


def _package_files(locations: list[str], limit: int = 5000) -> list[Path]:
    files: list[Path] = []
    for loc in locations:
        for root, dirs, names in os.walk(loc):
            if len(Path(root).relative_to(loc).parts) >= 3:
                dirs[:] = []  # compiled modules sit near the top of the package
            files += [Path(root) / n for n in names]
            if len(files) > limit:
                return files
    return files


def samna_status() -> tuple[str, str]:
    """("absent" | "stub" | "real", a one-line message), without importing samna."""
    try:
        spec = importlib.util.find_spec("samna")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return "absent", "samna not installed; skipping hardware cross-check"
    locations = list(spec.submodule_search_locations or [])
    files = _package_files(locations) if locations else ([Path(spec.origin)] if spec.origin else [])
    compiled = [f for f in files if f.name.endswith(_EXT_SUFFIXES)]
    init = next(
        (f for f in files if f.name == "__init__.py" and f.parent in map(Path, locations)), None
    )
    marked = False
    if init is not None:
        try:
            head = init.read_text(encoding="utf-8", errors="replace")[:20000]
        except OSError:
            head = ""
        marked = any(m in head for m in _STUB_MARKERS)
    if marked or not compiled:
        return "stub", "samna is the PyPI bootstrap stub; skipping hardware cross-check"
    try:
        version = importlib.metadata.version("samna")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    where = locations[0] if locations else spec.origin
    return "real", f"samna {version} at {where}"


@dataclass(frozen=True)
class CrossCheck:
    """Our verdict next to sinabs/samna's. sinabs checks memory only, so ``agree`` compares its
    answer with our memory-only verdict."""

    chip: str
    device: str
    ours_fits: bool
    ours_memory_fits: bool
    samna_fits: bool | None
    error: str = ""

    @property
    def agree(self) -> bool | None:
        return None if self.samna_fits is None else self.samna_fits == self.ours_memory_fits

    def __str__(self) -> str:
        if self.samna_fits is None:
            return f"{self.chip}: sinabs/samna could not check the model ({self.error})"
        word = "agree" if self.agree else "DISAGREE"
        return (
            f"{self.chip} ({self.device}): sinabs/samna says {'fits' if self.samna_fits else 'does not fit'}, "
            f"hwcheck memory check {'fits' if self.ours_memory_fits else 'does not fit'}: {word}"
            f" (hwcheck overall: {'fits' if self.ours_fits else 'does not fit'})"
        )


def samna_cross_check(model: Any, profile: Any, input_shape: tuple[int, ...]) -> CrossCheck | str:
    """Compare our fit verdict with sinabs' ``DynapcnnNetwork.is_compatible_with``.

    Returns a one-line message (str) when samna is absent or only the PyPI stub, so callers
    can print it and go on; a :class:`CrossCheck` otherwise.
    """
    status, message = samna_status()
    if status != "real":
        return message
    from hwcheck.graph import describe
    from hwcheck.mappers.dynapcnn import map_dynapcnn
    from hwcheck.profiles import load_profile

    prof = load_profile(profile) if isinstance(profile, (str, os.PathLike)) else profile
    ours = map_dynapcnn(describe(model, input_shape), prof)
    memory_ok = not any(v.rule in MEMORY_RULES for v in ours.errors)
    device = SINABS_DEVICES.get(prof.name, prof.name)
    try:
        from sinabs.backend.dynapcnn import DynapcnnNetwork  # imports the real samna

        net = DynapcnnNetwork(model, input_shape=tuple(input_shape), discretize=True)
        theirs: bool | None = bool(net.is_compatible_with(device))
        error = ""
    except Exception as exc:  # sinabs raises for models it cannot convert at all
        theirs, error = None, f"{type(exc).__name__}: {exc}".splitlines()[0]
    return CrossCheck(prof.name, device, ours.fits, memory_ok, theirs, error)
