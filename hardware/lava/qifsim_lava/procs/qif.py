"""QIF neuron Process with ``floating_pt`` and ``fixed_pt`` models (``hardware/lava/EXCHANGE.md``).

Per step (float64)::

    I = a_in + bias
    v = a (u - u_rest)(u - u_c) + I        (paper; euler adds u)
    s = v >= u_th;  u = u_rest where s else v

Fixed point (int64, 24-bit state)::

    I = (a_in + bias_mant) * 64
    V = shr((U - R)(U - C) a_mant, a_shift) + I   (euler adds U), clipped to +-(2^23 - 1)
    s = V >= vth_mant * 64;  U = R where s else V

``shr`` shifts right rounding toward zero. With ``reset_interval = P > 0`` the state
returns to the reset value at the start of every step with ``time_step % P == reset_offset % P``
(so many samples run in one compiled network).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

STATE_MAX = 2**23 - 1


def shr(x: np.ndarray, k: int) -> np.ndarray:
    """Arithmetic shift right of int64 ``x`` by ``k``, rounding toward zero (as Loihi)."""
    return np.sign(x) * (np.abs(x) >> k)


class QIF(AbstractProcess):
    """Quadratic integrate-and-fire neurons, Lava layout ``shape``: ``(N,)`` or ``(W, H, C)``.

    Args:
        shape: neuron array shape.
        bias: float bias (potential units) broadcastable to ``shape``; float model.
        a, u_rest, u_c, u_th: float parameters (float model).
        bias_mant: integer bias mantissas broadcastable to ``shape`` (fixed model, units of 1/64).
        u_rest_int, u_c_int, a_mant, a_shift, vth_mant: integer parameters (fixed model).
        euler: ``True`` for the euler form (``v = u + drive + I``), else the paper form.
        reset_interval, reset_offset: per-sample state reset (0 disables).
    """

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        bias: np.ndarray | float = 0.0,
        a: float = 0.0,
        u_rest: float = 0.0,
        u_c: float = 0.0,
        u_th: float = 1.0,
        bias_mant: np.ndarray | int = 0,
        u_rest_int: int = 0,
        u_c_int: int = 0,
        a_mant: int = 0,
        a_shift: int = 0,
        vth_mant: int = 1,
        euler: bool = False,
        reset_interval: int = 0,
        reset_offset: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(
            shape=shape,
            euler=euler,
            reset_interval=reset_interval,
            reset_offset=reset_offset,
            name=name,
        )
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=u_rest)
        self.bias = Var(shape=shape, init=np.broadcast_to(bias, shape).copy())
        self.a = Var(shape=(1,), init=a)
        self.u_rest = Var(shape=(1,), init=u_rest)
        self.u_c = Var(shape=(1,), init=u_c)
        self.u_th = Var(shape=(1,), init=u_th)
        self.u_int = Var(shape=shape, init=u_rest_int)
        self.bias_mant = Var(shape=shape, init=np.broadcast_to(bias_mant, shape).copy())
        self.u_rest_int = Var(shape=(1,), init=u_rest_int)
        self.u_c_int = Var(shape=(1,), init=u_c_int)
        self.a_mant = Var(shape=(1,), init=a_mant)
        self.a_shift = Var(shape=(1,), init=a_shift)
        self.vth_mant = Var(shape=(1,), init=vth_mant)


class _QIFModel(PyLoihiProcessModel):
    """Shared step logic: reset check, then :meth:`update`."""

    def _reset_due(self) -> bool:
        interval = self.proc_params["reset_interval"]
        return bool(interval) and self.time_step % interval == (
            self.proc_params["reset_offset"] % interval
        )


@implements(proc=QIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyQIFModelFloat(_QIFModel):
    """Exact float64 arithmetic of EXCHANGE.md's float semantics."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    a: np.ndarray = LavaPyType(np.ndarray, float)
    u_rest: np.ndarray = LavaPyType(np.ndarray, float)
    u_c: np.ndarray = LavaPyType(np.ndarray, float)
    u_th: np.ndarray = LavaPyType(np.ndarray, float)
    u_int: np.ndarray = LavaPyType(np.ndarray, int)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, int)
    u_rest_int: np.ndarray = LavaPyType(np.ndarray, int)
    u_c_int: np.ndarray = LavaPyType(np.ndarray, int)
    a_mant: np.ndarray = LavaPyType(np.ndarray, int)
    a_shift: np.ndarray = LavaPyType(np.ndarray, int)
    vth_mant: np.ndarray = LavaPyType(np.ndarray, int)

    def run_spk(self) -> None:
        current = np.asarray(self.a_in.recv(), dtype=np.float64) + self.bias
        rest = float(self.u_rest[0])
        if self._reset_due():
            self.u[:] = rest
        u = self.u
        drive = float(self.a[0]) * (u - rest) * (u - float(self.u_c[0]))
        v = (u + drive if self.proc_params["euler"] else drive) + current
        s = v >= float(self.u_th[0])
        self.u[:] = np.where(s, rest, v)
        self.s_out.send(s.astype(np.float64))


@implements(proc=QIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQIFModelFixed(_QIFModel):
    """Integer arithmetic of EXCHANGE.md's fixed-point semantics (24-bit saturating state)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    a: np.ndarray = LavaPyType(np.ndarray, float)
    u_rest: np.ndarray = LavaPyType(np.ndarray, float)
    u_c: np.ndarray = LavaPyType(np.ndarray, float)
    u_th: np.ndarray = LavaPyType(np.ndarray, float)
    u_int: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    u_rest_int: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    u_c_int: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    a_mant: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=13)
    a_shift: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=6)
    vth_mant: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=17)

    def run_spk(self) -> None:
        a_in = np.asarray(self.a_in.recv()).astype(np.int64)
        current = (a_in + self.bias_mant) * 64
        r = int(self.u_rest_int[0])
        c = int(self.u_c_int[0])
        if self._reset_due():
            self.u_int[:] = r
        u = self.u_int.astype(np.int64)
        drive = shr((u - r) * (u - c) * int(self.a_mant[0]), int(self.a_shift[0]))
        v = (u + drive if self.proc_params["euler"] else drive) + current
        v = np.clip(v, -STATE_MAX, STATE_MAX)
        s = v >= int(self.vth_mant[0]) * 64
        self.u_int[:] = np.where(s, r, v)
        self.s_out.send(s.astype(np.int32))
