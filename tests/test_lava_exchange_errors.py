"""Corrupt, truncated, wrong-version and wrong-checksum exchange files are rejected with a
clear message, by the Lava side's reader (``qifsim_lava.exchange``, numpy + h5py only, so it
is imported here from ``hardware/lava``) and through the bridge (``.venv-lava`` subprocess)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from export_nets import random_net, random_spikes

from qifsim.export import export_lava

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hardware" / "lava"))
from qifsim_lava.exchange import ExchangeError, file_checksum, load_exchange  # noqa: E402


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("exchange") / "good.h5"
    export_lava(random_net(kind="conv", neuron="qif", depth=2, seed=3, pool=True), path)
    return path


def _copy(good: Path, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    shutil.copyfile(good, path)
    return path


def _truncated(good, tmp_path):
    path = _copy(good, tmp_path, "truncated.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _wrong_version(good, tmp_path):
    path = _copy(good, tmp_path, "v2.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 2
    return path


def _edited(good, tmp_path):
    path = _copy(good, tmp_path, "edited.h5")
    with h5py.File(path, "r+") as f:
        w = f["layer/1/qif/weight_float"]
        w[...] = w[()] * 1.5
    return path


def _flipped_bytes(good, tmp_path):
    """Damage inside the file's data: found by the checksum (or HDF5 itself)."""
    path = _copy(good, tmp_path, "flipped.h5")
    with h5py.File(path, "r") as f:
        offset = f["layer/1/qif/weight_float"].id.get_offset()
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _garbage(good, tmp_path):
    path = tmp_path / "garbage.h5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def _missing_key(good, tmp_path):
    """Structurally wrong but with a matching checksum: the message names the key."""
    path = _copy(good, tmp_path, "missing.h5")
    with h5py.File(path, "r+") as f:
        del f["layer/1/qif/a_mant"]
        f.attrs["checksum"] = file_checksum(f)
    return path


def _not_exchange(good, tmp_path):
    path = _copy(good, tmp_path, "other.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["format"] = "lava-dl"
    return path


CASES = {
    "truncated": (_truncated, "truncated or corrupt"),
    "wrong-version": (_wrong_version, "format_version 2 is not supported"),
    "edited": (_edited, "checksum mismatch"),
    "flipped-bytes": (_flipped_bytes, "checksum mismatch|truncated or corrupt|unreadable"),
    "garbage": (_garbage, "cannot be opened as HDF5"),
    "missing-key": (_missing_key, "missing dataset /layer/1/qif/a_mant"),
    "not-exchange": (_not_exchange, "expected 'qifsim-exchange'"),
}


def test_good_file_loads(good):
    net = load_exchange(good)
    assert [layer.kind for layer in net.layers] == ["conv", "pool", "conv", "flatten", "dense"]
    assert net.delay == 4 and net.input_shape == (2, 8, 8) and net.num_classes == 5


@pytest.mark.parametrize("name", sorted(CASES))
def test_reader_rejects(name, good, tmp_path):
    make, message = CASES[name]
    path = make(good, tmp_path)
    with pytest.raises(ExchangeError, match=message) as info:
        load_exchange(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_exchange(tmp_path / "nope.h5")


@pytest.mark.parametrize("name", ["truncated", "wrong-version", "edited"])
def test_bridge_rejects(name, good, tmp_path):
    from qifsim.lava_bridge import (
        LavaEnvironmentError,
        LavaRunError,
        find_lava_python,
        run_exchange,
    )

    try:
        find_lava_python()
    except LavaEnvironmentError as err:
        pytest.skip(f"Lava environment not available: {err}")
    make, message = CASES[name]
    path = make(good, tmp_path)
    x = random_spikes(2, 1, (2, 8, 8), seed=0)
    with pytest.raises(LavaRunError, match=f"ExchangeError: .*({message})"):
        run_exchange(path, x, mode="float")
