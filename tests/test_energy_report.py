"""Profiles, report formats, LIF vs QIF comparison, plots and the energy/compare CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import torch
from train_helpers import tiny_config

from qifsim.cli import main
from qifsim.energy import (
    EnergyReport,
    ProfileError,
    compare,
    demo_energy_section,
    describe_profiles,
    estimate_energy,
    load_profile,
    profile_names,
)
from qifsim.energy.profiles import profiles_dir, validate_profile
from qifsim.models import build_model

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("cmos45nm-fp32", "cmos45nm-fp32-neuron", "cmos45nm-memory", "loihi-approx")
PNG = b"\x89PNG\r\n\x1a\n"


# -- profiles -------------------------------------------------------------------


def test_shipped_profiles_load_and_state_sources():
    assert set(SHIPPED) <= set(profile_names())
    assert profiles_dir().resolve() == (ROOT / "hardware" / "profiles").resolve()
    assert '"qifsim._profiles" = ["*.json"]' in (ROOT / "pyproject.toml").read_text()
    for name in SHIPPED:
        p = load_profile(name)
        assert p.name == name and p.sources and p.assumptions
        assert all(len(s) > 40 for s in p.sources)  # full citations, not keys
    paper = load_profile()
    assert (paper.name, paper.mac_energy, paper.ac_energy) == ("cmos45nm-fp32", 4.6e-12, 0.9e-12)
    neuron = load_profile("cmos45nm-fp32-neuron")
    assert neuron.neuron_update_energy("qif") == pytest.approx(2 * 3.7e-12 + 3 * 0.9e-12)
    assert neuron.neuron_update_energy("lif") == pytest.approx(3.7e-12 + 0.9e-12)
    memory = load_profile("cmos45nm-memory")
    assert memory.ac_energy == pytest.approx(0.9e-12 + 3 * 5e-12)
    assert memory.mac_energy == pytest.approx(4.6e-12 + 4 * 5e-12)
    assert {r["name"] for r in describe_profiles()} >= set(SHIPPED)


def _valid() -> dict:
    return json.loads((profiles_dir() / "cmos45nm-memory.json").read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("sources"), "missing fields"),
        (lambda d: d.update(extra=1), "unknown fields"),
        (lambda d: d["synaptic_J"].update(mac=-1.0), "synaptic_J.mac"),
        (lambda d: d["synaptic_J"].update(ac=4.6), "picojoules"),
        (lambda d: d.update(sources=[]), "non-empty list"),
        (lambda d: d.update(neuron_update_J={"mode": "magic"}), "neuron_update_J"),
        (lambda d: d["memory"]["per_ac"].update(read=1.5), "integer"),
        (lambda d: d.update(neuron_update_J=None), "per_neuron_update needs"),
    ],
)
def test_invalid_profiles_are_rejected(change, message):
    data = _valid()
    change(data)
    with pytest.raises(ProfileError, match=message):
        validate_profile(data, "test.json")


def test_profile_files_errors(tmp_path):
    with pytest.raises(ProfileError, match="unknown energy profile 'nope'.*cmos45nm-fp32"):
        load_profile("nope")
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", ')
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(bad)
    good = tmp_path / "mine.json"
    good.write_text(json.dumps({**_valid(), "name": "mine"}))
    assert load_profile(good).name == "mine"


# -- reports --------------------------------------------------------------------


def _pair():
    reports = []
    for neuron in ("lif", "qif"):
        torch.manual_seed(0)
        model = build_model("digits-net", neuron=neuron, channels=(4, 8), hidden=16)
        reports.append(estimate_energy(model, T=2, firing_rate=0.3 if neuron == "lif" else 0.1))
    return reports


def test_report_formats_round_trip(tmp_path):
    lif, _ = _pair()
    data = json.loads(lif.to_json())
    assert data["totals"]["energy_J"] == pytest.approx(lif.energy_J)
    assert data["profile"]["name"] == "cmos45nm-fp32"
    again = EnergyReport.from_dict(data)
    assert again.energy_J == pytest.approx(lif.energy_J) and len(again.rows) == len(lif.rows)
    rows = list(csv.DictReader(io.StringIO(lif.to_csv())))
    assert [r["name"] for r in rows] == [r.name for r in lif.rows]
    assert sum(float(r["energy_J"]) for r in rows) == pytest.approx(lif.energy_J)
    md = lif.to_markdown()
    assert "| **total** |" in md and f"{lif.energy_J * 1e3:.6f} mJ" in md
    paths = lif.write(tmp_path / "out")
    assert {p.name for p in paths.values()} == {"energy.json", "energy.csv", "energy.md"}
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_compare_is_table_1_with_spike_rate_reduction(tmp_path):
    lif, qif = _pair()
    table = compare(lif, qif, label="digits-net")
    s = table.summary()
    assert s["lif_mJ"] == pytest.approx(lif.energy_J * 1e3)
    assert s["improvement_x"] == pytest.approx(lif.energy_J / qif.energy_J)
    assert s["spike_rate_reduction"] == pytest.approx(1 - qif.spike_rate / lif.spike_rate)
    assert 0.5 < s["spike_rate_reduction"] < 0.8  # imposed rates 0.3 vs 0.1
    md = table.to_markdown()
    assert "| model | LIF (mJ) | QIF (mJ) | improvement |" in md and "digits-net" in md
    assert [r["layer"] for r in table.layers()] == list(lif.layer_rates())
    table.write(tmp_path)
    assert json.loads((tmp_path / "compare.json").read_text())["summary"]["label"] == "digits-net"
    other = estimate_energy(build_model("digits-net"), T=2, profile="loihi-approx")
    with pytest.raises(ValueError, match="different energy profiles"):
        compare(lif, other)


def test_profiles_change_the_energy_not_the_counts():
    model = build_model("digits-net", channels=(4, 8), hidden=16)
    a = estimate_energy(model, T=2, firing_rate=0.2)
    b = estimate_energy(model, T=2, firing_rate=0.2, profile="cmos45nm-fp32-neuron")
    assert a.totals()["acs"] == b.totals()["acs"] and a.totals()["macs"] == b.totals()["macs"]
    updates = b.totals()["neuron_updates"]
    assert updates == 2 * (4 * 17 * 17 + 8 * 9 * 9 + 16)
    assert b.energy_J - a.energy_J == pytest.approx(updates * (2 * 3.7e-12 + 3 * 0.9e-12))


def test_demo_section_writes_table_and_plots(tmp_path):
    models = []
    for neuron in ("lif", "qif"):
        torch.manual_seed(1)
        m = build_model("digits-net", neuron=neuron, channels=(4, 8), hidden=16)
        with torch.no_grad():
            m(torch.rand(4, 8, 2, 34, 34) * 3)
        models.append(m.eval())
    g = torch.Generator().manual_seed(0)
    # batch-first event frames [B=3, T=4, C, H, W], as the training loaders yield them
    loader = [((torch.rand(3, 4, 2, 34, 34, generator=g) < 0.2).float(), None) for _ in range(2)]
    out = demo_energy_section(*models, loader, tmp_path, T=4)
    assert "| model | LIF (mJ) | QIF (mJ)" in out["text"]
    for key in ("firing_rates_png", "membrane_qif_png", "membrane_lif_png"):
        assert out["files"][key].read_bytes()[:8] == PNG
    lif, qif = out["reports"]
    assert lif.samples == qif.samples == 6
    assert sum(lif.histograms["features.conv1.spike"].counts) > 0


# -- CLI ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from qifsim.train import fit

    root = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for neuron in ("lif", "qif"):
        cfg = tiny_config(neuron=neuron, epochs=1, n_samples=16, batch_size=8, T=4)
        fit(cfg, root / neuron, progress=False)
        paths[neuron] = root / neuron / "last.pt"
    return paths


def test_cli_energy_and_compare(checkpoints, tmp_path, capsys):
    assert main(["energy", "--list-profiles"]) == 0
    assert "cmos45nm-fp32" in capsys.readouterr().out
    out = tmp_path / "e"
    args = ["energy", str(checkpoints["qif"]), "--samples", "8", "--out", str(out)]
    assert main([*args, "--no-progress", "--profile", "cmos45nm-memory"]) == 0
    text = capsys.readouterr().out
    assert "profile `cmos45nm-memory`" in text and "8 samples" in text
    data = json.loads((out / "energy.json").read_text())
    assert data["samples"] == 8 and data["totals"]["energy_J"] > 0
    cmp_out = tmp_path / "c"
    ckpts = [str(checkpoints["lif"]), str(checkpoints["qif"])]
    assert main(["compare", *ckpts, "--out", str(cmp_out), "--samples", "8", "--no-progress"]) == 0
    assert "improvement" in capsys.readouterr().out
    for name in ("compare.json", "compare.csv", "compare.md", "firing_rates.png"):
        assert (cmp_out / name).is_file()
    assert (cmp_out / "membrane_qif.png").read_bytes()[:8] == PNG
    # swapped checkpoints and unknown profiles are clear errors
    assert main(["compare", *reversed(ckpts), "--out", str(cmp_out), "--samples", "4"]) == 2
    assert "expected 'lif'" in capsys.readouterr().err
    assert main(["energy", ckpts[0], "--profile", "nope", "--samples", "4"]) == 2
    assert "unknown energy profile" in capsys.readouterr().err


@pytest.mark.slow
def test_paper_table_rows_are_consistent():
    from qifsim.energy.paper import PAPER_TABLE_1, paper_rows, to_markdown

    rows = paper_rows(rate=0.1)
    assert [(r.model, r.dataset) for r in rows] == [(m, d) for m, d, *_ in PAPER_TABLE_1]
    for r in rows:
        if r.model == "dvsgesturenet":  # max pooling of spikes raises the input rate
            assert r.measured_rate > 0.15
        else:
            assert abs(r.measured_rate - 0.1) < 0.01
        slope = (r.energy_mJ - r.mac_mJ) / r.measured_rate
        for paper, implied in (
            (r.paper_lif_mJ, r.implied_lif_rate),
            (r.paper_qif_mJ, r.implied_qif_rate),
        ):
            if implied is not None:
                assert r.mac_mJ + implied * slope == pytest.approx(paper, rel=1e-9)
            else:
                assert paper < r.mac_mJ or paper > r.mac_mJ + slope
    assert "| resnet19 | CIFAR-10 |" in to_markdown(rows, "cmos45nm-fp32")
