"""Spike monitor, the demo (main job), the CLI and the Lava environment bridge."""

import json
import subprocess
import sys

import pytest
import torch

from qifsim.cli import main
from qifsim.demo import run_demo
from qifsim.energy import SpikeMonitor
from qifsim.lava_bridge import LavaEnvironmentError, find_lava_python, run_lava
from qifsim.models import build_model


def test_monitor_rates_equal_direct_counts():
    torch.manual_seed(0)
    model = build_model("digits-net", neuron="qif")
    layers = model.spiking_layers()
    batches = [torch.rand(6, 3, 2, 34, 34) * 3, torch.rand(6, 1, 2, 34, 34) * 3]
    with torch.no_grad():
        model(batches[0])  # calibrate tdBN's running statistics
        model.eval()
        direct = dict.fromkeys(layers, 0.0)
        sizes = {}
        outputs = {}
        for x in batches:  # spikes read straight from each layer's output
            outputs.clear()
            hooks = [
                m.register_forward_hook(lambda mod, i, o, n=n: outputs.__setitem__(n, o[0]))
                for n, m in layers.items()
            ]
            model(x)
            for h in hooks:
                h.remove()
            for name, spikes in outputs.items():
                direct[name] += spikes.sum().item()
                sizes[name] = spikes[0, 0].numel()
        with SpikeMonitor(model) as monitor:
            for x in batches:
                model(x)
    for name in layers:
        rec = monitor.records[name]
        assert rec.neurons == sizes[name]
        assert rec.spikes == direct[name]
        assert rec.neuron_steps == 6 * 4 * sizes[name]
        assert monitor.rates()[name] == direct[name] / (6 * 4 * sizes[name])
    assert sum(direct.values()) > 0
    assert not next(iter(layers.values()))._forward_hooks  # removed on exit
    with pytest.raises(ValueError, match="no spiking layers"):
        SpikeMonitor(torch.nn.Linear(2, 2))


def test_demo_trains_three_nets_and_writes_measured_results(tmp_path, capsys):
    """The main job: LIF, QIF and QIF + quadratic synapse, energy table, Lava run."""
    summary = run_demo(out_dir=tmp_path, epochs=1, n_samples=64, progress=False, lava_samples=6)
    out = capsys.readouterr().out
    assert "test accuracy" in out and "QIF/LIF" in out and "training time" in out
    assert "| model | LIF (mJ) | QIF (mJ) | improvement |" in out
    saved = json.loads((tmp_path / "demo.json").read_text())
    for label, neuron in (("lif", "lif"), ("qif", "qif"), ("qif-quadratic", "qif")):
        run = saved["runs"][label]
        assert run["config"]["neuron"] == neuron and run["config"]["epochs"] == 1
        assert 0 <= run["test_acc"] <= 1 and run["train_seconds"] > 0
        assert set(run["spike_rates"]) == {
            "features.conv1.spike",
            "features.conv2.spike",
            "classifier.fc1.spike",
        }
        assert (tmp_path / label / "last.pt").exists()
    assert saved["runs"]["qif-quadratic"]["config"]["synapse"] == "quadratic"
    assert saved["runs"]["qif"]["test_acc"] == summary["runs"]["qif"]["test_acc"]
    energy = saved["energy"]["energy_J"]
    assert all(v > 0 for v in energy.values())
    quad_rows = json.loads((tmp_path / "energy" / "energy-qif-quadratic.json").read_text())
    assert "quadratic" in json.dumps(quad_rows)  # its quadratic operations are counted
    for png in (
        "training-curves.png",
        "digits-dvs-sample.png",
        "energy/firing_rates.png",
        "energy/membrane_qif.png",
    ):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "qif.h5").exists()
    assert saved["hardening"]["all_refused"] is True  # every corrupt copy refused
    assert "every corrupt copy refused: yes" in out
    lava = saved["lava"]
    if "error" not in lava:  # the Lava environment exists (make setup builds it)
        assert lava["samples"] == 6
        assert lava["modes"]["float"]["agreement"] == 1.0
        assert lava["modes"]["fixed"]["fixed_matches_reference"] is True


def test_cli_help_and_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "demo" in capsys.readouterr().out
    assert main([]) == 2
    assert main(["window", "--a", "-1"]) == 2
    assert "a must be > 0" in capsys.readouterr().err


def test_cli_window_json(capsys):
    assert main(["window", "--samples", "200000", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["formula_mu"] == pytest.approx(0.0625)
    assert stats["approx_mu"] == pytest.approx(0.0625, rel=0.05)


def test_console_script_help():
    proc = subprocess.run(
        [sys.executable, "-m", "qifsim.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "QIF" in proc.stdout


def _lava_python_or_skip():
    try:
        return find_lava_python()
    except LavaEnvironmentError as err:
        pytest.skip(str(err))


def test_lava_environment_runs_a_network():
    """`make setup` builds .venv-lava; its doctor runs a real 3-step Lava network."""
    _lava_python_or_skip()
    report = run_lava(["doctor"], timeout=300)
    assert report["returncode"] == 0
    assert report["python"].startswith("3.10")
    assert report["lava_nc"] == "0.10.0"
    assert report["lava_run_ok"] is True
    assert report["lava_run"]["received"] == report["lava_run"]["expected"]


def test_lava_side_does_not_import_torch():
    python = _lava_python_or_skip()
    code = "import sys, qifsim_lava.doctor, qifsim_lava.cli; print('torch' in sys.modules)"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


def test_cli_events_info_and_frames_plot(tmp_path, capsys):
    from qifsim.events import moving_squares, write_events

    events = moving_squares(1, seed=5)[0][0]
    path = tmp_path / "rec.bin"
    write_events(path, events, "atis-bin")
    assert main(["events", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "atis-bin" and info["events"] == len(events)
    assert info["on"] == int((events["p"] == 1).sum())
    png, npy = tmp_path / "frames.png", tmp_path / "frames.npy"
    args = ["events", "frames", str(path), "--frames", "5", "--sensor", "34", "34"]
    assert main([*args, "--plot", str(png), "--out", str(npy)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import numpy as np

    frames = np.load(npy)
    assert frames.shape == (5, 2, 34, 34) and frames.sum() == len(events)
    assert main(["events", "info", str(tmp_path / "missing.bin")]) == 2
    assert "No such file" in capsys.readouterr().err
    (tmp_path / "junk.xyz").write_bytes(b"\x00\x01garbage")
    assert main(["events", "info", str(tmp_path / "junk.xyz")]) == 2
    assert "format" in capsys.readouterr().err
