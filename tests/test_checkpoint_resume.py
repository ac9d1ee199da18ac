"""Checkpoints: contents, mismatch errors, and bit-for-bit resumption of interrupted runs."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import torch
from train_helpers import (
    PYTHON,
    REPO,
    subprocess_env,
    tiny_config,
    tiny_digits_net,
    without_seconds,
)

from qifsim import __version__
from qifsim.train import (
    CheckpointError,
    CheckpointMismatchError,
    fit,
    load_checkpoint,
    load_model_state,
    read_jsonl,
    save_checkpoint,
)


class Interrupt(Exception):
    """Raised from the epoch callback to simulate a crash."""


def _crash_after(epoch: int):
    def callback(done: int, row: dict) -> None:
        if done == epoch:
            raise Interrupt(f"simulated crash after epoch {done}")

    return callback


def assert_same_run(a, b, tol: float = 1e-6) -> None:
    """Two run folders hold the same metrics (``seconds`` aside) and the same weights."""
    assert without_seconds(read_jsonl(a / "metrics.jsonl")) == without_seconds(
        read_jsonl(b / "metrics.jsonl")
    )
    wa, wb = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert wa["epoch"] == wb["epoch"]
    assert wa["model"].keys() == wb["model"].keys()
    for key, value in wa["model"].items():
        torch.testing.assert_close(value, wb["model"][key], rtol=0, atol=tol, msg=key)
    for sa, sb in zip(
        wa["optimizer"]["state"].values(), wb["optimizer"]["state"].values(), strict=True
    ):
        for name in sa:
            torch.testing.assert_close(sa[name], sb[name], rtol=0, atol=tol)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 3-epoch run (dropout on, so the RNG state matters)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    config = tiny_config(epochs=3, n_samples=40)
    fit(config, out, progress=False, tensorboard=False)
    return config, out


def test_checkpoint_contents(reference):
    config, out = reference
    ckpt = torch.load(out / "last.pt", weights_only=True)  # plain data only
    assert ckpt["format"] == "qifsim-train-checkpoint" and ckpt["qifsim_version"] == __version__
    assert ckpt["epoch"] == 3 and ckpt["config"] == config.to_dict()
    assert len(ckpt["history"]) == 3 and ckpt["world_size"] == 1
    (rng,) = ckpt["rng"]
    assert set(rng) == {"python", "numpy", "torch", "cuda", "loader"}
    assert {"state", "param_groups"} <= set(ckpt["optimizer"])
    assert ckpt["scheduler"]["last_epoch"] == 3 * 3  # 40 samples / batch 16 = 3 steps per epoch
    assert ckpt["best"]["test_acc"] == max(r["test_acc"] for r in ckpt["history"])


def test_resume_after_a_crash_equals_the_uninterrupted_run(reference, tmp_path):
    config, ref = reference
    with pytest.raises(Interrupt):
        fit(config, tmp_path, progress=False, tensorboard=False, on_epoch_end=_crash_after(1))
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == 1
    result = fit(config, tmp_path, resume=True, progress=False, tensorboard=False)
    assert result["epochs_completed"] == 3
    assert_same_run(ref, tmp_path, tol=0.0)


def test_stop_after_then_resume_and_a_lagging_metrics_file(reference, tmp_path):
    config, ref = reference
    fit(config, tmp_path, progress=False, tensorboard=False, stop_after=2)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    # a crash between writing last.pt and metrics.jsonl leaves the file one line short
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    (tmp_path / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n")
    fit(config, tmp_path, resume=True, progress=False, tensorboard=False)
    assert_same_run(ref, tmp_path, tol=0.0)
    # resuming a finished run trains nothing and reports the same result
    again = fit(config, tmp_path, resume=True, progress=False, tensorboard=False)
    assert again["epochs_completed"] == 3


def test_resume_with_another_config_names_the_fields(reference, tmp_path):
    config, _ = reference
    fit(config, tmp_path, progress=False, tensorboard=False, stop_after=1)
    changed = config.replace(lr=0.5, batch_size=8, data_root=str(tmp_path))
    with pytest.raises(CheckpointMismatchError) as err:
        fit(changed, tmp_path, resume=True, progress=False)
    message = str(err.value)
    assert "lr: checkpoint 0.005 vs now 0.5" in message and "batch_size" in message
    assert "data_root" not in message.split("may change")[1]


def test_loading_into_a_mismatched_model_names_keys_and_shapes(reference):
    _, out = reference
    state = load_checkpoint(out / "last.pt")["model"]
    wider = tiny_digits_net(num_classes=7)
    expected = r"readout\.fc\.weight: checkpoint \(10, 16\) vs model \(7, 16\)"
    with pytest.raises(CheckpointMismatchError, match=expected):
        load_model_state(wider, state)
    state = dict(state)
    state["extra.weight"] = torch.zeros(1)
    del state["features.conv1.bn.bias"]
    with pytest.raises(CheckpointMismatchError) as err:
        load_model_state(tiny_digits_net(), state)
    assert "missing in the checkpoint: features.conv1.bn.bias" in str(err.value)
    assert "not in the model: extra.weight" in str(err.value)


def test_unreadable_or_foreign_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    save_checkpoint(tmp_path / "other.pt", {"weights": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="not a qifsim training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def _train_command(config_path, out, *extra):
    return [
        PYTHON,
        "-m",
        "qifsim.train.run",
        str(config_path),
        str(out),
        "--no-progress",
        "--no-tensorboard",
        *extra,
    ]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_the_uninterrupted_run(tmp_path):
    """A real crash: SIGKILL the training process as soon as epoch 1's checkpoint exists."""
    config = tiny_config(epochs=3, n_samples=160, n_test_samples=48, batch_size=16)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config.to_dict()))
    env = subprocess_env(OMP_NUM_THREADS="1")
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_train_command(config_path, ref), env=env, cwd=REPO, check=True, timeout=300)

    proc = subprocess.Popen(
        _train_command(config_path, killed), env=env, cwd=REPO, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 240
        while not (killed / "last.pt").exists():
            assert proc.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(killed / "last.pt")["epoch"] == 1  # killed during epoch 2
    subprocess.run(
        _train_command(config_path, killed, "--resume"), env=env, cwd=REPO, check=True, timeout=300
    )
    assert_same_run(ref, killed, tol=1e-6)
