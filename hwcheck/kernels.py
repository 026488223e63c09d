"""One-pass reductions in C for the activity counter, compiled on first use.

Counting activity needs, per spike tensor, its column sums over (batch, time) rows, its min and
max, whether every value is a whole number and, at neuron inputs, the number of nonzero values.
Each is one vectorised torch pass, and on a CPU a pass over a tensor that is out of cache costs
about as much as the arithmetic of a small layer. :func:`row_stats` does all of them in one pass,
:func:`count_nonzero` the last one without the float32 temporary torch needs, :func:`minmax`
min, max and wholeness where no column sums are wanted, and :func:`colsum_f64` column sums of
non-whole values in float64 without a float64 copy.

The C source below is compiled with the system C compiler (``$CC``, else ``cc`` / ``gcc``) for
this machine's CPU and kept in ``$HWCHECK_CACHE`` (default ``~/.cache/hwcheck``), one file per
source, flags and CPU. Where there is no compiler, the cache folder cannot be written, or
``HWCHECK_KERNELS=0`` is set, the functions return ``None`` and the counter uses torch alone: the
figures are the same either way (tested), only the time differs. The kernels run on the calling
thread: splitting a pass over a pool of threads was slower on a 2-core machine (a busy core
delays the pool by a scheduler slice), and it has not been measured on more cores.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch

__all__ = ["SOURCE", "available", "colsum_f64", "count_nonzero", "library_path", "minmax", "row_stats"]

SOURCE = r"""
#include <stdint.h>
#include <math.h>

/* Row-major (rows x feats) float32: colsum[j] = sum over i of x[i, j] in float64 (exact for
   whole numbers), and out = (min, max, count of nonzero values, count of non-whole values,
   total) of all elements.
   Four rows at a time: one read-modify-write of the float64 sums per four values keeps the
   pass at the speed of reading the data (one row at a time is 2-3x slower, eight no faster).
   Compiled with finite-math flags: a NaN or inf shows as a non-finite colsum entry (it
   propagates through the sums), and then the other figures mean nothing. */
#ifndef HW_ONLY_NNZ
void hw_row_stats_f32(const float *restrict x, int64_t rows, int64_t feats,
                      double *restrict colsum, double *restrict out)
{
    float lo = INFINITY, hi = -INFINITY;
    int64_t nnz = 0, frac = 0, i = 0;
    for (int64_t j = 0; j < feats; j++)
        colsum[j] = 0.0;
    for (; i + 4 <= rows; i += 4) {
        const float *restrict r0 = x + i * feats, *restrict r1 = r0 + feats;
        const float *restrict r2 = r1 + feats, *restrict r3 = r2 + feats;
        for (int64_t j0 = 0; j0 < feats; j0 += 4096) {
            int64_t end = feats - j0 < 4096 ? feats : j0 + 4096;
            int32_t nz = 0, fr = 0;  /* at most 4 x 4096 per chunk */
            for (int64_t j = j0; j < end; j++) {
                float a = r0[j], b = r1[j], c = r2[j], d = r3[j];
                colsum[j] += ((double)a + (double)b) + ((double)c + (double)d);
                float l = fminf(fminf(a, b), fminf(c, d)), h = fmaxf(fmaxf(a, b), fmaxf(c, d));
                lo = l < lo ? l : lo;
                hi = h > hi ? h : hi;
                nz += (a != 0.0f) + (b != 0.0f) + (c != 0.0f) + (d != 0.0f);
                fr += (a != rintf(a)) + (b != rintf(b)) + (c != rintf(c)) + (d != rintf(d));
            }
            nnz += nz;
            frac += fr;
        }
    }
    for (; i < rows; i++) {
        const float *restrict r = x + i * feats;
        for (int64_t j0 = 0; j0 < feats; j0 += 4096) {
            int64_t end = feats - j0 < 4096 ? feats : j0 + 4096;
            int32_t nz = 0, fr = 0;
            for (int64_t j = j0; j < end; j++) {
                float v = r[j];
                colsum[j] += v;
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
                nz += v != 0.0f;
                fr += v != rintf(v);
            }
            nnz += nz;
            frac += fr;
        }
    }
    double total = 0.0;
    for (int64_t j = 0; j < feats; j++)
        total += colsum[j];
    out[0] = lo;
    out[1] = hi;
    out[2] = (double)nnz;
    out[3] = (double)frac;
    out[4] = total;
}

/* out = (min, max, count of non-whole values, float64 sum) of n contiguous float32 (the sum
   is non-finite exactly when a value is NaN or inf: float32 values cannot overflow it). */
