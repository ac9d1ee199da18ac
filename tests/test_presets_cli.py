"""Training presets (QIF paper Table 5, Appendix F), overrides, sweeps and the training CLI."""

from __future__ import annotations

import csv
import json

import pytest

from qifsim.cli import main
from qifsim.train import TrainConfig
from qifsim.train.presets import (
    apply_overrides,
    load_preset,
    parse_value,
    preset_names,
    read_preset,
    sibling_preset,
)
from qifsim.train.sweep import expand_grid, run_sweep, statistics_of

# Table 5 of the QIF paper: model, dataset, optimizer, weight decay, lr, epochs, batch, T, dropout.
TABLE5 = {
    "cifar10-resnet19": ("resnet19", "cifar10", "sgd", 1e-4, 0.1, 350, 128, 2, 0.0),
    "cifar100-resnet19": ("resnet19", "cifar100", "sgd", 1e-4, 0.1, 350, 128, 2, 0.0),
    "cifar10dvs-vggsnn": ("vggsnn", "cifar10-dvs", "adam", 5e-4, 1e-3, 100, 64, 10, 0.6),
    "ncaltech101-vgg11": ("vgg11", "n-caltech101", "adam", 1e-4, 1e-3, 100, 64, 10, 0.6),
    "ncars-vggsnn": ("vggsnn", "n-cars", "adam", 1e-4, 1e-3, 100, 64, 10, 0.6),
    "dvsgesture-dvsgesturenet": (
        "dvsgesturenet",
        "dvs128-gesture",
        "adam",
        1e-4,
        1e-3,
        100,
        32,
        10,
        0.75,
    ),
}
PAPER_QIF = {"a": 0.25, "u_rest": 0.0, "u_c": 0.5, "u_th": 0.5}
PAPER_LIF = {"beta": 0.25, "u_th": 0.5}

# Small enough for a few seconds of CPU training on digits-dvs.
TINY = {"n_samples": 48, "n_test_samples": 24, "T": 3, "batch_size": 16, "epochs": 1}
TINY_SET = [arg for k, v in TINY.items() for arg in ("--set", f"{k}={v}")]


# -- presets ------------------------------------------------------------------------------


def test_every_preset_loads_into_a_valid_config():
    names = preset_names()
    assert len(names) >= 16
    for name in names:
        preset = read_preset(name)
        assert preset.description and preset.source, name
        config = load_preset(name)
        assert isinstance(config, TrainConfig)
        assert config.name == name
        assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("row", sorted(TABLE5))
@pytest.mark.parametrize("neuron", ["qif", "lif"])
def test_table5_rows(row, neuron):
    model, dataset, opt, wd, lr, epochs, batch, T, dropout = TABLE5[row]
    preset = read_preset(f"{row}-{neuron}")
    assert "Table 5" in preset.source
    c = load_preset(f"{row}-{neuron}")
    assert (c.model, c.dataset, c.optimizer, c.neuron) == (model, dataset, opt, neuron)
    assert (c.epochs, c.batch_size, c.T) == (epochs, batch, T)
    assert c.weight_decay == pytest.approx(wd)
    assert c.dropout == pytest.approx(dropout)
    assert c.schedule == "cosine"
    if opt == "sgd":
        assert c.momentum == pytest.approx(0.9)
    else:
        assert c.betas == (0.9, 0.999)
    # Appendix B: LIF runs use lr 1e-3 with ResNet-19, the rest is Table 5.
    expected_lr = 1e-3 if (neuron == "lif" and model == "resnet19") else lr
    assert c.lr == pytest.approx(expected_lr)
    paper = PAPER_QIF if neuron == "qif" else PAPER_LIF
    assert {k: c.neuron_params[k] for k in paper} == paper


def test_robustness_sweep_preset_matches_appendix_f():
    preset = read_preset("robustness-lenet5")
    assert preset.kind == "sweep" and "Appendix F" in preset.source
    c = load_preset("robustness-lenet5")
    assert (c.model, c.dataset, c.optimizer, c.epochs, c.batch_size, c.T) == (
        "lenet5",
        "fashion-mnist",
        "adam",
        10,
        128,
        2,
    )
    assert (c.lr, c.weight_decay) == (pytest.approx(1e-3), pytest.approx(1e-4))
    grid = [0.2, 0.4, 0.6, 0.8, 1.0]
    assert preset.grid == {
        "qif": {"u_th": grid, "u_c": grid, "a": grid},
        "lif": {"u_th": grid, "beta": grid},
    }
    qif = expand_grid(preset, "qif")
    assert len(qif) == 125 and len({p.id for p in qif}) == 125
    excluded = [p for p in qif if p.excluded]
    assert len(excluded) == 75 and all(p.params["a"] > 0.4 for p in excluded)
    assert all(p.neuron_params["u_rest"] == 0.0 for p in qif)
    lif = expand_grid(preset, "lif")
    assert len(lif) == 25 and not any(p.excluded for p in lif)
    # every point is a valid configuration
    from qifsim.train.sweep import point_config

    assert point_config(preset, qif[-1]).neuron_params["a"] == 1.0
    with pytest.raises(ValueError, match="no grid for neuron"):
        expand_grid(preset, "izhikevich")


