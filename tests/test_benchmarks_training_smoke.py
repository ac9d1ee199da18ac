"""Smoke test of benchmarks/training.py: a --quick run writes well-formed JSON."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import quick_benchmark

ROOT = Path(__file__).resolve().parents[1]
IMPLS = ("qifsim_qif", "qifsim_lif", "snntorch_lif", "spikingjelly_lif")
MODELS = ("digits-net", "vggsnn")


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory) -> dict:
    result, stdout = quick_benchmark("training", tmp_path_factory.mktemp("bench") / "training.json")
    assert "qif_over_lif_infer" in stdout  # the ratios were printed
    return result


def test_quick_config(quick_result):
    cfg = quick_result["config"]
    assert cfg["quick"] is True and set(cfg["repeats"]) == set(MODELS)
    assert cfg["device"] == "cpu" and cfg["threads"] >= 1
    assert set(quick_result["models"]) == set(MODELS)
    assert quick_result["models"]["digits-net"]["config"]["input"] == [2, 34, 34]


@pytest.mark.parametrize("model", MODELS)
def test_quick_timings_and_equivalence(quick_result, model):
    result = quick_result["models"][model]
    impls = result["implementations"]
    assert set(impls) == set(IMPLS)
    for name in ("qifsim_qif", "qifsim_lif"):
        assert impls[name]["status"] == "ok", impls[name]
    ok = {n: e for n, e in impls.items() if e["status"] == "ok"}
    params = {e["details"]["parameters"] for e in ok.values()}
    assert len(params) == 1, "the implementations must have the same parameter count"
    for name, entry in ok.items():
        for mode in ("train", "infer"):
            total = entry[mode]["timings_ms"]["total"]
            assert len(total["samples"]) == result["config"]["repeats"] >= 1
            assert total["median"] > 0, (name, mode)
        assert set(entry["train"]["timings_ms"]) == {"forward", "backward", "step", "total"}
    # the peers compute the same logits as qifsim's LIF model (same weights, eval mode)
    eq = result["equivalence"]
    for name in ("snntorch_lif", "spikingjelly_lif"):
        if name in ok:
            assert eq[f"{name}_max_abs_diff"] <= 1e-4 * max(1.0, eq["logit_scale"])
        else:
            assert impls[name]["note"]
    ratios = result["ratios"]
    for mode in ("train", "infer"):
        assert ratios[f"qif_over_lif_{mode}"] > 0
        for peer in ("snntorch", "spikingjelly"):
            assert f"qifsim_lif_over_{peer}_{mode}" in ratios


def test_targets(quick_result):
    for model in MODELS:
        check = quick_result["targets"][f"{model}_qif_over_lif_infer"]
        assert check["target"] == 1.39 and check["met"] in (True, False)


def _training_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import training
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return training


@pytest.mark.parametrize("args", [("--only", "no_such_impl"), ("--models", "alexnet")])
def test_unknown_names_are_rejected(args, capsys):
    training = _training_module()
    with pytest.raises(SystemExit) as exc:
        training.parse_args(["--quick", *args])
    assert exc.value.code != 0
    assert args[1] in capsys.readouterr().err
