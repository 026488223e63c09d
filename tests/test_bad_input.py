"""Bad and hostile input: every case gets the exact exit status (CLI) or exception (API) and a
message that names the offending thing. One line per case."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import hwcheck
from hwcheck.cli import main
from hwcheck.safe_write import MANIFEST, OutputError

MODEL_SRC = """
import torch.nn as nn, sinabs.layers as sl
net = nn.Sequential(nn.Linear(4, 3, bias=False), sl.IAF())
def build():
    return nn.Sequential(nn.Linear(4, 3, bias=False), sl.IAF())
not_a_model = 42
def broken():
    raise RuntimeError("factory exploded")
class Bad(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(4, 3)
    def forward(self, x):
        raise KeyError("model bug")
bad = Bad()
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("bad")
    (d / "m.py").write_text(MODEL_SRC)
    (d / "exits.py").write_text("import sys\nsys.exit(0)\n")
    (d / "raises.py").write_text("raise ImportError('missing dependency xyz')\n")
    (d / "empty.py").write_text("")
    (d / "syntax.py").write_text("def (:\n")
    np.save(d / "ok.npy", (np.random.default_rng(0).random((5, 4)) < 0.3).astype(np.float32))
    np.save(d / "nan.npy", np.full((5, 4), np.nan, dtype=np.float32))
    np.save(d / "wrongshape.npy", np.zeros((5, 7), dtype=np.float32))
    np.save(d / "zero_t.npy", np.zeros((1, 0, 4), dtype=np.float32))
    np.savez(d / "empty.npz")
    (d / "data.txt").write_text("1 2 3\n")
    (d / "corrupt.pt").write_bytes(b"not a torch file at all")
    (d / "corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    torch.save({"a": torch.zeros(2)}, d / "dict.pt")
    (d / "blob.bin").write_bytes(b"\x00\x01\x02")
    loihi = (Path(hwcheck.__file__).resolve().parent / "chip_profiles" / "loihi.toml").read_text()
    (d / "zero_npc.toml").write_text(loihi.replace("[limits.neurons_per_core]\nvalue = 1024", "[limits.neurons_per_core]\nvalue = 0"))
    (d / "latin1.toml").write_bytes("name = 'caf\xe9'\n".encode("latin-1"))
    (d / "notoml.toml").write_text("this is = = not toml\n")
    (d / "afile").write_text("user data\n")
    (d / "userdir").mkdir()
    (d / "userdir" / "keep.txt").write_text("precious\n")
    return {k: str(d / v) for k, v in {
        "m": "m.py", "exits": "exits.py", "raises": "raises.py", "empty": "empty.py", "syntax": "syntax.py",
        "ok": "ok.npy", "nan": "nan.npy", "wrongshape": "wrongshape.npy", "zero_t": "zero_t.npy",
        "empty_npz": "empty.npz", "txt": "data.txt", "corrupt_pt": "corrupt.pt", "corrupt_npy": "corrupt.npy",
        "dict_pt": "dict.pt", "blob": "blob.bin", "zero_npc": "zero_npc.toml", "latin1": "latin1.toml",
        "notoml": "notoml.toml", "afile": "afile", "userdir": "userdir", "dir": ".",
    }.items()} | {"root": str(d)}  # fmt: skip


BASE = ["check", "{m}:net", "--chip", "loihi", "--input-shape", "4", "--no-save"]

# (argv, exit status, text the message must contain)
CLI_CASES = [
    # -- time step, steps, rates
    (BASE + ["--dt", "0"], 2, "--dt"),
    (BASE + ["--dt", "nan"], 2, "--dt"),
    (BASE + ["--dt", "inf"], 2, "--dt"),
    (BASE + ["--dt", "1min"], 2, "--dt"),
    (BASE + ["--dt", "-1ms"], 2, "--dt"),
    (BASE + ["--dt", ""], 2, "--dt"),
    (BASE + ["--dt", "fast"], 2, "--dt"),
    (BASE + ["--timesteps", "0"], 2, "--timesteps"),
    (BASE + ["--timesteps", "-5"], 2, "--timesteps"),
    (BASE + ["--timesteps", "2.5"], 2, "--timesteps"),
    (BASE + ["--timesteps", "ten"], 2, "--timesteps"),
    (BASE + ["--timesteps", "5", "--input-rate", "-100"], 2, "--input-rate"),
    (BASE + ["--timesteps", "5", "--input-rate", "nan"], 2, "--input-rate"),
    (BASE + ["--timesteps", "5", "--input-rate", "inf"], 2, "--input-rate"),
    (BASE + ["--timesteps", "5", "--input-rate", "lots"], 2, "--input-rate"),
    (BASE + ["--seed", "x"], 2, "--seed"),
    # -- shapes
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "0", "--no-save"], 2, "--input-shape"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "-4", "--no-save"], 2, "--input-shape"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "a,b", "--no-save"], 2, "--input-shape"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "", "--no-save"], 2, "--input-shape"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "2.7", "--no-save"], 2, "--input-shape"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "99999999999999999999", "--no-save"], 2, "--input-shape"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "100000,100000", "--no-save"], 2, "--input-shape"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "5", "--no-save"], 2, "in forward of Sequential"),
    (["check", "{m}:net", "--chip", "loihi", "--no-save"], 2, "--input-shape"),
    # -- model specs
    (["check", "{root}/nope.py:net", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "nope.py"),
    (["check", "{m}:missing", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "missing"),
    (["check", "{m}:not_a_model", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "not_a_model"),
    (["check", "{m}:broken", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "factory exploded"),
    (["check", "{exits}:net", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "sys.exit"),
    (["check", "{raises}:net", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "while importing"),
    (["check", "{syntax}:net", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "while importing"),
    (["check", "{empty}:net", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "net"),
    (["check", "{m}:bad", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "in forward of Bad"),
    (["check", "{m}:bad", "--chip", "loihi", "--input-shape", "4", "--no-save", "--timesteps", "3"], 2, "model bug"),
    (["check", "{m}", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "net, build"),
    (["check", "no_such_pkg_xyz:net", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "no_such_pkg_xyz"),
    (["check", "{corrupt_pt}", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "corrupt.pt"),
    (["check", "{blob}", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "blob.bin"),
    (["check", "{dict_pt}", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "dict.pt"),
    (["check", "{root}/absent.pt", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "absent.pt"),
    # -- data files
    (BASE + ["--data", "{nan}"], 2, "NaN"),
    (BASE + ["--data", "{wrongshape}"], 2, "--input-shape"),
    (BASE + ["--data", "{zero_t}"], 2, "no samples or no time steps"),
    (BASE + ["--data", "{empty_npz}"], 2, "no arrays"),
    (BASE + ["--data", "{txt}"], 2, ".txt"),
    (BASE + ["--data", "{corrupt_npy}"], 2, "corrupt.npy"),
    (BASE + ["--data", "{corrupt_pt}"], 2, "corrupt.pt"),
    (BASE + ["--data", "{dict_pt}"], 2, "dict.pt"),
    (BASE + ["--data", "{root}/absent.npy"], 2, "absent.npy"),
    (BASE + ["--data", "{ok}", "--timesteps", "5"], 2, "not allowed"),
    # -- chips and profiles
    (["check", "{m}:net", "--chip", "nochip", "--input-shape", "4", "--no-save"], 2, "nochip"),
    (["check", "{m}:net", "--chip", "{zero_npc}", "--input-shape", "4", "--no-save"], 2, "neurons_per_core"),
    (["check", "{m}:net", "--chip", "{latin1}", "--input-shape", "4", "--no-save"], 2, "latin1.toml"),
    (["check", "{m}:net", "--chip", "{notoml}", "--input-shape", "4", "--no-save"], 2, "notoml.toml"),
    (["check", "{m}:net", "--chip", "{root}/absent.toml", "--input-shape", "4", "--no-save"], 2, "absent.toml"),
    (BASE + ["--set", "energy.synop_pj=12"], 2, "energy.synop_pJ"),
    (BASE + ["--set", "limits.bogus=5"], 2, "limits.bogus"),
    (BASE + ["--set", "energy.synop_pJ=-1"], 2, "energy.synop_pJ"),
    (BASE + ["--set", "energy.synop_pJ=inf"], 2, "energy.synop_pJ"),
    (BASE + ["--set", "energy.synop_pJ=abc"], 2, "energy.synop_pJ"),
    (BASE + ["--set", "limits.neurons_per_core=0"], 2, "neurons_per_core"),
    (BASE + ["--set", "limits.cores_per_chip=0"], 2, "cores_per_chip"),
    (BASE + ["--set", "nodot=1"], 2, "--set"),
    (BASE + ["--set", "energy.synop_pJ"], 2, "--set"),
    (BASE + ["--set", "bogus.key=1"], 2, "bogus.key"),
    (BASE + ["--set", "model.neuron_update=sometimes"], 2, "model.neuron_update"),
    (BASE + ["--layout", "XY"], 2, "--layout"),
    (BASE + ["--layout", "(BT)"], 2, "Squeeze"),
    # -- output
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "4", "--format", "pdf"], 2, "pdf"),
    (BASE + ["--format", "pdf"], 2, "pdf"),
    (BASE + ["--format", ","], 2, "--format"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "4", "--name", ""], 2, "name"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "4", "--name", "."], 2, "name"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "4", "--name", ".."], 2, "name"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "4", "--name", "../.."], 2, "name"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "4", "--name", "/abs"], 2, "name"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "4", "--name", ".hidden"], 2, "name"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "4", "--out", "{afile}"], 2, "afile"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "4", "--out", "{userdir}"], 2, "not an hwcheck report"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "4", "--out", "{dir}"], 2, "not an hwcheck report"),
    (["check", "{m}:net", "--chip", "loihi", "--input-shape", "4", "--out", "{afile}/sub"], 2, "afile"),
    # -- commands and debug
    ([], 2, "usage"),
    (["frobnicate"], 2, "frobnicate"),
    (["check"], 2, "model"),
    (["chip", "nochip"], 2, "nochip"),
    (["--debug", *BASE, "--dt", "0"], 2, "--dt"),
    (["--debug", "check", "{m}:missing", "--chip", "loihi", "--input-shape", "4", "--no-save"], 2, "missing"),
    (["calibrate", "{m}:net", "--chip", "loihi", "--input-shape", "4", "--out", "{root}/c.toml"], 2, "--power-mW"),
    (["calibrate", "{m}:net", "--chip", "loihi", "--input-shape", "4", "--power-mW", "1", "--energy-uJ", "1",
      "--out", "{root}/c.toml"], 2, "exactly one"),
    (["calibrate", "{m}:net", "--chip", "loihi", "--input-shape", "4", "--power-mW", "1", "--timesteps", "0",
      "--out", "{root}/c.toml"], 2, "--timesteps"),
    # -- accepted: these must work
    (BASE, 0, "FITS"),
    (BASE + ["--timesteps", "5"], 0, "FITS"),
    (BASE + ["--data", "{ok}"], 0, "FITS"),
    (BASE + ["--set", "energy.synop_pJ=12"], 0, "FITS"),
    (BASE + ["--timesteps", "5", "--input-rate", "0"], 0, "FITS"),
    (BASE + ["--timesteps", "5", "--input-rate", "5000"], 0, "saturates"),
    (BASE + ["--dt", "1"], 0, "bare number is seconds"),
    (["check", "{m}:build", "--chip", "loihi", "--input-shape", "4", "--no-save"], 0, "FITS"),
    (["check", "m:net", "--chip", "loihi", "--input-shape", "4", "--no-save"], 0, "FITS"),  # module in the cwd
]


@pytest.mark.parametrize("argv,status,text", CLI_CASES, ids=[" ".join(c[0][3:] or c[0])[:60] for c in CLI_CASES])
def test_cli_bad_input(files: dict[str, str], capsys: pytest.CaptureFixture, argv: list[str], status: int, text: str) -> None:
    args = [a.format(**files) for a in argv]
    cwd = os.getcwd()
    os.chdir(files["root"])
    try:
        try:
            rc = main(args)
        except SystemExit as exc:  # argparse
            rc = exc.code
    finally:
        os.chdir(cwd)
    out = capsys.readouterr()
    text_out = out.out + out.err
    assert rc == status, text_out
    assert text.lower() in text_out.lower(), text_out
    if status == 2:
        assert "Traceback" not in out.err or "--debug" in args


def _net() -> nn.Module:
    import sinabs.layers as sl

    return nn.Sequential(nn.Linear(4, 3, bias=False), sl.IAF())


def _nan_weights() -> nn.Module:
    net = _net()
    with torch.no_grad():
        net[0].weight[0, 0] = math.nan
    return net


x_ok = torch.zeros(2, 5, 4)

# (call, exception type, text in the message)
API_CASES = [
    (lambda: hwcheck.analyze(_net(), x_ok, dt=0), ValueError, "dt"),
    (lambda: hwcheck.analyze(_net(), x_ok, dt=-1e-3), ValueError, "dt"),
    (lambda: hwcheck.analyze(_net(), x_ok, dt=math.nan), ValueError, "dt"),
    (lambda: hwcheck.analyze(_net(), x_ok, dt=math.inf), ValueError, "dt"),
    (lambda: hwcheck.analyze(_net(), x_ok, dt="1ms"), ValueError, "dt"),
    (lambda: hwcheck.analyze(_net(), None), TypeError, "needs data"),
    (lambda: hwcheck.analyze(_net(), 42), TypeError, "data must be"),
    (lambda: hwcheck.analyze(_net(), "events.npy"), TypeError, "data must be"),
    (lambda: hwcheck.analyze(_net(), []), ValueError, "no data"),
    (lambda: hwcheck.analyze(_net(), [1, 2]), TypeError, "tensors"),
    (lambda: hwcheck.analyze(_net(), torch.full((2, 5, 4), math.nan)), ValueError, "NaN"),
    (lambda: hwcheck.analyze(_net(), torch.full((2, 5, 4), math.inf)), ValueError, "infinite"),
    (lambda: hwcheck.analyze(_net(), torch.zeros(2, 5, 3, 4)), ValueError, "dimensions"),
    (lambda: hwcheck.analyze(_net(), torch.zeros(4)), ValueError, "dimension(s)"),
    (lambda: hwcheck.analyze(_net(), x_ok, layout="XY"), ValueError, "layout"),
    (lambda: hwcheck.analyze(_net(), x_ok, data_layout="YX"), ValueError, "data_layout"),
    (lambda: hwcheck.analyze(_net(), x_ok, layout="(BT)"), ValueError, "Squeeze"),
    (lambda: hwcheck.describe(_net(), (2.7,)), ValueError, "whole numbers"),
    (lambda: hwcheck.describe(_net(), (0,)), ValueError, "positive"),
    (lambda: hwcheck.describe(_net(), ()), ValueError, "input_shape"),
    (lambda: hwcheck.describe(_net(), 4), ValueError, "input_shape"),
    (lambda: hwcheck.describe(_net(), ("a",)), ValueError, "input_shape"),
    (lambda: hwcheck.describe(nn.Sequential(), (4,)), ValueError, "no layers"),
    (lambda: hwcheck.check(_net(), chip="loihi"), ValueError, "input_shape"),
    (lambda: hwcheck.check(_net(), chip="nochip", input_shape=(4,)), hwcheck.ProfileError, "nochip"),
    (lambda: hwcheck.check(_net(), chip="loihi", input_shape=(4,), overrides={"limits.bogus": 1}), hwcheck.ProfileError, "limits.bogus"),
    (lambda: hwcheck.check(_net(), chip="loihi", input_shape=(4,), overrides={"energy.synop_pj": 1}), hwcheck.ProfileError, "synop_pJ"),
    (lambda: hwcheck.check(_net(), chip="loihi", input_shape=(4,), overrides={"limits.neurons_per_core": 0}), hwcheck.ProfileError, "neurons_per_core"),
    (lambda: hwcheck.check(_net(), chip="xylo-audio2", input_shape=(4,), overrides={"limits.clock_hz": 0}), hwcheck.ProfileError, "clock_hz"),
    (lambda: hwcheck.check(_net(), chip="loihi", input_shape=(4,), overrides={"energy.synop_pJ": math.nan}), hwcheck.ProfileError, "synop_pJ"),
    (lambda: hwcheck.check(torch.jit.script(nn.Sequential(nn.Linear(4, 3))), chip="loihi", input_shape=(4,)), TypeError, "TorchScript"),
    (lambda: hwcheck.report(_net(), [], input_shape=(4,)), ValueError, "chip"),
    (lambda: hwcheck.report(_net(), ["loihi"]), ValueError, "input_shape"),
    (lambda: hwcheck.report(_net(), ["loihi"], x_ok, dt=0), ValueError, "dt"),
    (lambda: hwcheck.report(_net(), ["loihi"], input_shape=(4,), name="../x").save(), OutputError, "name"),
    (lambda: hwcheck.report(_net(), ["loihi"], input_shape=(4,), name="").save(), OutputError, "name"),
    (lambda: hwcheck.report(_net(), ["loihi"], input_shape=(4,)).save(formats=("pdf",)), ValueError, "pdf"),
    (lambda: hwcheck.load_profile("nochip"), hwcheck.ProfileError, "nochip"),
    (lambda: hwcheck.load_profile("loihi", {"nodot": 1}), hwcheck.ProfileError, "nodot"),
    (lambda: hwcheck.check(_nan_weights(), chip="xylo-audio2", input_shape=(4,)), ValueError, "NaN"),
    (lambda: hwcheck.analyze(_nan_weights(), x_ok), ValueError, "NaN"),
    (lambda: hwcheck.check("net.py", chip="loihi", input_shape=(4,)), TypeError, "nn.Module"),
    (lambda: hwcheck.analyze(None, x_ok), TypeError, "nn.Module"),
    (lambda: hwcheck.describe({"weight": torch.zeros(3, 4)}, (4,)), TypeError, "nn.Module"),
    (lambda: hwcheck.analyze(_net(), torch.zeros(2, 0, 4)), ValueError, "empty"),
    (lambda: hwcheck.analyze(_net(), torch.zeros(0, 5, 4)), ValueError, "empty"),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_models_of_other_float_dtypes_are_counted(dtype: torch.dtype) -> None:
    net = _net()
    with torch.no_grad():
        net[0].weight.fill_(1.0)
    a = hwcheck.analyze(net.to(dtype), torch.ones(2, 5, 4))
    assert a.summary()["synops"] == 5 * 4 * 3  # 5 steps x 4 events x fan-out 3, per sample


def test_calibrate_out_leaves_no_temporary(tmp_path: Path) -> None:
    prof, path = hwcheck.calibrate(_net(), torch.ones(1, 5, 4), "loihi", measured_energy_uJ=1000.0, out_path=tmp_path / "c.toml")
    assert path is not None and path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["c.toml"]
    assert hwcheck.load_profile(path).energy["synop_pJ"].value == prof.energy["synop_pJ"].value


@pytest.mark.parametrize("call,exc,text", API_CASES, ids=[f"{i}-{c[2]}" for i, c in enumerate(API_CASES)])
def test_api_bad_input(call, exc, text) -> None:  # noqa: ANN001
    with pytest.raises(exc) as info:
        call()
    assert text.lower() in str(info.value).lower()


# --------------------------------------------------------------------------- the report writer


def _report(name: str = "r") -> hwcheck.Report:
    return hwcheck.report(_net(), ["loihi"], input_shape=(4,), name=name)


def test_save_replaces_only_its_own_reports(tmp_path: Path) -> None:
    out = _report().save(tmp_path / "r", ("csv",))
    assert (out / MANIFEST).is_file() and (out / "layers.csv").is_file()
    _report().save(out, ("md",))  # an earlier report is replaced
    assert (out / "report.md").is_file() and not (out / "layers.csv").exists()
    user = tmp_path / "mine"
    user.mkdir()
    (user / "keep.txt").write_text("precious")
    with pytest.raises(OutputError, match="not an hwcheck report"):
        _report().save(user)
    assert (user / "keep.txt").read_text() == "precious"
    f = tmp_path / "file"
    f.write_text("data")
    with pytest.raises(OutputError, match="is a file"):
        _report().save(f)
    assert f.read_text() == "data"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (_report().save(empty, ("md",)) / "report.md").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_a_report_of_an_earlier_version_without_manifest_is_replaced(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "summary.csv").write_text("chip\n")
    (old / "layers.csv").write_text("layer\n")
    _report().save(old, ("md",))
    assert (old / MANIFEST).is_file() and not (old / "summary.csv").exists()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "summary.csv").write_text("chip\n")
    (mixed / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not an hwcheck report"):
        _report().save(mixed)
    assert (mixed / "notes.txt").read_text() == "mine"


def test_report_folder_follows_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = _report().save(tmp_path / "r", ("md",))
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("fail_at", ["fill", "manifest", "exchange", "rename_new", "cleanup"])
def test_a_failure_at_any_step_keeps_the_old_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str) -> None:
    import hwcheck.safe_write as sw

    out = _report().save(tmp_path / "r", ("md",))
    before = (out / "report.md").read_text()

    class Boom(RuntimeError):
        pass

    def boom(*a, **k):  # noqa: ANN002, ANN003
        raise Boom(fail_at)

    if fail_at == "fill":
        monkeypatch.setattr(hwcheck.Report, "markdown", boom)
    elif fail_at == "manifest":
        monkeypatch.setattr(sw.json, "dumps", boom)
    elif fail_at == "exchange":
        monkeypatch.setattr(sw, "_exchange", boom)
    elif fail_at == "rename_new":  # the two-rename path: fail the second rename
        monkeypatch.setattr(sw, "_exchange", lambda a, b: False)
        real = Path.rename

        def rename(self: Path, target: Path) -> Path:  # noqa: ANN001
            if self.name.startswith(".r.new-"):
                raise Boom("rename")
            return real(self, target)

        monkeypatch.setattr(Path, "rename", rename)
    elif fail_at == "cleanup":
        monkeypatch.setattr(sw.shutil, "rmtree", boom)
    try:
        _report().save(out, ("md",))
    except Boom:
        pass
    monkeypatch.undo()
    assert (out / "report.md").is_file() and (out / MANIFEST).is_file()
    if fail_at != "cleanup":
        assert (out / "report.md").read_text() == before


def test_an_orphaned_backup_is_put_back(tmp_path: Path) -> None:
    out = _report().save(tmp_path / "r", ("md",))
    orphan = tmp_path / ".r.old-abc"
    out.rename(orphan)  # what a crash between two renames leaves
    _report().save(out, ("md",))
    assert (out / "report.md").is_file() and not orphan.exists()
