"""Smoke test of benchmarks/neurons.py: a --quick run writes well-formed JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import quick_benchmark, run_benchmark

ROOT = Path(__file__).resolve().parents[1]

QIFSIM_IMPLS = (
    "qifsim_qif_fused",
    "qifsim_qif_fused_torch",
    "qifsim_qif_reference",
    "qifsim_lif_fused",
)
RATIO_KEYS = (
    "qif_fused_over_norse_lif",
    "qif_fused_over_spikingjelly_qif",
    "qif_fused_over_snntorch_leaky",
    "qif_fused_saved_over_reference_saved",
)


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory) -> dict:
    result, stdout = quick_benchmark("neurons", tmp_path_factory.mktemp("bench") / "n.json")
    assert "qifsim_qif_fused" in stdout  # the table was printed
    return result


def test_quick_run_config(quick_result):
    cfg = quick_result["config"]
    assert cfg["quick"] is True
    assert (cfg["T"], cfg["batch"], cfg["shape"]) == (4, 2, [4, 8, 8])
    assert cfg["threads"] >= 1
    assert cfg["torch_version"]
    assert "versions" in cfg and "torch" in cfg["versions"]


def test_quick_run_timings_and_memory(quick_result):
    impls = quick_result["implementations"]
    for name in QIFSIM_IMPLS:
        assert impls[name]["status"] == "ok", impls[name]
    ran = {n: e for n, e in impls.items() if e["status"] == "ok"}
    for name, entry in ran.items():
        total = entry["timings_ms"]["total"]
        assert len(total["samples"]) == quick_result["config"]["repeats"]
        assert total["median"] > 0 and total["min"] > 0, name
        assert 0.0 <= entry["firing_rate"] <= 1.0
        assert entry["saved"]["bytes"] > 0, name
    # qifsim neurons fire on this input
    for name in QIFSIM_IMPLS:
        assert ran[name]["firing_rate"] > 0
    # skipped peers carry a note instead of results
    for name, note in quick_result["skipped"].items():
        assert impls[name]["status"] != "ok" and note


def test_quick_run_ratios_and_targets(quick_result):
    ratios = quick_result["ratios"]
    for key in RATIO_KEYS:
        assert key in ratios
    assert ratios["qif_fused_saved_over_reference_saved"] > 0
    targets = quick_result["targets"]
    assert set(targets) == {
        "qif_fused_over_norse_lif",
        "qif_fused_over_spikingjelly_qif",
        "qif_fused_saved_over_reference_saved",
    }
    for check in targets.values():
        assert {"value", "target", "met"} <= set(check)
        assert check["met"] in (True, False, None)


def test_only_rejects_unknown_name(tmp_path):
    proc = run_benchmark(
        "neurons", "--quick", "--only", "no_such_impl", "--out", str(tmp_path / "x.json")
    )
    assert proc.returncode != 0
    assert "no_such_impl" in proc.stderr
    assert not (tmp_path / "x.json").exists()


def _common_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import _common
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return _common


def test_saved_tensor_accounting():
    import torch

    common = _common_module()
    a = torch.randn(1000, requires_grad=True)
    b = torch.randn(1000, requires_grad=True)
    # a * b saves a and b, exp its output; the saved views a[:10], b[:10] add no storage.
    report, out = common.measure_saved_tensors(
        lambda: (a * b).exp().sum() + (a[:10] * b[:10]).sum()
    )
    assert report.bytes == 3 * 1000 * 4
    assert report.n_held == report.n_packed == 5
    assert len(report.storages) == 3
    del out


def test_write_json_atomic(tmp_path):
    common = _common_module()
    path = common.write_json_atomic(tmp_path / "sub" / "r.json", {"a": 1.5, "b": float("nan")})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": None}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]
