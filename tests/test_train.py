"""qifsim.train: configuration, data, optimiser/schedule, the loop's outputs, evaluation, CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from train_helpers import MODEL, tiny_config, tiny_digits_net

from qifsim.events.errors import DatasetNotFoundError
from qifsim.train import (
    ConfigError,
    TrainConfig,
    build_datasets,
    build_loaders,
    evaluate_checkpoint,
    fit,
    load_checkpoint,
    read_jsonl,
    to_time_first,
)
from qifsim.train.data import SeededAugment
from qifsim.train.factory import build_model_from_config
from qifsim.train.optim import make_optimizer, make_scheduler
from qifsim.train.seeding import seed_everything

METRIC_KEYS = {
    "epoch",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "spike_rates",
    "mean_spike_rate",
    "lr",
    "seconds",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One finished 2-epoch tiny run: (config, out_dir, fit's result)."""
    out = tmp_path_factory.mktemp("tiny-run")
    config = tiny_config()
    return config, out, fit(config, out, progress=False)


# -- configuration -----------------------------------------------------------------


def test_config_round_trips_through_json():
    config = TrainConfig(
        model="vggsnn",
        dataset="cifar10-dvs",
        data_root="/data/c10dvs",
        neuron_params={"a": 0.3, "u_c": 0.6},
        betas=(0.8, 0.99),
        input_size=(48, 48),
        grad_clip=1.0,
        amp="bf16",
    )
    text = json.dumps(config.to_dict())
    again = TrainConfig.from_dict(json.loads(text))
    assert again == config
    assert again.betas == (0.8, 0.99) and again.input_size == (48, 48)
    assert json.loads(text)["betas"] == [0.8, 0.99]


@pytest.mark.parametrize(
    ("field", "value", "listed"),
    [
        ("optimizer", "rmsprop", "('sgd', 'adam')"),
        ("dataset", "mnist", "'n-caltech101'"),
        ("neuron", "izhikevich", "('qif', 'lif')"),
        ("schedule", "step", "('cosine', 'multistep', 'none')"),
        ("amp", "fp16", "(None, 'bf16')"),
    ],
)
def test_config_bad_choice_lists_the_valid_ones(field, value, listed):
    with pytest.raises(ConfigError, match=field) as err:
        TrainConfig(**{field: value})
    assert listed in str(err.value) and repr(value) in str(err.value)


def test_config_reports_every_problem_and_unknown_keys():
    with pytest.raises(ConfigError) as err:
        TrainConfig(T=0, lr=-1.0, dropout=1.0, betas=(0.9,), input_size=(0, 3))
    message = str(err.value)
    for name in ("T must", "lr must", "dropout must", "betas must", "input_size must"):
        assert name in message
    with pytest.raises(ConfigError, match="valid keys: name, model"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="unknown configuration keys"):
        TrainConfig().replace(epoch=3)


def test_config_checks_neuron_params():
    assert TrainConfig(neuron="lif", neuron_params={"beta": 0.5}).neuron_params == {"beta": 0.5}
    with pytest.raises(ConfigError, match=r"\['beta'\] are not qif parameters"):
        TrainConfig(neuron="qif", neuron_params={"beta": 0.5})
    with pytest.raises(ConfigError, match="a must be > 0"):
        TrainConfig(neuron_params={"a": -0.1})


def test_config_is_frozen_and_copies_neuron_params():
    params = {"a": 0.25}
    config = TrainConfig(neuron_params=params)
    params["a"] = 99.0
    assert config.neuron_params == {"a": 0.25}
    with pytest.raises(AttributeError):
        config.lr = 0.1  # type: ignore[misc]


# -- optimiser and schedule ------------------------------------------------------------


def test_optimizers_follow_the_config():
    params = [torch.nn.Parameter(torch.zeros(3))]
    sgd = make_optimizer(TrainConfig(optimizer="sgd", lr=0.1, weight_decay=1e-4), params)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.9 and sgd.param_groups[0]["weight_decay"] == 1e-4
    adam = make_optimizer(TrainConfig(optimizer="adam", betas=(0.8, 0.99)), params)
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["betas"] == (0.8, 0.99)


def test_cosine_schedule_decays_to_zero_per_step():
    config = TrainConfig(lr=0.1, epochs=4, schedule="cosine")
    optimizer = make_optimizer(config, [torch.nn.Parameter(torch.zeros(1))])
    scheduler = make_scheduler(config, optimizer, steps_per_epoch=5)
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.1)
    assert rates[10] == pytest.approx(0.05)  # halfway
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    assert rates[-1] == pytest.approx(0.05 * (1 + math.cos(math.pi * 19 / 20)))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    flat = TrainConfig(lr=0.1, schedule="none")
    optimizer = make_optimizer(flat, [torch.nn.Parameter(torch.zeros(1))])
    scheduler = make_scheduler(flat, optimizer, steps_per_epoch=5)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 0.1


# -- data --------------------------------------------------------------------------


