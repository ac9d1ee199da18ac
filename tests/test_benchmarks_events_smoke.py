"""Smoke test of benchmarks/events.py: a --quick run prints a table and writes valid JSON."""

from __future__ import annotations

import pytest
from conftest import quick_benchmark, run_benchmark


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[dict, str]:
    return quick_benchmark("events", tmp_path_factory.mktemp("bench") / "events.json")


def test_quick_config_and_table(quick):
    result, stdout = quick
    cfg = result["config"]
    assert cfg["quick"] is True and cfg["sizes"] == [20_000] and cfg["decode_events"] == 20_000
    assert cfg["n_frames"] == 10 and cfg["sensor_size"] == [128, 128, 2]
    assert "numpy" in cfg["versions"]
    assert "frames count_20000" in stdout and "decode atis-bin" in stdout and "targets" in stdout


def test_quick_framing_measured_and_consistent(quick):
    result, _ = quick
    for key in ("count_20000", "time_20000"):
        impls = result["framing"][key]["implementations"]
        for name in ("qifsim", "qifsim_1thread", "numpy"):
            assert impls[name]["meps"] > 0 and impls[name]["median_ms"] > 0
            assert impls[name]["equal_to_qifsim"] is True  # same conventions
            assert impls[name]["events_counted"] == 20_000


def test_quick_decoding_measured_and_exact(quick):
    result, _ = quick
    for fmt in ("atis-bin", "aedat2", "aedat31"):
        entry = result["decoding"][fmt]
        assert entry["implementations"]["qifsim"]["equal_to_written"] is True
        assert entry["implementations"]["qifsim"]["meps"] > 0 and entry["file_bytes"] > 0


def test_quick_cache_measured_and_exact(quick):
    result, stdout = quick
    cfg = result["config"]
    assert cfg["cache_per_class"] == 2 and cfg["cache_events"] == 2_000 and cfg["cache_epochs"] == 1
    assert set(result["cache"]) == {"48x48", "128x128"}
    for setup, entry in result["cache"].items():
        assert entry["samples"] == 10 and f"cache {setup}" in stdout  # 1 train file per class
        assert entry["has_target"] is (setup == "48x48")
        impls = entry["implementations"]
        assert set(impls) == {"frame_again", "cache", "cache_gzip"}
        for name, impl in impls.items():
            assert impl["median_ms"] > 0 and impl["equal_to_frame_again"] is True
            if name != "frame_again":
                assert impl["build_ms"] > 0 and impl["file_bytes"] > 0
        assert impls["cache"]["compression"] is None
        assert impls["cache_gzip"]["compression"] == "gzip"
        assert impls["cache"]["dtype"] == ("float32" if setup == "48x48" else "uint16")
        assert entry["cache_over_frame_again"] == pytest.approx(
            impls["frame_again"]["median_ms"] / impls["cache"]["median_ms"]
        )


def test_quick_targets_are_measured_not_hard_coded(quick):
    result, _ = quick
    targets = result["targets"]
    assert "decoding_over_tonic[atis-bin]" in targets
    assert "cache_over_frame_again[48x48]" in targets
    assert "cache_over_frame_again[128x128]" not in targets  # information only
    for target in targets.values():
        assert target["op"] == ">=" and target["target"] > 0
        if target["value"] is None:
            assert target["met"] is None
        else:
            assert target["met"] is (target["value"] >= target["target"])


def test_quick_tonic_rows_when_available(quick):
    pytest.importorskip("tonic")
    result, _ = quick
    assert result["framing"]["count_20000"]["qifsim_over_tonic"] > 0
    tonic = result["decoding"]["atis-bin"]["implementations"]["tonic"]
    assert tonic["events_decoded"] == 20_000 and tonic["t_equal"] is True


def test_help():
    proc = run_benchmark("events", "--help")
    assert proc.returncode == 0 and "--quick" in proc.stdout and "tonic" in proc.stdout
