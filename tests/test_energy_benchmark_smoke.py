"""Smoke test of benchmarks/energy.py: a --quick run writes well-formed JSON."""

from __future__ import annotations

import pytest
from conftest import quick_benchmark

CASES = (
    "plain",
    "qifsim_counter",
    "qifsim_counter_hist",
    "qifsim_spike_monitor",
    "spikingjelly_monitor",
    "naive_store_all",
)


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory) -> dict:
    result, stdout = quick_benchmark("energy", tmp_path_factory.mktemp("bench") / "energy.json")
    assert "qifsim_counter" in stdout and "target" in stdout
    return result


def test_quick_timings_and_ratios(quick_result):
    assert quick_result["config"]["quick"] is True
    for name in ("digits-net", "vggsnn", "norse-net"):
        model = quick_result["models"][name]
        ran = set(model["cases"])
        assert {"plain", "qifsim_counter", "qifsim_counter_hist"} <= ran
        assert ran | set(model["skipped"]) == set(CASES)
        for case, entry in model["cases"].items():
            total = entry["timings_ms"]["total"]
            assert len(total["samples"]) == model["config"]["repeats"] and total["median"] > 0
            if case != "plain":
                assert model["ratios"][f"{case}_over_plain"] > 0
        assert 0.0 < model["mean_firing_rate"] < 1.0
        check = quick_result["targets"][f"{name}_counter_over_plain"]
        assert check["target"] == 1.3 and check["met"] in (True, False)


def test_quick_memory_is_constant_for_qifsim_only(quick_result):
    mem = quick_result["memory"]
    for case in ("qifsim_counter", "qifsim_counter_hist", "qifsim_spike_monitor"):
        assert mem[case]["constant"] is True and mem[case]["growth_bytes"] == 0
    assert mem["naive_store_all"]["growth_bytes"] > 0