def test_digits_datasets_and_time_first_batches():
    config = tiny_config(n_samples=20, n_test_samples=8, T=5)
    train, test, info = build_datasets(config)
    assert (len(train), len(test)) == (20, 8)
    assert (info.num_classes, info.in_channels, info.input_size, info.static) == (
        10,
        2,
        (34, 34),
        False,
    )
    loaders = build_loaders(config)
    x, y = next(iter(loaders.train))
    assert x.shape == (16, 5, 2, 34, 34) and y.shape == (16,)
    assert to_time_first(x, 5, static=False).shape == (5, 16, 2, 34, 34)
    assert torch.equal(to_time_first(x, 5, static=False)[2], x[:, 2])
    with pytest.raises(ValueError, match=r"\[B, T=4, C, H, W\]"):
        to_time_first(x, 4, static=False)
    images = torch.randn(3, 1, 28, 28)
    encoded = to_time_first(images, 2, static=True)
    assert encoded.shape == (2, 3, 1, 28, 28) and torch.equal(encoded[1], images)


def test_digits_input_size_resizes_frames():
    _, test, info = build_datasets(tiny_config(n_samples=4, input_size=(16, 16)))
    assert info.input_size == (16, 16) and test[0][0].shape == (4, 2, 16, 16)


def test_shuffling_depends_only_on_seed_and_epoch():
    def order(seed, epoch):
        loaders = build_loaders(tiny_config(n_samples=40, seed=seed))
        loaders.set_epoch(epoch)
        return list(loaders.train.sampler)

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1)
    assert order(1, 0) != order(2, 0)
    assert sorted(order(1, 0)) == list(range(40))


def test_seeded_augment_is_per_sample_and_per_epoch():
    from qifsim.events.transforms import RandomRoll

    base = [(torch.arange(64.0).reshape(1, 1, 8, 8), 0)] * 3
    aug = SeededAugment(base, RandomRoll(3, axes=("x", "y")), seed=5)
    first = [aug[i][0] for i in range(3)]
    assert all(torch.equal(a, aug[i][0]) for i, a in enumerate(first))  # repeatable
    aug.set_epoch(1)
    assert any(not torch.equal(a, aug[i][0]) for i, a in enumerate(first))  # new draws
    # torch-RNG transforms (torchvision style) get seeded too, and leave the global RNG alone
    noisy = SeededAugment(base, lambda x: x + torch.rand(1), seed=5)
    state = torch.get_rng_state()
    assert torch.equal(noisy[1][0], noisy[1][0])
    assert not torch.equal(noisy[1][0], noisy[2][0])
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "fashion-mnist"])
def test_missing_static_dataset_says_where_to_put_it(tmp_path, dataset):
    where = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
    with pytest.raises(DatasetNotFoundError, match=where.get(dataset, "FashionMNIST/raw")):
        build_datasets(TrainConfig(dataset=dataset, data_root=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="needs data_root"):
        build_datasets(TrainConfig(dataset=dataset))


def test_missing_event_dataset_raises_the_catalogue_message(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="N-MNIST"):
        build_datasets(TrainConfig(dataset="n-mnist", data_root=str(tmp_path / "nowhere")))


# -- model -------------------------------------------------------------------------


def test_model_factory_applies_neuron_settings():
    from qifsim.energy import spiking_layers

    config = tiny_config(neuron="lif", neuron_params={"beta": 0.5}, detach_reset=True)
    _, _, info = build_datasets(config.replace(n_samples=2))
    model = build_model_from_config(config, info)
    neurons = spiking_layers(model)
    assert neurons and all(m.detach_reset for m in neurons.values())
    assert all(m.p.beta == 0.5 for m in neurons.values())
    with pytest.raises(ValueError, match="no callable"):
        build_model_from_config(config.replace(model="train_helpers:nothing"), info)


# -- the loop ----------------------------------------------------------------------


def test_fit_writes_config_metrics_and_checkpoints(tiny_run):
    config, out, result = tiny_run
    assert json.loads((out / "config.json").read_text()) == config.to_dict()
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        assert set(row) == METRIC_KEYS
        assert 0.0 <= row["train_acc"] <= 1.0 and 0.0 <= row["test_acc"] <= 1.0
        assert math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])
        assert set(row["spike_rates"]) == {
            "features.conv1.spike",
            "features.conv2.spike",
            "classifier.fc1.spike",
        }
        assert all(0.0 <= r <= 1.0 for r in row["spike_rates"].values())
        assert 0.0 < row["mean_spike_rate"] < 1.0
    assert rows[0]["lr"] == config.lr and 0 < rows[1]["lr"] < config.lr
    assert result["epochs_completed"] == 2 and result["test_acc"] == rows[-1]["test_acc"]
    assert result["best_test_acc"] == max(r["test_acc"] for r in rows)
    last = load_checkpoint(out / "last.pt")
    best = load_checkpoint(out / "best.pt")
    assert last["epoch"] == 2 and best["epoch"] == result["best_epoch"]
    assert last["history"] == rows
    assert any((out / "tensorboard").iterdir())


