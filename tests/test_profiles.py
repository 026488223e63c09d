"""Chip profiles: every bundled profile loads; malformed ones fail with the file and the key.

The malformed profiles are the bundled speck2f.toml with one defect each, written to tmp_path.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hwcheck.profiles import (
    FIGURE_KINDS,
    ProfileError,
    list_profiles,
    load_profile,
    profile_dirs,
)

BUNDLED = profile_dirs()[-1]
DYNAPCNN_PROFILES = ("speck2f", "speck2e", "dynapcnn", "speck2cmini")
SPECK_KERNEL = [16384, 16384, 16384, 32768, 32768, 65536, 65536, 16384, 16384]
SPECK_NEURON = [65536, 65536, 65536, 32768, 32768, 16384, 16384, 16384, 16384]


def bundled_names() -> list[str]:
    return sorted(p.stem for p in BUNDLED.glob("*.toml"))


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_profile_loads(name: str):
    p = load_profile(name)
    assert p.name == name
    assert Path(p.path).resolve() == (BUNDLED / f"{name}.toml").resolve()
    for section, fig in p.figures():
        assert fig.source.strip(), (section, fig.key)
        assert fig.kind in FIGURE_KINDS


def test_bundled_profiles_are_listed():
    assert set(DYNAPCNN_PROFILES) <= set(list_profiles())


@pytest.mark.parametrize("name", DYNAPCNN_PROFILES)
def test_dynapcnn_profiles(name: str):
    p = load_profile(name)
    assert p.family == "dynapcnn"
    n = p.limit("n_cores")
    for key in ("kernel_memory_words", "neuron_memory_words", "bias_memory_words"):
        assert len(p.limit(key)) == n, key
        assert p.limits[key].unit == "words"
    assert p.limit("strides") == [1, 2, 4, 8]
    assert p.limit("pooling_sizes") == [1, 2, 4]
    assert (p.limit("max_input_px"), p.limit("max_output_map_px")) == (128, 64)
    assert (p.limit("max_channels"), p.limit("max_kernel_px"), p.limit("max_padding_px")) == (
        1024,
        16,
        7,
    )
    assert (p.limit("destinations_per_core"), p.limit("weight_bits"), p.limit("state_bits")) == (
        2,
        8,
        16,
    )
    assert p.limit("neuron_model") == "IAF"
    assert (p.synop_convention, p.neuron_update) == ("synops", "event")
    # no per-synop energy is published: left out, and the description says so
    assert "synop_pJ" not in p.energy and "synop" in p.description
    # every figure cites a reference ID from chip-facts.md (or is a sum of cited figures)
    for _, fig in p.figures():
        assert "[" in fig.source or fig.source.startswith("sum of"), fig.key


def test_speck_tables_and_totals():
    for name in ("speck2f", "speck2e", "dynapcnn"):
        p = load_profile(name)
        assert p.limit("kernel_memory_words") == SPECK_KERNEL
        assert p.limit("neuron_memory_words") == SPECK_NEURON
        assert p.limit("bias_memory_words") == [1024] * 9
        assert sum(p.limit("neuron_memory_words")) == 327680  # the "0.32 M neurons"
        assert sum(p.limit("kernel_memory_words")) == 278528
    mini = load_profile("speck2cmini")
    assert mini.limit("kernel_memory_words") == [16384, 32768, 32768, 65536, 16384]
    assert mini.limit("neuron_memory_words") == [65536, 32768, 32768, 16384, 16384]
    assert mini.limit("bias_memory_words") == [0, 0, 0, 1024, 1024]


def test_speck_power_figures():
    for name in ("speck2f", "speck2e"):
        p = load_profile(name)
        st = p.energy["static_power_mW"]
        assert (st.value, st.unit, st.kind) == (0.42, "mW", "measured") and "YAO24" in st.source
        assert "resting" in st.note
        rails = [
            f
            for k, f in p.power.items()
            if k.startswith("devkit_idle_") and k != "devkit_idle_total_uW"
        ]
        assert len(rails) == 5 and all(f.kind == "measured" and f.unit == "uW" for f in rails)
        total = p.power["devkit_idle_total_uW"]
        assert total.kind == "derived"
        assert math.isclose(sum(f.value for f in rails), total.value, abs_tol=0.05)
    assert "static_power_mW" not in load_profile("dynapcnn").energy
    assert load_profile("speck2f").power["devkit_idle_total_uW"].value == pytest.approx(1170.2)
    assert load_profile("speck2e").power["devkit_idle_total_uW"].value == pytest.approx(1193.5)


# --------------------------------------------------------------------------- malformed


def _block(text: str, header: str) -> tuple[int, int]:
    """Start and end offsets of the ``[header]`` table in ``text``."""
    start = text.index(f"[{header}]\n")
    nxt = text.find("\n[", start + 1)
    return start, len(text) if nxt < 0 else nxt + 1


def _in_block(header: str, old: str, new: str):
    def edit(text: str) -> str:
        a, b = _block(text, header)
        block = text[a:b]
        assert block.count(old) == 1, (header, old)
        return text[:a] + block.replace(old, new) + text[b:]

    return edit


def _drop_block(header: str):
    def edit(text: str) -> str:
        a, b = _block(text, header)
        return text[:a] + text[b:]

    return edit


def _prepend(line: str):
    return lambda text: line + "\n" + text


def _append(chunk: str):
    return lambda text: text.rstrip() + "\n\n" + chunk + "\n"


def _replace(old: str, new: str):
    def edit(text: str) -> str:
        assert text.count(old) == 1, old
        return text.replace(old, new)

    return edit


MALFORMED = [
    # (id, edit, text the error must contain besides the file name)
    ("unknown-top-key", _prepend('colour = "red"'), "colour"),
    ("unknown-figure-field", _in_block("limits.n_cores", 'kind = "spec"', 'kind = "spec"\ncolour = "red"'), "limits.n_cores"),
    ("missing-source", _in_block("limits.max_channels", "source = ", "# source = "), "limits.max_channels"),
    ("empty-source", _in_block("energy.static_power_mW", "source = ", 'source = ""\n# '), "energy.static_power_mW"),
    ("missing-value", _in_block("limits.weight_bits", "value = 8", ""), "limits.weight_bits"),
    ("bad-kind", _in_block("limits.max_kernel_px", 'kind = "spec"', 'kind = "guess"'), "limits.max_kernel_px"),
    ("wrong-type", _in_block("limits.max_channels", "value = 1024", 'value = "1024"'), "limits.max_channels"),
    ("float-for-int", _in_block("limits.n_cores", "value = 9", "value = 9.5"), "limits.n_cores"),
    ("negative-value", _in_block("limits.max_padding_px", "value = 7", "value = -1"), "limits.max_padding_px"),
    ("negative-in-list", _in_block("limits.bias_memory_words", "value = [1024,", "value = [-1,"), "limits.bias_memory_words"),
    ("string-in-int-list", _in_block("limits.kernel_memory_words", "value = [16384,", 'value = ["16Ki",'), "limits.kernel_memory_words"),
    ("empty-list", _in_block("limits.strides", "value = [1, 2, 4, 8]", "value = []"), "limits.strides"),
    ("missing-required-figure", _drop_block("limits.strides"), "limits.strides"),
    ("unknown-limit", _append('[limits.max_fun]\nvalue = 1\nunit = "x"\nsource = "[X]"\nkind = "spec"'), "limits.max_fun"),
    ("unknown-energy-key", _append('[energy.per_spike_mJ]\nvalue = 1\nunit = "mJ"\nsource = "[X]"\nkind = "spec"'), "energy.per_spike_mJ"),
    ("unknown-family", _replace('family = "dynapcnn"', 'family = "dynapcnnx"'), "dynapcnnx"),
    ("missing-family", _replace('family = "dynapcnn"\n', ""), "family"),
    ("bad-toml", _in_block("limits.n_cores", "value = 9", "value = 9\nvalue = 10"), "TOML"),
    ("low-above-high", _in_block("energy.static_power_mW", "value = 0.42", "value = 0.42\nlow = 0.5\nhigh = 0.3"), "energy.static_power_mW"),
    ("value-outside-range", _in_block("energy.static_power_mW", "value = 0.42", "value = 0.42\nlow = 0.1\nhigh = 0.3"), "energy.static_power_mW"),
    ("unknown-model-key", _replace('neuron_update = "event"', 'neuron_update = "event"\nclock = "fast"'), "model.clock"),
    ("bad-model-value", _replace('synop_convention = "synops"', 'synop_convention = "flops"'), "model.synop_convention"),
    ("figure-not-a-table", _append("[power]\nidle_mW = 3"), "power.idle_mW"),
    ("note-not-a-string", _in_block("limits.n_cores", "note = ", "note = 5\n# "), "limits.n_cores.note"),
]  # fmt: skip


@pytest.mark.parametrize("case", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_profile_names_file_and_key(case, tmp_path: Path):
    _, edit, key = case
    text = (BUNDLED / "speck2f.toml").read_text(encoding="utf-8")
    bad = edit(text)
    assert bad != text
    path = tmp_path / "broken.toml"
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    msg = str(exc.value)
    assert str(path) in msg, msg
    assert key in msg, msg


def test_unmodified_copy_loads(tmp_path: Path):
    """The malformed cases start from a valid file: the untouched copy loads by path."""
    path = tmp_path / "copy.toml"
    path.write_text((BUNDLED / "speck2f.toml").read_text(encoding="utf-8"), encoding="utf-8")
    assert load_profile(path).limit("n_cores") == 9


def test_unknown_profile_name_lists_known_ones():
    with pytest.raises(ProfileError, match="speck2f"):
        load_profile("speck99")


def test_per_core_table_length_checked_at_load(tmp_path):
    """A per-core table that does not have n_cores entries is rejected when the file is loaded."""
    import re

    from hwcheck.profiles import ProfileError, load_profile, profile_dirs

    src = next(d / "speck2f.toml" for d in profile_dirs() if (d / "speck2f.toml").is_file()).read_text()
    bad = re.sub(r"(\[limits\.bias_memory_words\]\s*value = \[)[^\]]*\]", r"\g<1>1024, 1024]", src)
    assert bad != src
    path = tmp_path / "short.toml"
    path.write_text(bad)
    try:
        load_profile(path)
    except ProfileError as exc:
        assert str(path) in str(exc) and "bias_memory_words" in str(exc) and "n_cores" in str(exc)
    else:
        raise AssertionError("a 2-entry bias table for 9 cores was accepted")


def test_profiles_cite_only_public_documents():
    """Sources and notes name documents a user can look up, never the team's own notes."""
    from pathlib import Path

    import hwcheck

    folder = Path(hwcheck.__file__).parent / "chip_profiles"
    for f in folder.glob("*.toml"):
        text = f.read_text(encoding="utf-8").lower()
        for private in ("chip-facts", "../shared", "sinabs-behaviour", "peers.md"):
            assert private not in text, (f.name, private)