def test_digits_presets_are_small():
    for neuron in ("qif", "lif"):
        c = load_preset(f"digits-{neuron}")
        assert (c.model, c.dataset, c.T, c.optimizer, c.batch_size) == (
            "digits-net",
            "digits-dvs",
            10,
            "adam",
            64,
        )
        assert c.epochs <= 10


# -- overrides ----------------------------------------------------------------------------


def test_overrides_parse_by_field_type():
    c = load_preset(
        "cifar10dvs-vggsnn-qif",
        [
            "epochs=3",
            "lr=2e-3",
            "betas=0.8,0.99",
            "input_size=none",
            "detach_reset=true",
            "grad_clip=1.5",
            "neuron_params.a=0.3",
            "data_root=/data/x",
        ],
    )
    assert c.epochs == 3 and isinstance(c.epochs, int)
    assert c.lr == pytest.approx(2e-3)
    assert c.betas == (0.8, 0.99)
    assert c.input_size is None
    assert c.detach_reset is True
    assert c.grad_clip == pytest.approx(1.5)
    assert c.neuron_params["a"] == pytest.approx(0.3) and c.neuron_params["u_c"] == 0.5
    assert c.data_root == "/data/x"
    c = load_preset("digits-qif", {"input_size": "(32, 32)", "seed": 7, "epochs": "1e1"})
    assert (c.input_size, c.seed, c.epochs) == ((32, 32), 7, 10)
    c = load_preset("digits-qif", ['neuron_params={"a": 0.2, "u_c": 0.6}'])
    assert c.neuron_params == {"a": 0.2, "u_c": 0.6}


def test_parse_value_types():
    assert parse_value("none", int | None) is None
    assert parse_value("4", int | None) == 4
    assert parse_value("off", bool) is False
    assert parse_value("[1, 2]", tuple[int, int]) == (1, 2)
    with pytest.raises(ValueError, match="2 comma-separated"):
        parse_value("1,2,3", tuple[int, int], "input_size")
    with pytest.raises(ValueError, match="true or false"):
        parse_value("maybe", bool)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epochs=abc", "epochs must be an integer"),
        ("epochs=0", "epochs must be an integer >= 1"),
        ("optimizer=rmsprop", "optimizer must be one of"),
        ("dataset=mnist", "dataset must be one of"),
        ("lr=fast", "lr must be a number"),
        ("neuron_params.beta=0.5", "not qif parameters"),
        ("nosuchfield=1", "valid fields: name, model, neuron"),
        ("epochs", "not of the form key=value"),
    ],
)
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(ValueError, match=message):
        load_preset("digits-qif", [override])


def test_unknown_preset_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown preset 'nope'.*digits-qif.*robustness-lenet5"):
        load_preset("nope")


def test_preset_from_a_path(tmp_path):
    doc = json.loads(read_preset("digits-lif").path.read_text())
    doc["config"]["epochs"] = 2
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(doc))
    assert load_preset(path).epochs == 2
    with pytest.raises(FileNotFoundError):
        load_preset(tmp_path / "missing.json")
    path.write_text(json.dumps({**doc, "colour": "red"}))
    with pytest.raises(ValueError, match="unknown keys"):
        read_preset(path)


def test_neuron_override_swaps_neuron_only():
    c = load_preset("cifar10-resnet19-qif", ["neuron=lif"])
    assert (c.neuron, c.neuron_params, c.name) == ("lif", None, "cifar10-resnet19-lif")
    assert c.lr == pytest.approx(0.1)  # the flag swaps the neuron, not the paper's LIF lr
    assert sibling_preset("cifar10-resnet19-qif", "lif") == "cifar10-resnet19-lif"
    assert sibling_preset("robustness-lenet5", "lif") is None
    c = load_preset("digits-qif", ["neuron=lif", "neuron_params.beta=0.5"])
    assert c.neuron_params == {"beta": 0.5}


def test_apply_overrides_keeps_the_base():
    base = {"epochs": 3}
    assert apply_overrides(base, ["epochs=4"]) == {"epochs": 4}
    assert base == {"epochs": 3}


# -- CLI ----------------------------------------------------------------------------------