void hw_minmax_f32(const float *restrict x, int64_t n, double *restrict out)
{
    float lo = INFINITY, hi = -INFINITY;
    double sum = 0.0;
    int64_t frac = 0;
    for (int64_t i0 = 0; i0 < n; i0 += 1 << 20) {
        int64_t end = n - i0 < (1 << 20) ? n : i0 + (1 << 20);
        int32_t fr = 0;
        for (int64_t i = i0; i < end; i++) {
            float v = x[i];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            fr += v != rintf(v);
            sum += v;
        }
        frac += fr;
    }
    out[0] = lo;
    out[1] = hi;
    out[2] = (double)frac;
    out[3] = sum;
}

/* colsum[j] += x[i, j] (or |x[i, j]|) in float64, for values whose float32 sums could round;
   four rows at a time, as above. */
void hw_colsum_f64(const float *restrict x, int64_t rows, int64_t feats, double *restrict colsum,
                   int32_t absolute)
{
    int64_t i = 0;
    for (; i + 4 <= rows; i += 4) {
        const float *restrict r0 = x + i * feats, *restrict r1 = r0 + feats;
        const float *restrict r2 = r1 + feats, *restrict r3 = r2 + feats;
        if (absolute)
            for (int64_t j = 0; j < feats; j++)
                colsum[j] += ((double)fabsf(r0[j]) + (double)fabsf(r1[j]))
                           + ((double)fabsf(r2[j]) + (double)fabsf(r3[j]));
        else
            for (int64_t j = 0; j < feats; j++)
                colsum[j] += ((double)r0[j] + (double)r1[j]) + ((double)r2[j] + (double)r3[j]);
    }
    for (; i < rows; i++) {
        const float *restrict r = x + i * feats;
        if (absolute)
            for (int64_t j = 0; j < feats; j++)
                colsum[j] += fabsf(r[j]);
        else
            for (int64_t j = 0; j < feats; j++)
                colsum[j] += r[j];
    }
}
#endif

