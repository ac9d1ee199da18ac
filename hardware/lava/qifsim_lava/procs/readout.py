"""Readout accumulator Process (off-chip, non-firing) with ``floating_pt`` and ``fixed_pt`` models.

Sums its synaptic input plus bias over the ``T`` steps of every sample and stores the sum
of sample ``k`` in ``results[k]``. Sample ``k`` arrives at Lava steps
``first + k * period + t`` for ``t = 0 .. T - 1``. Float: ``acc = sum_t (a_in + bias)``;
fixed: ``acc = sum_t (a_in + bias_mant) * 64`` (int64, no saturation; EXCHANGE.md).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class Readout(AbstractProcess):
    """Accumulate ``n`` readout currents per sample.

    Args:
        n: number of classes.
        samples: number of samples in the run (rows of ``results``).
        steps: ``T``, steps per sample that are summed.
        period: Lava steps per sample (``T + D``).
        first: Lava step (1-based) that carries step 0 of sample 0.
        bias: float bias ``(n,)`` (float model); bias_mant: integer ``(n,)`` (fixed model).
    """

    def __init__(
        self,
        *,
        n: int,
        samples: int,
        steps: int,
        period: int,
        first: int,
        bias: np.ndarray | float = 0.0,
        bias_mant: np.ndarray | int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(steps=steps, period=period, first=first, name=name)
        self.a_in = InPort(shape=(n,))
        self.bias = Var(shape=(n,), init=np.broadcast_to(bias, (n,)).copy())
        self.bias_mant = Var(shape=(n,), init=np.broadcast_to(bias_mant, (n,)).copy())
        self.acc = Var(shape=(n,), init=0)
        self.results = Var(shape=(samples, n), init=0)


class _ReadoutModel(PyLoihiProcessModel):
    def _accumulate(self, current: np.ndarray) -> None:
        rel = self.time_step - self.proc_params["first"]
        if rel < 0:
            return
        k, phase = divmod(rel, self.proc_params["period"])
        steps = self.proc_params["steps"]
        if phase >= steps or k >= self.results.shape[0]:
            return
        if phase == 0:
            self.acc[:] = 0
        self.acc[:] = self.acc + current
        if phase == steps - 1:
            self.results[k] = self.acc


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyReadoutModelFloat(_ReadoutModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, int)
    acc: np.ndarray = LavaPyType(np.ndarray, float)
    results: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        self._accumulate(np.asarray(self.a_in.recv(), dtype=np.float64) + self.bias)


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReadoutModelFixed(_ReadoutModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int64)
    acc: np.ndarray = LavaPyType(np.ndarray, np.int64)
    results: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def run_spk(self) -> None:
        a_in = np.asarray(self.a_in.recv()).astype(np.int64)
        self._accumulate((a_in + self.bias_mant) * 64)