def test_cli_presets_and_models(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in preset_names():
        assert name in out
    assert "[sweep]" in out
    assert main(["presets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(preset_names())
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "spiking layers" in out
    for name in ("resnet19", "vggsnn", "vgg11", "dvsgesturenet", "lenet5", "digits-net"):
        assert name in out
    assert "12,698,250" in out  # ResNet-19 parameters


def test_cli_train_then_eval(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--preset", "digits-qif", *TINY_SET, "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "test_acc" in printed and "epochs_completed" in printed
    assert (out / "metrics.jsonl").is_file() and (out / "config.json").is_file()
    assert json.loads((out / "config.json").read_text())["n_samples"] == TINY["n_samples"]
    checkpoint = out / "best.pt"
    assert checkpoint.is_file()
    # a second run into the same folder must be asked for
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["eval", str(checkpoint), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_samples"] == TINY["n_test_samples"]
    assert 0.0 <= result["test_acc"] <= 1.0


def test_cli_missing_dataset_exits_2(tmp_path, capsys):
    empty = tmp_path / "data"
    empty.mkdir()
    code = main(
        [
            "train",
            "--preset",
            "cifar10-resnet19-qif",
            "--data-root",
            str(empty),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not found" in err and str(empty) in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--preset", "nope"], "valid presets: cifar10-resnet19-lif"),
        (["train", "--preset", "digits-qif", "--set", "colour=red"], "valid fields:"),
        (["train", "--preset", "digits-qif", "--set", "schedule=step"], "schedule must be one"),
        (["train", "--preset", "robustness-lenet5"], "qifsim sweep"),
        (["sweep", "--preset", "digits-qif"], "sweep presets: robustness-"),
        (["train", "--preset", "digits-qif", "--nproc", "0"], "--nproc must be >= 1"),
    ],
)
def test_cli_errors_exit_2_with_choices(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


# -- sweeps -------------------------------------------------------------------------------


def test_sweep_trains_two_points_and_resumes(tmp_path, capsys):
    from qifsim.train import fit

    calls = []

    def counting_fit(config, out_dir, **kwargs):
        calls.append(config.name)
        return fit(config, out_dir, **kwargs)

    overrides = {"dataset": "digits-dvs", "model": "digits-net", "num_workers": 0, **TINY}
    kwargs = {"limit": 2, "overrides": overrides, "progress": False, "fit_fn": counting_fit}
    summary = run_sweep("robustness-lenet5", tmp_path, neuron="qif", **kwargs)
    assert len(calls) == 2 and summary["n_run"] == 2 and summary["n_reused"] == 0
    assert summary["n_grid_points"] == 125
    for row in summary["points"]:
        assert 0.0 <= row["accuracy"] <= 1.0
        assert (tmp_path / row["id"] / "best.pt").is_file()
    assert summary["statistics"]["n_included"] == 2
    with open(tmp_path / "summary-qif.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == [p["id"] for p in summary["points"]]
    assert json.loads((tmp_path / "summary-qif.json").read_text())["n_run"] == 2
    assert (tmp_path / "sweep-qif.png").stat().st_size > 0

    # rerun: both points are finished, nothing is trained again
    again = run_sweep("robustness-lenet5", tmp_path, neuron="qif", **kwargs)
    assert len(calls) == 2 and again["n_reused"] == 2
    assert again["points"] == summary["points"]

    # the CLI continues the same sweep
    argv = ["sweep", "--preset", "robustness-lenet5", "--limit", "2", "--out", str(tmp_path)]
    argv += ["--set", "dataset=digits-dvs", "--set", "model=digits-net", *TINY_SET]
    assert main([*argv, "--no-progress"]) == 0
    assert "2 reused" in capsys.readouterr().out

    # a moved dataset folder is no different configuration
    moved = {**kwargs, "overrides": {**overrides, "data_root": str(tmp_path / "moved")}}
    assert run_sweep("robustness-lenet5", tmp_path, **moved)["n_reused"] == 2
    assert len(calls) == 2

    # a different configuration in the same folder is refused
    changed = {**overrides, "lr": 0.05}
    with pytest.raises(ValueError, match="different configuration"):
        run_sweep(
            "robustness-lenet5", tmp_path, limit=1, overrides=changed, progress=False, plot=False
        )


def test_sweep_statistics_exclude_large_a(tmp_path):
    def fake_fit(config, out_dir, **kwargs):
        p = config.neuron_params
        return {"test_acc": 0.9 - 0.1 * p["a"] + 0.01 * p["u_th"], "best_test_acc": 0.95}

    summary = run_sweep(
        "robustness-lenet5",
        tmp_path,
        overrides={"dataset": "digits-dvs", "model": "digits-net"},
        progress=False,
        fit_fn=fake_fit,
    )
    rows = summary["points"]
    assert len(rows) == 125
    included = [r["accuracy"] for r in rows if not r["excluded"]]
    assert len(included) == 50
    stats = summary["statistics"]
    assert stats["n_excluded"] == 75 and stats["n_included"] == 50
    assert stats["mean"] == pytest.approx(sum(included) / 50)
    assert stats["max"] == pytest.approx(0.9 - 0.02 + 0.01)
    assert stats == statistics_of(rows)
    assert all(r["exclusion"].startswith("a > 0.4") for r in rows if r["excluded"])
    assert (tmp_path / "sweep-qif.png").is_file()


@pytest.mark.slow
def test_cli_train_under_torchrun(tmp_path):
    """``--nproc 2`` runs the same training in two CPU processes (gloo) under torchrun."""
    import subprocess
    import sys

    out = tmp_path / "ddp"
    argv = ["train", "--preset", "digits-lif", *TINY_SET, "--set", "batch_size=16"]
    argv += ["--out", str(out), "--nproc", "2", "--no-progress"]
    proc = subprocess.run(
        [sys.executable, "-m", "qifsim.cli", *argv], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "torchrun" in proc.stdout and "--nproc_per_node=2" in proc.stdout
    assert (out / "best.pt").is_file() and (out / "metrics.jsonl").is_file()
