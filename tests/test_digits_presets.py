"""Acceptance: the demo presets reach 85% on digits-dvs with both neurons (seeded).

Runs the real presets (digits-net, 5 epochs, all 1,442 training recordings);
about 15-20 s per neuron on 2 CPU cores. The spike rates are measured and
printed; the README reports them (QIF is not assumed to spike less).
"""

import pytest

from qifsim.train import fit
from qifsim.train.presets import load_preset


@pytest.mark.parametrize("neuron", ["qif", "lif"])
def test_digits_preset_reaches_85_percent(neuron, tmp_path, capsys):
    config = load_preset(f"digits-{neuron}")
    assert config.seed == 0 and config.dataset == "digits-dvs"
    final = fit(config, tmp_path, progress=False)
    acc = final["test_acc"]
    with capsys.disabled():
        print(
            f"\n  digits-{neuron}: test accuracy {acc:.4f}, "
            f"mean spike rate {final['mean_spike_rate']:.4f}"
        )
    assert acc >= 0.85
