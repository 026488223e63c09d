"""Progress bars for long work, shown only when the work turns out to be long.

Static checks are usually instant, so a bar appears only after ``DELAY_S`` seconds (tqdm's
``delay``). ``quiet()`` turns bars off for a block of code (the CLI's ``-q``, tests).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

__all__ = ["DELAY_S", "bar", "quiet"]

DELAY_S = 2.0

_SHOW: contextvars.ContextVar[bool] = contextvars.ContextVar("hwcheck_progress", default=True)


def bar(total: int, desc: str, unit: str) -> Any:
    """A tqdm bar on stderr that shows up after ``DELAY_S`` seconds (never under :func:`quiet`)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=desc, unit=unit, unit_scale=True, delay=DELAY_S, leave=False,
        disable=not _SHOW.get(),
    )  # fmt: skip


@contextlib.contextmanager
def quiet(on: bool = True) -> Iterator[None]:
    """No progress bars inside this block (when ``on``)."""
    token = _SHOW.set(False) if on else None
    try:
        yield
    finally:
        if token is not None:
            _SHOW.reset(token)