def test_evaluate_checkpoint_reproduces_the_last_test_metrics(tiny_run):
    _, out, result = tiny_run
    again = evaluate_checkpoint(out / "last.pt")
    assert again["epoch"] == 2 and again["n_samples"] == 48
    assert again["test_acc"] == pytest.approx(result["test_acc"], abs=1e-12)
    assert again["test_loss"] == pytest.approx(result["test_loss"], rel=1e-6)
    assert again["spike_rates"] == pytest.approx(result["spike_rates"], rel=1e-9)


def test_fit_refuses_to_clobber_a_run_unless_asked(tiny_run, tmp_path):
    config, out, _ = tiny_run
    with pytest.raises(FileExistsError, match="resume=True"):
        fit(config, out, progress=False)
    copy = tmp_path / "again"
    fit(tiny_config(epochs=1), copy, progress=False, tensorboard=False)
    result = fit(tiny_config(epochs=1, seed=4), copy, progress=False, overwrite=True)
    assert result["epochs_completed"] == 1
    assert load_checkpoint(copy / "last.pt")["config"]["seed"] == 4


def test_training_learns_digits(tmp_path):
    """Loss falls and test accuracy beats chance (10%) clearly after a few short epochs."""
    config = tiny_config(n_samples=192, n_test_samples=96, epochs=3, batch_size=16, lr=1e-2)
    rows = []
    fit(config, tmp_path, progress=False, on_epoch_end=lambda e, row: rows.append(row))
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["test_acc"] > 0.3


def test_grad_clip_limits_the_updates(tmp_path):
    """With a tiny clipping norm the weights hardly move; without it they do."""

    def moved(grad_clip, out):
        config = tiny_config(
            epochs=1, optimizer="sgd", lr=0.1, weight_decay=0.0, dropout=0.0, grad_clip=grad_clip
        )
        fit(config, out, progress=False, tensorboard=False)
        seed_everything(config.seed)
        _, _, info = build_datasets(config)
        start = build_model_from_config(config, info).state_dict()
        end = load_checkpoint(out / "last.pt")["model"]
        params = dict(tiny_digits_net().named_parameters())
        return max((end[k] - start[k]).abs().max().item() for k in params)

    assert moved(1e-7, tmp_path / "clipped") < 1e-5
    assert moved(None, tmp_path / "free") > 1e-3


def test_bf16_autocast_trains_on_cpu(tmp_path):
    result = fit(tiny_config(epochs=1, amp="bf16"), tmp_path, progress=False, tensorboard=False)
    assert math.isfinite(result["train_loss"]) and math.isfinite(result["test_loss"])
    assert result["mean_spike_rate"] > 0


def test_eval_every_skips_evaluation_but_not_the_last_epoch(tmp_path):
    fit(tiny_config(epochs=3, eval_every=2), tmp_path, progress=False, tensorboard=False)
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    evaluated = [r["test_acc"] is not None for r in rows]
    assert evaluated == [False, True, True]
    assert rows[0]["spike_rates"] is None


def test_run_module_trains_from_a_config_file(tmp_path, capsys):
    from qifsim.train.run import main

    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_config(epochs=1).to_dict()))
    assert main([str(path), str(tmp_path / "out"), "--no-progress", "--no-tensorboard"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["epochs_completed"] == 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": MODEL, "optimizer": "rmsprop"}))
    assert main([str(bad), str(tmp_path / "bad")]) == 2
    assert "('sgd', 'adam')" in capsys.readouterr().err


def test_worker_processes_do_not_change_the_run(tmp_path):
    """Loading in 2 worker processes gives the same run as loading in the main process."""
    config = tiny_config(epochs=1, n_samples=32)
    inline = fit(config, tmp_path / "inline", progress=False, tensorboard=False)
    workers = fit(
        config.replace(num_workers=2), tmp_path / "workers", progress=False, tensorboard=False
    )
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "spike_rates"):
        assert inline[key] == workers[key], key


def _fake_fashion_mnist(root, n_train: int = 32, n_test: int = 16) -> None:
    """Random images in Fashion-MNIST's raw IDX layout (what torchvision reads)."""
    import struct

    import numpy as np

    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">iiii", 2051, n, 28, 28) + images.tobytes()
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">ii", 2049, n) + labels.tobytes()
        )


def test_static_images_train_through_direct_encoding(tmp_path):
    """Fashion-MNIST layout (random pixels) -> normalised [1, 28, 28] images -> lenet5 at T=2."""
    _fake_fashion_mnist(tmp_path / "data")
    config = TrainConfig(
        model="lenet5",
        dataset="fashion-mnist",
        data_root=str(tmp_path / "data"),
        T=2,
        epochs=1,
        batch_size=16,
    )
    train, test, info = build_datasets(config)
    assert (len(train), len(test), info.static, info.in_channels) == (32, 16, True, 1)
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and 0 <= label < 10
    assert abs(float(image.mean())) < 2.0  # normalised, not raw 0..255
    result = fit(config, tmp_path / "run", progress=False, tensorboard=False)
    assert math.isfinite(result["train_loss"]) and result["spike_rates"]
