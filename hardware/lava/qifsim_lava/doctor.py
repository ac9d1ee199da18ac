"""Environment check of the Lava side: versions and one real Lava run."""

from __future__ import annotations

import platform
import time

import numpy as np


def _run_tiny_dense_network(steps: int = 3) -> dict:
    """Feed a fixed spike pattern through a Lava ``Dense`` process and read it back.

    Lava's Dense sends the product computed on the previous step, so the sink
    sees ``W @ s(t-1)``; the check compares that with numpy.
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    spikes = np.array([[1, 0, 1], [0, 1, 1]], dtype=float)  # (neurons=2, steps=3)
    weights = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])  # (out=3, in=2)
    source = Source(data=spikes)
    dense = Dense(weights=weights)
    sink = Sink(shape=(3,), buffer=steps)
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(sink.a_in)
    start = time.perf_counter()
    sink.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
    received = sink.data.get()
    sink.stop()
    expected = np.zeros((3, steps))
    expected[:, 1:] = weights @ spikes[:, :-1]
    return {
        "ok": bool(np.allclose(received, expected)),
        "received": received.tolist(),
        "expected": expected.tolist(),
        "seconds": time.perf_counter() - start,
    }


def environment_report() -> dict:
    """Versions of the Lava environment and the result of a tiny Lava run."""
    import lava

    report = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "lava_nc": getattr(lava, "__version__", None),
    }
    try:
        from importlib.metadata import version

        report["lava_nc"] = version("lava-nc")
    except Exception:  # pragma: no cover - metadata missing
        pass
    run = _run_tiny_dense_network()
    report["lava_run_ok"] = run["ok"]
    report["lava_run"] = run
    return report
