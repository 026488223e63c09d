
"""The hwcheck command (through a subprocess) and report files."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

import hwcheck
from hwcheck.cli import UsageError, parse_dt, parse_set, parse_shape

MODEL_SRC = textwrap.dedent(
    """
    import torch
    from torch import nn
    import sinabs.layers as sl

    def good():
        return nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, bias=False), sl.IAFSqueeze(batch_size=1),
                             nn.Flatten(), nn.Linear(4 * 7 * 7, 3, bias=False), sl.IAFSqueeze(batch_size=1))

    def bad():  # stride 3 is not a DYNAP-CNN stride
        return nn.Sequential(nn.Conv2d(2, 4, 3, stride=3, bias=False), sl.IAFSqueeze(batch_size=1))

    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3, bias=False)
            self.iaf = sl.IAFSqueeze(batch_size=1)
        def forward(self, x):
            if x.shape[0] > 1:  # fails on real data, after the static trace
                raise RuntimeError("forward failed halfway")
            return self.iaf(self.conv(x))

    boom = Boom()
    """
)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    p = d / "net.py"
    p.write_text(MODEL_SRC)
    return p


def run(*args, cwd=None):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-m", "hwcheck.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_parsers():
    assert parse_shape("2,128,128") == (2, 128, 128)
    assert parse_shape("2x16x16") == (2, 16, 16)
    assert parse_dt("1ms") == pytest.approx(1e-3)
    assert parse_dt("100us") == pytest.approx(1e-4)
    assert parse_dt("0.002") == pytest.approx(2e-3)
    assert parse_set(["energy.synop_pJ=12", "model.neuron_update=clock"]) == {
        "energy.synop_pJ": 12,
        "model.neuron_update": "clock",
    }
    for bad in ("2,a", "0,3", ""):
        with pytest.raises(UsageError):
            parse_shape(bad)
    for bad in ("fast", "0", "nan", "inf", "1min", "-1ms"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_dt(bad)
    with pytest.raises(UsageError):
        parse_set(["synop_pJ"])


def test_exit_0_when_it_fits_and_files_are_written(model_file, tmp_path):
    out = tmp_path / "rep"
    r = run("check", f"{model_file}:good", "--chip", "speck2f", "--input-shape", "2,16,16",
            "--timesteps", "5", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "speck2f" in r.stdout and "FITS" in r.stdout
    names = {p.name for p in out.iterdir()}
    for f in ("layers.csv", "cores.csv", "violations.csv", "energy.csv", "summary.csv", "summary.json",
              "report.md", "core_utilisation.png", "layer_synops.png"):
        assert f in names, f
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fits_all"] is True
    md = (out / "report.md").read_text()
    assert "synthetic Poisson" in md and "0.42" in md  # input assumption and the static power source


def test_exit_1_when_it_does_not_fit(model_file, tmp_path):
    r = run("check", f"{model_file}:bad", "--chip", "speck2f", "--input-shape", "2,16,16",
            "--no-save")
    assert r.returncode == 1, r.stderr
    assert "DOES NOT FIT" in r.stdout
    assert "stride" in r.stdout


def test_exit_2_missing_model(tmp_path):
    r = run("check", str(tmp_path / "nope.py") + ":net", "--chip", "speck2f", "--input-shape", "2,16,16")
    assert r.returncode == 2
    assert "not found" in r.stderr
    assert "Traceback" not in r.stderr


def test_exit_2_bad_input_shape(model_file):
    r = run("check", f"{model_file}:good", "--chip", "speck2f", "--input-shape", "2,x")
    assert r.returncode == 2
    assert "--input-shape" in r.stderr and "Traceback" not in r.stderr


def test_exit_2_unknown_chip_lists_known(model_file):
    r = run("check", f"{model_file}:good", "--chip", "nochip", "--input-shape", "2,16,16")
    assert r.returncode == 2
    assert "nochip" in r.stderr and "speck2f" in r.stderr


def test_exit_2_malformed_set(model_file):
    r = run("check", f"{model_file}:good", "--chip", "speck2f", "--input-shape", "2,16,16", "--set", "energy.synop_pJ")
    assert r.returncode == 2
    assert "--set" in r.stderr


def test_nothing_written_when_run_fails_halfway(model_file, tmp_path):
    out = tmp_path / "rep"
    r = run("check", f"{model_file}:boom", "--chip", "speck2f", "--input-shape", "2,16,16",
            "--timesteps", "4", "--out", str(out))
    assert r.returncode == 2
    assert "forward failed halfway" in r.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left behind


def test_help_has_examples():
    r = run("--help")
    assert r.returncode == 0 and "hwcheck demo" in r.stdout
    for sub in ("check", "demo", "chips", "chip", "calibrate"):
        r = run(sub, "--help")
        assert r.returncode == 0, sub
        assert "example" in r.stdout, sub


def test_chips_and_chip():
    r = run("chips")
    assert r.returncode == 0
    for name in hwcheck.list_profiles():
        assert name in r.stdout
    r = run("chip", "speck2f")
    assert r.returncode == 0 and "source:" in r.stdout and "sinabs" in r.stdout


def test_csv_round_trip(tmp_path):
    from hwcheck.examples import dvs_gesture_cnn, synthetic_events

    rep = hwcheck.report(dvs_gesture_cnn(), ["speck2f"], synthetic_events(10), name="rt", progress=False)
    out = rep.save(tmp_path / "rt", formats=("csv",))
    frames = {
        "layers.csv": rep.layers.reset_index(),
        "summary.csv": rep.summary.reset_index(),
        "violations.csv": rep.violations,
        "energy.csv": rep.energy,
        "cores.csv": rep.cores,
    }
    ids = {"layer": str, "core": str, "chip": str, "unit": str, "assigned_layer": str, "members": str}  # names like "0" would parse as int
    for fname, df in frames.items():
        back = pd.read_csv(out / fname, dtype={c: str for c in df.columns if c in ids or c.startswith("core_")})
        assert list(back.columns) == list(df.columns), fname
        for col in df.columns:
            if len(df):
                assert back[col].dtype.kind == df[col].dtype.kind or (
                    df[col].dtype.kind in "OU" or str(df[col].dtype) == "str"
                ) and (back[col].dtype.kind in "OU" or str(back[col].dtype) == "str") or (df[col].dtype.kind in "iuf" and back[col].dtype.kind in "iuf"), (fname, col, df[col].dtype, back[col].dtype)


def test_save_replaces_atomically(tmp_path):
    from hwcheck.examples import dvs_gesture_cnn

    rep = hwcheck.report(dvs_gesture_cnn(), ["speck2f"], input_shape=(2, 128, 128), name="static")
    out = rep.save(tmp_path / "static", formats=("csv", "md"))
    (out / "stale.txt").write_text("old")
    rep.save(tmp_path / "static", formats=("csv",))
    assert not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["static"]
    with pytest.raises(ValueError):
        rep.save(tmp_path / "x", formats=("pdf",))


def test_chip_all_one_row_per_profile_and_exit_status(model_file):
    r = run("check", f"{model_file}:good", "--chip", "all", "--input-shape", "2,16,16", "--no-save", "-q")
    assert r.returncode == 0, r.stderr  # fits at least speck2f and the dense devices
    rows = [line.split()[0] for line in r.stdout.splitlines() if line.strip()]
    assert sorted(rows) == sorted(hwcheck.list_profiles())
    # when no named chip fits, the status is 1
    r = run("check", f"{model_file}:bad", "--chip", "speck2f", "--chip", "speck2e", "--input-shape", "2,16,16", "--no-save", "-q")
    assert r.returncode == 1


def test_report_of_every_profile_saves(tmp_path):
    """One report over every bundled profile (all families) saves and reads back."""
    import sinabs.layers as sl
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, bias=False), sl.IAFSqueeze(batch_size=1),
                          nn.Flatten(), nn.Linear(4 * 7 * 7, 3, bias=False), sl.IAFSqueeze(batch_size=1))
    events = (torch.rand(5, 2, 16, 16) < 0.2).float()
    rep = hwcheck.report(model, "all", events, name="all")
    assert sorted(rep.summary.index) == sorted(hwcheck.list_profiles())
    out = rep.save(tmp_path / "all")
    cores = pd.read_csv(out / "cores.csv", dtype={"chip": str, "core": str})
    assert set(cores["chip"]) <= set(hwcheck.list_profiles())
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["chips"]) == len(hwcheck.list_profiles())
    assert (out / "chip_energy.png").exists()


def test_event_files_are_cut_into_the_models_batches():
    import sinabs.layers as sl
    import torch
    from torch import nn

    from hwcheck.cli import batches_for, synthetic
    from hwcheck.timing import TimeError, plan_batch

    model = nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), sl.IAFSqueeze(batch_size=3))
    events = torch.zeros(6, 5, 2, 8, 8)
    events[4, 2, 1, 3, 3] = 1.0  # sample 4, step 2
    (batch,) = batches_for(model, events, (2, 8, 8))
    plan = plan_batch(model, batch, "(BT)", features=3, data_layout="BT")
    assert [tuple(b.shape) for b in plan.calls] == [(15, 2, 8, 8), (15, 2, 8, 8)]
    assert (plan.samples, plan.steps) == (6, 5)
    assert plan.calls[1][1 * 5 + 2, 1, 3, 3] == 1.0  # sample 4 = second sample of the second batch
    with pytest.raises(TimeError, match="not a multiple"):
        plan_batch(model, events[:4], "(BT)", features=3, data_layout="BT")
    with pytest.raises(UsageError, match="does not end in"):
        batches_for(model, events, (2, 7, 7))
    (batch,) = synthetic(model, (2, 8, 8), timesteps=4, rate_hz=100, dt=1e-3)
    assert tuple(batch.shape) == (3, 4, 2, 8, 8)  # one batch of the model's 3 samples, batch-first


def test_static_check_reports_every_layer_and_chip_all_ignores_baselines(tmp_path, capsys):
    from hwcheck.cli import main

    src = tmp_path / "nets.py"
    # an ANN (conv + ReLU, no spiking neurons) fits no neuromorphic chip, only the dense baselines
    src.write_text(
        "import torch.nn as nn, sinabs.layers as sl\n"
        "small = nn.Sequential(nn.Linear(4, 3, bias=False), sl.IAFSqueeze(batch_size=1))\n"
        "ann = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU())\n"
    )
    out = tmp_path / "r"
    rc = main(["check", f"{src}:small", "--chip", "loihi", "--input-shape", "4", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "synapses" in printed and "Linear" in printed
    layers = pd.read_csv(out / "layers.csv", index_col=0, dtype={"layer": str})
    assert layers.loc["0", "synapses"] == 12 and layers.loc["1", "neurons"] == 3
    assert "## Layers (static" in (out / "report.md").read_text()
    rc = main(["check", f"{src}:ann", "--chip", "all", "--input-shape", "2,8,8", "--no-save", "-q"])
    assert rc == 1  # only the dense baselines "fit"
    rc = main(["check", f"{src}:small", "--chip", "all", "--input-shape", "4", "--no-save", "-q"])
    assert rc == 0


def test_default_report_name_comes_from_the_model():
    from hwcheck.cli import default_name

    assert default_name("models/mynet.py:net") == "mynet-net"
    assert default_name("mypkg.models:build") == "models-build"
    assert default_name("saved/net.pt") == "net"
    assert default_name("weird name.py:x y") == "weird_name-x_y"


def test_html_report_is_one_self_contained_page(model_file, tmp_path):
    out = tmp_path / "rep"
    r = run("check", f"{model_file}:good", "--chip", "speck2f", "--chip", "loihi", "--input-shape",
            "2,16,16", "--timesteps", "5", "--out", str(out), "--format", "html", "-q")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["report.html"]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "fits: " in page and "<table>" in page and "Assumptions and sources" in page
    assert page.count("data:image/png;base64,") >= 2  # the plots, inline
    for outside in ('src="http', "href=", "<script", "@import"):
        assert outside not in page  # nothing to fetch: opens as a CI artifact


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt install chromium)")
def test_html_report_renders_in_a_headless_browser(model_file, tmp_path):
    out = tmp_path / "rep"
    r = run("check", f"{model_file}:good", "--chip", "speck2f", "--input-shape", "2,16,16",
            "--timesteps", "5", "--out", str(out), "--format", "html", "-q")  # fmt: skip
    assert r.returncode == 0, r.stderr
    url = (out / "report.html").as_uri()
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-500:]
    assert "<h1>hwcheck report: " in dom.stdout and "FITS" in dom.stdout
    assert dom.stdout.count("<table>") >= 4  # summary, totals, layers, violations/cores
    shot = tmp_path / "page.png"
    subprocess.run([*browser, "--window-size=1280,2000", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    assert shot.stat().st_size > 20_000  # a page with content, not a blank one


def test_a_python_file_without_attr_uses_its_only_model_or_lists_them(tmp_path):
    (tmp_path / "one.py").write_text(
        "import torch.nn as nn, sinabs.layers as sl\n"
        "net = nn.Sequential(nn.Linear(4, 3), sl.IAFSqueeze(batch_size=1))\n"
    )
    r = run("check", "one.py", "--chip", "loihi", "--input-shape", "4", "-q", "--no-save", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "using one.py:net" in r.stderr
    (tmp_path / "two.py").write_text(
        "import torch.nn as nn, sinabs.layers as sl\n"
        "a = nn.Sequential(nn.Linear(4, 3), sl.IAFSqueeze(batch_size=1))\n"
        "def make():\n    return nn.Linear(4, 2)\n"
    )
    r = run("check", "two.py", "--chip", "loihi", "--input-shape", "4", "-q", "--no-save", cwd=tmp_path)
    assert r.returncode == 2 and "candidates: a, make" in r.stderr


def test_input_shape_comes_from_the_data_when_not_given(tmp_path):
    (tmp_path / "one.py").write_text(
        "import torch.nn as nn, sinabs.layers as sl\n"
        "net = nn.Sequential(nn.Conv2d(2, 3, 3), sl.IAFSqueeze(batch_size=1))\n"
    )
    import torch

    torch.save((torch.rand(2, 5, 2, 6, 7) < 0.3).float(), tmp_path / "d.pt")  # (B, T, C, H, W)
    r = run("check", "one.py:net", "--chip", "loihi", "--data", "d.pt", "--no-save", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "3x4x5" in r.stdout  # the conv output of a 2x6x7 input read from the data
    r = run("check", "one.py:net", "--chip", "loihi", "--no-save", cwd=tmp_path)
    assert r.returncode == 2 and "--input-shape is needed without --data" in r.stderr


def test_bandwidth_section_only_where_a_limit_is_published(tmp_path):
    """No bundled profile publishes an event-rate limit: the report leaves its Bandwidth section
    out and says so once; the traffic figures stay in bandwidth.csv. A limit (here set by hand)
    brings the section back with the checked rows only."""
    import sinabs.layers as sl
    from torch import nn

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0),
                          nn.Flatten(), nn.Linear(4 * 14 * 14, 5, bias=False), sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0))  # fmt: skip
    x = (torch.rand(10, 2, 16, 16) < 0.3).float()
    rep = hwcheck.report(model, "speck2f", x)
    md = rep.markdown()
    assert "## Bandwidth" not in md
    assert "no published event-rate limit for speck2f" in md
    assert len(rep.bandwidth) and rep.bandwidth["limit_per_s"].isna().all()
    assert len(rep.bandwidth_checked) == 0
    out = rep.save(tmp_path / "a", formats=("csv", "md"))
    assert len(pd.read_csv(out / "bandwidth.csv")) == len(rep.bandwidth)

    rep2 = hwcheck.report(model, "speck2f", x, overrides={"bandwidth.input_events_per_s": 10.0})
    md2 = rep2.markdown()
    assert "## Bandwidth (against published limits)" in md2
    assert "no published event-rate limit" not in md2
    checked = rep2.bandwidth_checked
    assert list(checked["limit_name"]) == ["input_events_per_s"] and (checked["load_ratio"] > 1).all()
