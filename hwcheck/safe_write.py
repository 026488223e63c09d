"""Writing output folders and files without ever losing what was there.

A report folder is written next to its target under a temporary name, then swapped into place.
hwcheck only replaces a folder that carries its manifest (:data:`MANIFEST`, written into every
report), or an empty folder; anything else is refused with :class:`OutputError`. On Linux the
swap is one atomic ``renameat2(RENAME_EXCHANGE)``, so a crash at any moment leaves the old report
or the new one in place; elsewhere two renames are used and a report left under its backup name
by a crash between them is put back by the next save.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["MANIFEST", "OutputError", "check_name", "check_target", "replace_folder", "write_file_atomic"]

MANIFEST = ".hwcheck-report"


class OutputError(ValueError):
    """hwcheck refuses to write where it could destroy something it did not write."""


def check_name(name: str) -> str:
    """A report name is one plain path component: not empty, no separators, not ``.``/``..``."""
    if not isinstance(name, str) or not name.strip():
        raise OutputError(f"report name must be a non-empty plain name, got {name!r}")
    if name in (".", "..") or "/" in name or "\\" in name or os.sep in name or "\0" in name:
        raise OutputError(f"report name {name!r} must be a plain name (no '/', '\\', '.' or '..')")
    if name.startswith("."):
        raise OutputError(f"report name {name!r} must not start with '.' (hidden names are hwcheck's temporaries)")
    return name


#: the files a report holds; a folder of only these (with a summary) is a report written before
#: reports carried a manifest
REPORT_FILES = frozenset(
    {
        "layers.csv", "cores.csv", "violations.csv", "energy.csv", "bandwidth.csv", "summary.csv",
        "summary.json", "report.md", "core_utilisation.png", "layer_synops.png", "chip_energy.png",
    }
)  # fmt: skip


def is_report(path: Path) -> bool:
    if not path.is_dir():
        return False
    if (path / MANIFEST).is_file():
        return True
    entries = {p.name for p in path.iterdir()}
    return bool(entries) and entries <= REPORT_FILES and bool(entries & {"summary.csv", "summary.json", "report.md"})


def check_target(target: Path) -> None:
    """Refuse a target that is not ours to replace (before any long work starts)."""
    if target.is_symlink():
        raise OutputError(f"{target} is a symbolic link; give the real folder or another --out")
    if target.exists():
        if not target.is_dir():
            raise OutputError(f"{target} exists and is a file, not a report folder; choose another --out")
        if not is_report(target) and any(target.iterdir()):
            raise OutputError(
                f"{target} exists and is not an hwcheck report (no {MANIFEST} file): hwcheck will not "
                "replace it; choose another --out or an empty folder"
            )
        if not os.access(target, os.W_OK):
            raise OutputError(f"{target} is read-only; hwcheck will not replace it")
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{parent} is a file, not a folder")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False when not available."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


def _restore_orphan(target: Path) -> None:
    """Put back a report left under its backup name by a crash between two renames."""
    if target.exists():
        return
    for old in sorted(target.parent.glob(f".{target.name}.old-*")):
        if is_report(old):
            old.rename(target)
            return


def replace_folder(target: Path, fill: Callable[[Path], None], manifest: dict) -> Path:
    """Write a folder with ``fill(tmp)`` and swap it into ``target``.

    ``target`` may be missing, empty, or an earlier hwcheck report; anything else is refused.
    The new folder gets the user's umask permissions and a manifest naming its files.
    """
    target = Path(target)
    check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _restore_orphan(target)
    check_target(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        fill(tmp)
        files = sorted(p.name for p in tmp.iterdir())
        (tmp / MANIFEST).write_text(json.dumps({**manifest, "files": files}, indent=2), encoding="utf-8")
        if target.exists():
            if _exchange(tmp, target):
                shutil.rmtree(tmp)  # now the old report
                return target
            backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            backup.rmdir()
            target.rename(backup)
            try:
                tmp.rename(target)
            except BaseException:
                backup.rename(target)
                raise
            shutil.rmtree(backup, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def write_file_atomic(path: Path, text: str) -> Path:
    """Write a text file through a temporary sibling and one rename (no partial file, no
    leftover temporary)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(name, 0o666 & ~_umask())
        os.replace(name, path)
    except BaseException:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
        raise
    return path
