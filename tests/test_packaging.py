"""A built wheel works outside the checkout: chip profiles ship inside the package.

The wheel is built from this checkout and installed into a fresh virtual environment in a
temporary folder; that environment sees the test environment's dependencies (torch, sinabs...)
through a ``.pth`` file but not this checkout, so ``hwcheck`` can only come from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("wheel")
    built = _run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp / "dist")],
        cwd=tmp,
    )  # fmt: skip
    if built.returncode != 0 and "No module named" in built.stderr:
        pytest.skip(f"cannot build a wheel here: {built.stderr.strip()[-200:]}")
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("hwcheck-*.whl")
    venv = tmp / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp).returncode == 0
    python = venv / "bin" / "python"
    site = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp)
        .stdout.strip()
    )
    # the dependencies of the test environment, without its editable hwcheck
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    installed = _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        cwd=tmp,
    )
    assert installed.returncode == 0, installed.stderr
    return wheel, python


def test_the_wheel_carries_every_chip_profile(wheel_env):
    wheel, _ = wheel_env
    names = zipfile.ZipFile(wheel).namelist()
    bundled = sorted(p.name for p in (ROOT / "hwcheck" / "chip_profiles").glob("*.toml"))
    shipped = sorted(Path(n).name for n in names if n.startswith("hwcheck/chip_profiles/"))
    assert bundled and shipped == bundled


def test_installed_wheel_runs_the_demo_outside_the_checkout(wheel_env, tmp_path):
    _, python = wheel_env
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HWCHECK_PROFILES")}
    where = _run([str(python), "-c", "import hwcheck; print(hwcheck.__file__)"], cwd=tmp_path, env=env)
    assert where.returncode == 0, where.stderr
    assert not Path(where.stdout.strip()).is_relative_to(ROOT)  # the wheel, not this checkout
    chips = _run([str(python), "-m", "hwcheck", "chips"], cwd=tmp_path, env=env)
    assert chips.returncode == 0 and "speck2f" in chips.stdout and "loihi" in chips.stdout
    demo = _run([str(python), "-m", "hwcheck", "demo", "--out", str(tmp_path / "demo"), "-q"],
                cwd=tmp_path, env=env)  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    assert (tmp_path / "demo" / "report.md").is_file() and (tmp_path / "demo" / "report.html").is_file()
    version = _run([str(python), "-m", "hwcheck", "--version"], cwd=tmp_path, env=env)
    assert version.stdout.split() == ["hwcheck", _pyproject_version()]


def _pyproject_version() -> str:
    for line in (ROOT / "pyproject.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise AssertionError("no version in pyproject.toml")
