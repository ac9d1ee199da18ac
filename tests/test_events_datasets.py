"""Dataset catalogue and the torch event datasets, on fake roots written in each raw format."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REAL_EVENTS

from qifsim.events import make_events, to_frames
from qifsim.events.catalogue import DatasetInfo, dataset_info, dataset_names, load_catalogue
from qifsim.events.errors import DatasetNotFoundError

REPO = Path(__file__).resolve().parents[1]
REAL = REAL_EVENTS
NAMES = ["cifar10-dvs", "dvs128-gesture", "n-caltech101", "n-cars", "n-mnist"]


def writer():
    """``write_events`` of qifsim.events.io; skip while that module is not there yet."""
    io = pytest.importorskip("qifsim.events.io")
    if not hasattr(io, "write_events"):
        pytest.skip("qifsim.events.io.write_events is not available yet")
    return io.write_events


def random_events(seed: int, n: int, width: int, height: int, t0: int = 0, span: int = 100_000):
    rng = np.random.default_rng(seed)
    t = t0 + np.sort(rng.integers(0, span, n))
    return make_events(
        rng.integers(0, width, n), rng.integers(0, height, n), t, rng.integers(0, 2, n)
    )


# -- fake roots ------------------------------------------------------------------------------


def make_nmnist(root: Path, per_class: int = 2, n_events: int = 40) -> dict[str, np.ndarray]:
    """``Train|Test/<digit>/<id>.bin``; returns relative path -> events."""
    write = writer()
    written = {}
    for split in ("Train", "Test"):
        for digit in range(10):
            for k in range(per_class):
                rel = f"{split}/{digit}/{k * 7 + 1:05d}.bin"
                ev = random_events(hash(rel) % 2**31, n_events + k, 34, 34)
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                write(root / rel, ev, "atis-bin")
                written[rel] = ev
    return written


def make_ncaltech(root: Path, per_class: int = 2, classes=None) -> dict[str, np.ndarray]:
    """``Caltech101/<class>/image_XXXX.bin`` (sizes vary per sample, all inside 240x180)."""
    write = writer()
    written = {}
    for i, c in enumerate(classes or dataset_info("n-caltech101").classes):
        for k in range(per_class):
            rel = f"{c}/image_{k + 1:04d}.bin"
            ev = random_events(i * 10 + k, 20, 100 + 50 * k, 80 + 40 * k)
            (root / "Caltech101" / rel).parent.mkdir(parents=True, exist_ok=True)
            write(root / "Caltech101" / rel, ev, "atis-bin")
            written[rel] = ev
    return written


def make_ncars(root: Path, per_class: int = 3) -> dict[str, np.ndarray]:
    """``n-cars_train|n-cars_test/{background,cars}/obj_<id>_td.dat``."""
    write = writer()
    written = {}
    for split in ("n-cars_train", "n-cars_test"):
        for i, c in enumerate(("background", "cars")):
            for k in range(per_class):
                rel = f"{split}/{c}/obj_{i * 1000 + k:06d}_td.dat"
                ev = random_events(hash(rel) % 2**31, 30, 78, 42)
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                write(root / rel, ev, "prophesee-dat")
                written[rel] = ev
    return written


def make_cifar10dvs(
    root: Path, per_class: int = 12, n_events: int = 50, seed: int = 0
) -> dict[str, np.ndarray]:
    """``<class>/cifar10_<class>_<i>.aedat`` in AEDAT 2.0 (jAER orientation)."""
    write = writer()
    written = {}
    for ci, c in enumerate(dataset_info("cifar10-dvs").classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rel = f"{c}/cifar10_{c}_{i}.aedat"
            ev = random_events(seed + ci * 1000 + i, n_events, 128, 128)
            write(root / rel, ev, "aedat2")
            written[rel] = ev
    return written


GESTURE_TRIALS = {
    "train": ["user01_fluorescent.aedat", "user02_lab.aedat"],
    "test": ["user24_led.aedat"],
}


def make_gesture(root: Path, rows: int = 3, n_events: int = 600) -> dict[str, tuple]:
    """``DvsGesture/`` with AEDAT 3.1 recordings, label CSVs and both trial lists.

    Returns recording name -> (events, [(class 1..11, start, end), ...]).
    """
    write = writer()
    folder = root / "DvsGesture"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, names in GESTURE_TRIALS.items():
        (folder / f"trials_to_{split}.txt").write_text("".join(f"{n}\n" for n in names) + "\n")
        for j, name in enumerate(names):
            ev = random_events(
                j + len(split), n_events, 128, 128, t0=1_000_000, span=rows * 100_000
            )
            write(folder / name, ev, "aedat31")
            labels = [
                (
                    (3 * j + r) % 11 + 1,
                    1_000_000 + r * 100_000 + 5_000,
                    1_000_000 + r * 100_000 + 95_000,
                )
                for r in range(rows)
            ]
            text = "class,startTime_usec,endTime_usec\n"
            text += "".join(f"{c},{s},{e}\n" for c, s, e in labels)
            (folder / f"{name[:-6]}_labels.csv").write_text(text)
            out[name] = (ev, labels)
    return out


# -- catalogue -------------------------------------------------------------------------------


def test_catalogue_lists_the_five_datasets_with_their_documented_fields():
    catalogue = load_catalogue()
    assert sorted(catalogue) == NAMES == dataset_names()
    for name, info in catalogue.items():
        assert isinstance(info, DatasetInfo) and info.name == name
        assert info.url.startswith("https://") and info.citation and info.license
        w, h, p = info.sensor_size
        assert p == 2 and w >= 34 and h >= 34
        assert info.split_rule in ("folders", "per-class-ratio", "trial-lists")
        assert set(info.layout) == {"train", "test"} and info.setup
        assert info.raw_format in ("atis-bin", "prophesee-dat", "aedat2", "aedat31")
        with pytest.raises(AttributeError):
            info.name = "x"  # frozen
    doc = json.loads((REPO / "datasets" / "n-cars.json").read_text())
    assert doc["expected"]["files"] == {"train": 15422, "test": 8607, "total": 24029}


def test_catalogue_numbers_match_the_dataset_facts():
    mnist, cars = dataset_info("n-mnist"), dataset_info("n-cars")
    for info in (mnist, cars):
        for split in ("train", "test"):
            assert sum(info.per_class_files[split].values()) == info.expected_files[split]
    assert (mnist.expected_files["train"], mnist.expected_files["test"]) == (60000, 10000)
    cifar = dataset_info("cifar10-dvs")
    assert cifar.sensor_size == (128, 128, 2) and cifar.classes[0] == "airplane"
    assert cifar.expected_files["total"] == 10000 and cifar.train_ratio == 0.9
    assert not cifar.split_official and cifar.raw_options == {"orientation": "jaer"}
    caltech = dataset_info("n-caltech101")
    assert caltech.num_classes == 101 and "Faces" not in caltech.classes
    assert caltech.classes[:4] == ("BACKGROUND_Google", "Faces_easy", "Leopards", "Motorbikes")
    assert list(caltech.classes) == sorted(caltech.classes)
    assert caltech.sensor_size == (240, 180, 2) and cars.sensor_size == (120, 100, 2)
    gesture = dataset_info("dvs128-gesture")
    assert gesture.num_classes == 11 and gesture.split_official
    assert gesture.expected_samples == {"train": 1176, "test": 288}


@pytest.mark.parametrize(
    "name, lr, wd, batch, dropout, model",
    [
        ("cifar10-dvs", 1e-3, 5e-4, 64, 0.6, "VGGSNN"),
        ("n-caltech101", 1e-3, 1e-4, 64, 0.6, "VGG-11"),
        ("n-cars", 1e-3, 1e-4, 64, 0.6, "VGGSNN"),
        ("dvs128-gesture", 1e-3, 1e-4, 32, 0.75, "DVSGestureNet"),
    ],
)
def test_catalogue_paper_rows_follow_table_5(name, lr, wd, batch, dropout, model):
    paper = dataset_info(name).paper
    row = paper["training"]
    assert paper["used"] and paper["n_frames"] == 10 and paper["augmentation"] == name
    assert (row["lr"], row["weight_decay"], row["batch_size"]) == (lr, wd, batch)
    assert (row["dropout"], row["model"], row["T"], row["epochs"]) == (dropout, model, 10, 100)
    assert paper["resize"] == (None if name == "dvs128-gesture" else [48, 48])


def test_dataset_info_accepts_spellings_and_names_the_valid_ones():
    assert dataset_info("N_MNIST").name == "n-mnist"
    with pytest.raises(KeyError, match="valid names: cifar10-dvs, dvs128-gesture"):
        dataset_info("mnist-dvs")


def test_catalogue_readme_documents_every_field():
    readme = (REPO / "datasets" / "README.md").read_text()
    keys = set()
    for name in NAMES:
        doc = json.loads((REPO / "datasets" / f"{name}.json").read_text())
        keys |= set(doc)
        for part in ("raw", "split", "expected", "paper"):
            keys |= {f"{part}.{k}" for k in doc[part]}
    missing = [k for k in sorted(keys) if f"`{k}`" not in readme]
    assert not missing, f"datasets/README.md does not document {missing}"


# -- datasets --------------------------------------------------------------------------------


def test_nmnist_indexes_splits_and_frames_a_fake_root(tmp_path):
    from qifsim.events.datasets import NMNIST

    written = make_nmnist(tmp_path, per_class=2)
    train = NMNIST(tmp_path, "train", strict=False)
    test = NMNIST(tmp_path, split="test", n_frames=4, strict=False)
    assert len(train) == len(test) == 20
    assert train.targets == [d for d in range(10) for _ in range(2)]
    assert train.samples[0].path == "Train/0/00001.bin"
    assert all(s.path.startswith("Test/") for s in test.samples)
    frames, label = train[3]
    assert isinstance(frames, torch.Tensor) and frames.dtype == torch.float32
    assert frames.shape == (10, 2, 34, 34) and label == 1
    ev = written[train.samples[3].path]
    np.testing.assert_array_equal(train.events(3), ev)
    np.testing.assert_array_equal(frames.numpy(), to_frames(ev, (34, 34, 2), 10, "count"))
    assert test[0][0].shape == (4, 2, 34, 34)
    assert test[19][0].sum() == len(written[test.samples[19].path])


def test_nmnist_on_the_real_recording(tmp_path):
    from qifsim.events.datasets import NMNIST

    real = REAL / "sample_nmnist.bin"
    if not real.exists():
        pytest.skip("shared real-event fixtures not present")
    (tmp_path / "Test" / "7").mkdir(parents=True)
    shutil.copy(real, tmp_path / "Test" / "7" / "00001.bin")
    ds = NMNIST(tmp_path, "test", strict=False)
    frames, label = ds[0]
    assert label == 7 and frames.sum() == 4325
    assert frames[:, 1].sum() == 2145 and frames[:, 0].sum() == 2180


def test_ncars_on_the_real_recording(tmp_path):
    from qifsim.events.datasets import NCars

    real = REAL / "sample_ncars.dat"
    if not real.exists():
        pytest.skip("shared real-event fixtures not present")
    (tmp_path / "n-cars_test" / "cars").mkdir(parents=True)
    shutil.copy(real, tmp_path / "n-cars_test" / "cars" / "obj_000001_td.dat")
    frames, label = NCars(tmp_path, "test", strict=False)[0]
    assert label == 1 and frames.shape == (10, 2, 100, 120) and frames.sum() == 2009
    assert frames[..., 42:, :].sum() == 0 and frames[..., 78:].sum() == 0  # x <= 77, y <= 41


def test_dvs128_gesture_reads_each_recording_once_in_index_order(tmp_path, monkeypatch):
    from qifsim.events import datasets

    make_gesture(tmp_path, rows=3)
    ds = datasets.DVS128Gesture(tmp_path, "train")
    reads = []
    original = datasets.EventDataset._read

    def counting(self, sample):
        reads.append(sample.path)
        return original(self, sample)

    monkeypatch.setattr(datasets.EventDataset, "_read", counting)
    for i in range(len(ds)):
        ds[i]
    assert reads == ["user01_fluorescent.aedat", "user02_lab.aedat"]
    ds[0]
    assert reads[-1] == "user01_fluorescent.aedat" and len(reads) == 3


def test_incomplete_root_says_what_is_expected_where(tmp_path):
    from qifsim.events.datasets import NMNIST

    make_nmnist(tmp_path, per_class=1)
    with pytest.raises(DatasetNotFoundError) as err:
        NMNIST(tmp_path, "train")
    text = str(err.value)
    assert "found 10 of 60,000 .bin files in Train/" in text
    assert "0: 1/5,923" in text and "9: 1/5,949" in text
    assert "Train/<digit>/<id>.bin" in text and "Test/<digit>/<id>.bin" in text
    assert "https://www.garrickorchard.com/datasets/n-mnist" in text
    assert "strict=False" in text
    assert isinstance(err.value, FileNotFoundError)


def test_missing_root_and_missing_split_folder(tmp_path):
    from qifsim.events.datasets import NCars

    with pytest.raises(DatasetNotFoundError, match="does not exist") as err:
        NCars(tmp_path / "nowhere")
    assert "https://www.prophesee.ai/" in str(err.value)
    make_ncars(tmp_path)
    shutil.rmtree(tmp_path / "n-cars_test")
    assert len(NCars(tmp_path, "train", strict=False)) == 6
    with pytest.raises(DatasetNotFoundError, match=r"missing folder n-cars_test/") as err:
        NCars(tmp_path, "test", strict=False)
    assert "n-cars_test/{background,cars}/obj_<id>_td.dat" in str(err.value)


def test_ncars_labels_and_nominal_canvas(tmp_path):
    from qifsim.events.datasets import NCars

    written = make_ncars(tmp_path, per_class=3)
    ds = NCars(tmp_path, "test", strict=False)
    assert ds.classes == ("background", "cars") and ds.targets == [0, 0, 0, 1, 1, 1]
    frames, label = ds[4]
    assert frames.shape == (10, 2, 100, 120) and label == 1
    assert frames.sum() == len(written[ds.samples[4].path])
    with pytest.raises(DatasetNotFoundError, match="found 6 of 8,607"):
        NCars(tmp_path, "test")


def test_cifar10dvs_split_is_per_class_sorted_name_order(tmp_path):
    from qifsim.events.datasets import CIFAR10DVS

    make_cifar10dvs(tmp_path, per_class=12)
    train = CIFAR10DVS(tmp_path, "train", strict=False)
    test = CIFAR10DVS(tmp_path, "test", strict=False)
    # floor(0.9 * 12) = 10 train per class, taken in string order: 0, 1, 10, 11, 2, ...
    assert len(train) == 100 and len(test) == 20
    first = [Path(s.path).stem.rsplit("_", 1)[1] for s in train.samples[:10]]
    assert first == ["0", "1", "10", "11", "2", "3", "4", "5", "6", "7"]
    assert [s.path for s in test.samples[:2]] == [
        "airplane/cifar10_airplane_8.aedat",
        "airplane/cifar10_airplane_9.aedat",
    ]
    assert not {s.path for s in train.samples} & {s.path for s in test.samples}
    assert test.targets == [c for c in range(10) for _ in range(2)]
    half = CIFAR10DVS(tmp_path, "test", strict=False, train_ratio=0.5)
    assert len(half) == 60
    again = CIFAR10DVS(tmp_path, "train", strict=False)
    assert again.samples == train.samples
    with pytest.raises(ValueError, match="train_ratio"):
        CIFAR10DVS(tmp_path, strict=False, train_ratio=1.0)


def test_cifar10dvs_orientation_option_reaches_the_reader(tmp_path):
    from qifsim.events.datasets import CIFAR10DVS

    written = make_cifar10dvs(tmp_path, per_class=2)
    jaer = CIFAR10DVS(tmp_path, "test", strict=False)
    transposed = CIFAR10DVS(
        tmp_path, "test", strict=False, reader_options={"orientation": "transposed"}
    )
    ev = written[jaer.samples[0].path]
    np.testing.assert_array_equal(jaer.events(0), ev)
    other = transposed.events(0)
    # jAER x = 127 - x_raw, y = y_raw; transposed x = 127 - y_raw, y = 127 - x_raw
    np.testing.assert_array_equal(other["x"], 127 - ev["y"])
    np.testing.assert_array_equal(other["y"], ev["x"])


def test_cifar10dvs_strict_checks_every_class_count(tmp_path):
    from qifsim.events.datasets import CIFAR10DVS

    make_cifar10dvs(tmp_path, per_class=2)
    shutil.rmtree(tmp_path / "frog")
    with pytest.raises(DatasetNotFoundError) as err:
        CIFAR10DVS(tmp_path)
    text = str(err.value)
    assert "1 of 10 class folders missing in ./: frog" in text
    assert "found 18 of 10,000 .aedat files" in text and "airplane: 2/1,000" in text
    assert "<class>/cifar10_<class>_<i>.aedat" in text and "figshare.com" in text


def test_ncaltech101_classes_background_and_sizes(tmp_path):
    from qifsim.events.datasets import NCaltech101

    written = make_ncaltech(tmp_path, per_class=2)
    ds = NCaltech101(tmp_path, "train", train_ratio=0.5)  # strict: all 101 folders present
    assert ds.num_classes == 101 and len(ds) == 101
    assert ds.samples[0].path == "BACKGROUND_Google/image_0001.bin"
    frames, label = ds[5]
    assert frames.shape == (10, 2, 180, 240) and label == 5
    assert frames.sum() == len(written[ds.samples[5].path])
    objects = NCaltech101(
        tmp_path / "Caltech101", "test", train_ratio=0.5, include_background=False
    )
    assert objects.num_classes == 100 and objects.classes[0] == "Faces_easy"
    assert len(objects) == 100 and objects.targets[:2] == [0, 1]
    assert objects.samples[0].path == "Faces_easy/image_0002.bin"
    small = NCaltech101(tmp_path, "test", train_ratio=0.5, resize=(48, 48))
    assert small[0][0].shape == (10, 2, 48, 48)


def test_ncaltech101_strict_needs_every_class_folder(tmp_path):
    from qifsim.events.datasets import NCaltech101

    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(DatasetNotFoundError, match="missing folder Caltech101/"):
        NCaltech101(tmp_path / "elsewhere", strict=False)
    make_ncaltech(tmp_path, per_class=1, classes=["accordion", "ant", "yin_yang"])
    with pytest.raises(DatasetNotFoundError) as err:
        NCaltech101(tmp_path)
    text = str(err.value)
    assert "98 of 101 class folders missing in Caltech101/: BACKGROUND_Google, Faces_easy" in text
    assert "Caltech101/<class>/image_XXXX.bin" in text and "total 8,709" in text
    ds = NCaltech101(tmp_path, "train", strict=False, train_ratio=0.5)
    assert len(ds) == 0  # floor(0.5 * 1) = 0 train files per class
    test = NCaltech101(tmp_path, "test", strict=False, train_ratio=0.5)
    assert test.targets == [4, 7, 100]


def test_dvs128_gesture_one_sample_per_label_row(tmp_path):
    from qifsim.events.datasets import DVS128Gesture

    recordings = make_gesture(tmp_path, rows=3)
    train = DVS128Gesture(tmp_path, "train")
    test = DVS128Gesture(tmp_path / "DvsGesture", split="test")
    assert len(train) == 6 and len(test) == 3
    assert [s.path for s in train.samples] == ["user01_fluorescent.aedat"] * 3 + [
        "user02_lab.aedat"
    ] * 3
    ev, labels = recordings["user02_lab.aedat"]
    assert train.targets[3:] == [c - 1 for c, _, _ in labels]
    for k, (_, start, end) in enumerate(labels):
        got = train.events(3 + k)
        expected = ev[(ev["t"] >= start) & (ev["t"] < end)]
        assert len(expected) > 0
        np.testing.assert_array_equal(got, expected)
        frames, label = train[3 + k]
        assert frames.shape == (10, 2, 128, 128) and frames.sum() == len(expected)
        assert label == labels[k][0] - 1


def test_dvs128_gesture_missing_files_are_named(tmp_path):
    from qifsim.events.datasets import DVS128Gesture

    with pytest.raises(DatasetNotFoundError, match="missing trial list trials_to_train.txt"):
        DVS128Gesture(tmp_path)
    make_gesture(tmp_path)
    (tmp_path / "DvsGesture" / "user02_lab_labels.csv").unlink()
    with pytest.raises(DatasetNotFoundError) as err:
        DVS128Gesture(tmp_path, "train")
    text = str(err.value)
    assert "1 of 2 trials listed in trials_to_train.txt lack files" in text
    assert "DvsGesture/user02_lab_labels.csv" in text
    assert "research.ibm.com/interactive/dvsgesture" in text
    with pytest.warns(RuntimeWarning, match="1 of 2 listed trials are missing"):
        partial = DVS128Gesture(tmp_path, "train", strict=False)
    assert len(partial) == 3


def test_download_is_refused_with_the_catalogue_url(tmp_path):
    from qifsim.events.datasets import CIFAR10DVS

    with pytest.raises(RuntimeError, match="figshare.com.*download=False"):
        CIFAR10DVS(tmp_path, download=True)


def test_bad_arguments_are_named(tmp_path):
    from qifsim.events.datasets import NMNIST

    make_nmnist(tmp_path, per_class=1)
    for kwargs, match in [
        ({"split": "val"}, "split must be one of"),
        ({"n_frames": 0}, "n_frames"),
        ({"split_by": "number"}, "split_by"),
        ({"resize": (0, 4)}, "resize"),
        ({"resize_mode": "cubic"}, "resize_mode"),
    ]:
        with pytest.raises(ValueError, match=match):
            NMNIST(tmp_path, strict=False, **kwargs)


def test_transforms_run_after_framing_on_every_access(tmp_path):
    from qifsim.events.datasets import NMNIST

    make_nmnist(tmp_path, per_class=1)
    calls = []

    def flip(frames):
        calls.append(frames.shape)
        return frames[..., ::-1]  # a negative-stride view must still become a tensor

    def drop_off(events):
        return events[events["p"] == 1]

    plain = NMNIST(tmp_path, strict=False)
    ds = NMNIST(tmp_path, strict=False, transform=flip, event_transform=drop_off)
    frames, _ = ds[2]
    assert calls == [(10, 2, 34, 34)]
    assert frames[:, 0].sum() == 0
    on = plain[2][0][:, 1].sum(0)
    np.testing.assert_array_equal(frames[:, 1].sum(0).numpy(), on.flip(-1).numpy())


def test_load_dataset_by_name_with_the_paper_preprocessing(tmp_path):
    from qifsim.events.datasets import CIFAR10DVS, load_dataset

    make_cifar10dvs(tmp_path, per_class=2)
    ds = load_dataset("CIFAR10_DVS", tmp_path, split="test", strict=False, paper=True)
    assert isinstance(ds, CIFAR10DVS) and ds.resize == (48, 48) and ds.n_frames == 10
    assert ds.transform is not None
    frames, _ = ds[0]
    assert frames.shape == (10, 2, 48, 48)
    raw = load_dataset("cifar10-dvs", tmp_path, split="test", strict=False)
    assert raw.transform is None and raw[0][0].shape == (10, 2, 128, 128)
    with pytest.raises(KeyError, match="valid names"):
        load_dataset("n-imagenet", tmp_path)


def test_dataloader_batches_uncached_items(tmp_path):
    from qifsim.events.datasets import NCars

    make_ncars(tmp_path, per_class=3)
    loader = torch.utils.data.DataLoader(NCars(tmp_path, "train", strict=False), batch_size=4)
    frames, labels = next(iter(loader))
    assert frames.shape == (4, 10, 2, 100, 120) and labels.tolist() == [0, 0, 0, 1]
    assert math.isclose(float(frames[0].sum()), 30.0)
