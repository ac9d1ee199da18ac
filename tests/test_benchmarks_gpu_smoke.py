"""benchmarks/gpu.py: a --quick CPU run writes well-formed JSON, and its peer swap is faithful.

The full run needs a GPU (the device machine); on CPU only the smoke run and the
equivalence of the swapped spikingjelly neurons are checked here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_benchmark

ROOT = Path(__file__).resolve().parents[1]
LAYER_IMPLS = {
    "qifsim_qif",
    "qifsim_qif_torch_ops",
    "qifsim_lif",
    "qifsim_lif_torch_ops",
    "norse_lif",
    "snntorch_leaky",
    "spikingjelly_lif",
    "spikingjelly_qif",
}


@pytest.fixture(scope="module")
def gpu_bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu

        yield gpu
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "gpu.json"
    args = ("--quick", "--no-progress", "--repeats", "1", "--warmup", "1")
    args += ("--sections", "layer,training", "--train-models", "vggsnn", "--out", str(out))
    proc = run_benchmark("gpu", *args, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not list(out.parent.glob("*.tmp")), "atomic write left a temp file behind"
    assert "targets:" in proc.stdout
    return json.loads(out.read_text())


def test_quick_run_records_backend_and_device(quick_result):
    assert quick_result["benchmark"] == "gpu" and quick_result["quick"] is True
    assert quick_result["device"] == "cpu"
    assert quick_result["qifsim_backend"] == {"requested": "auto", "resolved": "numba"}


def test_quick_layer_section(quick_result):
    assert set(quick_result["layer"]) == {
        "conv float32",
        "conv bfloat16",
        "flat float32",
        "flat bfloat16",
    }
    for group in quick_result["layer"].values():
        impls = group["implementations"]
        assert set(impls) == LAYER_IMPLS
        for name in ("qifsim_qif", "qifsim_qif_torch_ops", "qifsim_lif", "qifsim_lif_torch_ops"):
            entry = impls[name]
            assert entry["status"] == "ok", entry
            assert entry["timings_ms"]["total"]["median"] > 0
            assert entry["dispatch"]["custom_ops"] == ["qifsim.neuron_scan.default"]
            assert 0.0 < entry["firing_rate"] < 1.0
        # the fused kernel and the torch-ops kernel run the same dynamics
        assert impls["qifsim_qif"]["firing_rate"] == impls["qifsim_qif_torch_ops"]["firing_rate"]
        assert set(group["ratios"]) >= {
            "qif_over_spikingjelly_lif_time",
            "torch_ops_over_qif_time",
            "qif_over_spikingjelly_lif_peak_memory",
        }


def test_quick_training_section_and_targets(quick_result):
    assert set(quick_result["training"]) == {"vggsnn"}
    entry = quick_result["training"]["vggsnn"]
    impls = entry["implementations"]
    for name in ("qifsim_qif", "qifsim_lif"):
        assert impls[name]["status"] == "ok", impls[name]
    ok = [e for e in impls.values() if e["status"] == "ok"]
    assert len({e["details"]["parameters"] for e in ok}) == 1, "same architecture, same size"
    assert entry["ratios"]["qif_over_lif_training_step"] > 0
    targets = quick_result["targets"]
    assert set(targets) == {f"layer {g}" for g in quick_result["layer"]} | {"training vggsnn"}
    for checks in targets.values():
        for check in checks.values():
            assert set(check) == {"value", "target", "op", "met"}
            assert check["met"] == (
                check["value"] <= check["target"]
                if check["op"] == "<="
                else check["value"] >= check["target"]
            )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--sections", "layer,bogus"], "unknown --sections"),
        (["--train-models", "alexnet"], "--train-models takes names"),
        (["--repeats", "0"], "--repeats and --warmup"),
    ],
)
def test_bad_arguments_are_named(gpu_bench, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        gpu_bench.parse_args(["--quick", *argv])
    assert exc.value.code != 0
    assert message in capsys.readouterr().err


def test_full_run_refuses_cpu(gpu_bench, capsys):
    with pytest.raises(SystemExit):
        gpu_bench.parse_args(["--device", "cpu"])
    assert "needs a GPU" in capsys.readouterr().err


def test_spikingjelly_lif_resnet19_computes_qifsim_lif(gpu_bench):
    """The training comparison times the same network: LIF logits agree after the swap."""
    pytest.importorskip("spikingjelly")
    from qifsim.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet19", neuron="lif", in_channels=3, input_size=(16, 16)).eval()
    swapped, reset = gpu_bench.with_spikingjelly_neurons(model)
    assert not swapped.spiking_layers(), "every qifsim neuron must have been replaced"
    x = torch.rand(2, 2, 3, 16, 16) * 2.0
    with torch.no_grad():
        expected = model(x)
        reset()
        got = swapped(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_spikingjelly_qif_is_qifsim_euler_qif_on_half_the_input(gpu_bench):
    """``QIFNode(tau=2, a0=2a)`` on ``x`` is qifsim's Euler-form QIF on ``x / 2``."""
    pytest.importorskip("spikingjelly")
    from qifsim.neurons import QIF, QIFParameters

    qif = QIF(QIFParameters(form="euler"))
    node = gpu_bench.spikingjelly_node(qif)
    x = torch.rand(12, 3, 50, dtype=torch.float64) * 0.6
    expected, _ = qif(x / 2)
    node = node.double()
    got = node(x)
    assert torch.equal(got, expected)
    assert expected.sum() > 0