/* Nonzero values among n contiguous float32 (NaN counts as nonzero, as in torch). */
#ifndef HW_ONLY_STATS
int64_t hw_count_nonzero_f32(const float *restrict x, int64_t n)
{
    int64_t total = 0;
    for (int64_t i0 = 0; i0 < n; i0 += 1 << 20) {
        int64_t end = n - i0 < (1 << 20) ? n : i0 + (1 << 20);
        int32_t c = 0;
        for (int64_t i = i0; i < end; i++)
            c += x[i] != 0.0f;
        total += c;
    }
    return total;
}
#endif
"""

# finite-math flags let the compiler vectorise the min/max reductions; not -ffast-math, whose
# start-up code would switch the whole process to flush-to-zero arithmetic
_CFLAGS = (
    "-O3", "-fPIC", "-fno-math-errno", "-fno-trapping-math", "-ffinite-math-only",
    "-fno-signed-zeros", "-fassociative-math",
)  # fmt: skip
# the count of nonzero values must see NaN: built without the finite-math flags
_CFLAGS_EXACT = ("-O3", "-fPIC", "-fno-math-errno", "-fno-trapping-math")

_LOCK = threading.Lock()
_LIB: Any = None
_TRIED = False


def _cpu_id() -> str:
    """What a build for ``-march=native`` depends on: the CPU's instruction-set flags."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def _compiler() -> str | None:
    cc = os.environ.get("CC")
    if cc:
        return shutil.which(cc)
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def _cache_dir() -> Path:
    base = os.environ.get("HWCHECK_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "hwcheck"


def library_path(cc: str | None = None) -> Path | None:
    """Where the compiled kernels for this source, compiler and CPU live (None: no compiler)."""
    cc = cc or _compiler()
    if cc is None:
        return None
    key = "\n".join([SOURCE, " ".join(_CFLAGS), " ".join(_CFLAGS_EXACT), cc, _cpu_id(), platform.platform()])
    return _cache_dir() / f"rowstats-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"


def _build(cc: str, target: Path) -> None:
    """Compile into a temporary folder and move the library into place in one step, so that
    processes building at the same time never load a half-written file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        src = Path(tmp) / "rowstats.c"
        src.write_text(SOURCE)
        objs = []
        # the two functions need different flags: one object file each
        for name, flags in (("stats", _CFLAGS), ("nnz", _CFLAGS_EXACT)):
            obj = Path(tmp) / f"{name}.o"
            only = "-DHW_ONLY_STATS" if name == "stats" else "-DHW_ONLY_NNZ"
            cmd = [cc, *flags, only, "-c", str(src), "-o", str(obj)]
            try:  # for this CPU's vector units, where the compiler knows how
                subprocess.run([*cmd, "-march=native"], check=True, capture_output=True, timeout=60)
            except subprocess.CalledProcessError:
                subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            objs.append(str(obj))
        out = Path(tmp) / "rowstats.so"
        subprocess.run([cc, "-shared", *objs, "-o", str(out)], check=True, capture_output=True, timeout=60)
        os.replace(out, target)


def _load() -> Any:
    """The compiled library, built if needed; None where it cannot be (see module docstring)."""
    global _LIB, _TRIED
    if _TRIED:
        return _LIB
    with _LOCK:
        if _TRIED:
            return _LIB
        try:
            _LIB = _open()
        except (OSError, RuntimeError, subprocess.SubprocessError, ValueError):  # RuntimeError: no home folder
            _LIB = None
        _TRIED = True
    return _LIB


def _open() -> Any:
    if os.environ.get("HWCHECK_KERNELS", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    cc = _compiler()
    path = library_path(cc)
    if cc is None or path is None:
        return None
    if not path.exists():
        _build(cc, path)
    lib = ctypes.CDLL(str(path))
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.hw_row_stats_f32.argtypes = [p, i64, i64, p, p]
    lib.hw_row_stats_f32.restype = None
    lib.hw_minmax_f32.argtypes = [p, i64, p]
    lib.hw_minmax_f32.restype = None
    lib.hw_colsum_f64.argtypes = [p, i64, i64, p, ctypes.c_int32]
    lib.hw_colsum_f64.restype = None
    lib.hw_count_nonzero_f32.argtypes = [p, i64]
    lib.hw_count_nonzero_f32.restype = i64
    return lib


def reset() -> None:
    """Forget the loaded library (tests switch ``HWCHECK_KERNELS`` / ``HWCHECK_CACHE``)."""
    global _LIB, _TRIED
    with _LOCK:
        _LIB, _TRIED = None, False


def available() -> bool:
    """True when the kernels are compiled (or can be built)."""
    return _load() is not None


_F32 = torch.float32
_Out5 = ctypes.c_double * 5  # the kernels' scalar results


def _lib_for(t: torch.Tensor) -> Any:
    """The loaded library where it can take ``t`` (contiguous float32 on the CPU), else None."""
    lib = _LIB if _TRIED else _load()
    if lib is None or t.dtype != _F32 or not t.is_cpu or not t.is_contiguous():
        return None
    return lib


def row_stats(t: torch.Tensor, features: int) -> tuple[torch.Tensor, float, float, int, int, float] | None:
    """One pass over ``t`` as (rows, features): (float64 column sums, min, max, nonzero count,
    non-whole count, float64 total), or None when the kernel is unavailable, ``t`` is not a
    contiguous float32 CPU tensor, or a value is not finite (then the caller's torch path
    reports it)."""
    lib = _lib_for(t)
    if lib is None:
        return None
    n = t.numel()
    if not n or features < 1 or n % features:
        return None
    colsum = torch.empty(features, dtype=torch.float64)
    out = _Out5()
    lib.hw_row_stats_f32(t.data_ptr(), n // features, features, colsum.data_ptr(), out)
    lo, hi, nnz, frac, total = out
    # float64 sums of float32 values cannot overflow: a non-finite total means NaN / inf inside
    if not math.isfinite(total):
        return None
    return colsum, lo, hi, int(nnz), int(frac), total


def minmax(t: torch.Tensor) -> tuple[float, float, int] | None:
    """One pass over ``t``: (min, max, non-whole count), or None where the kernel does not run
    or a value is not finite (see :func:`row_stats`)."""
    lib = _lib_for(t)
    if lib is None:
        return None
    n = t.numel()
    if not n:
        return None
    out = _Out5()
    lib.hw_minmax_f32(t.data_ptr(), n, out)
    lo, hi, frac, total = out[0], out[1], out[2], out[3]
    if not math.isfinite(total):
        return None
    return lo, hi, int(frac)


def colsum_f64(t: torch.Tensor, features: int, absolute: bool = False) -> torch.Tensor | None:
    """Column sums of ``t`` (or of ``|t|``) as (rows, ``features``), accumulated in float64 in
    one pass without a float64 copy; None where the kernel does not run."""
    lib = _lib_for(t)
    if lib is None or features < 1 or t.numel() % features:
        return None
    out = torch.zeros(features, dtype=torch.float64)
    lib.hw_colsum_f64(t.data_ptr(), t.numel() // features, features, out.data_ptr(), int(absolute))
    return out


def count_nonzero(t: torch.Tensor) -> int | None:
    """Nonzero values of ``t`` in one pass, or None (see :func:`row_stats`)."""
    lib = _lib_for(t)
    if lib is None:
        return None
    return int(lib.hw_count_nonzero_f32(t.data_ptr(), t.numel()))
