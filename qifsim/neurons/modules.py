"""QIF and LIF neuron modules (thin wrappers over the pure/fused functions).

Conventions follow norse: ``forward(input, state=None) -> (output, state)``,
the state argument literally named ``state``, time-first tensors. So the
modules drop into ``norse.torch.SequentialState`` and can be stepped by hand
in snntorch style (``spk, state = cell(x_t, state)``).

* :class:`QIFCell`, :class:`LIFCell`: one step, ``x: [B, ...]``.
* :class:`QIF`, :class:`LIF`: a sequence, ``x: [T, B, ...]``.

``state.v`` is the membrane potential after reset. The initial state is
``u_rest`` (QIF) or 0 (LIF). With ``record_states=True`` (multi-step only)
the returned ``state.v`` holds every step, ``[T, B, ...]``.

Parameters can be learnable (``learnable=("a", "u_c")``): they become
``nn.Parameter`` s stored through a reparametrisation that keeps the
constraints during training (``a = softplus(raw) > 0``,
``u_c = u_rest + softplus(raw) > u_rest``, ``beta = sigmoid(raw)`` in (0, 1)).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .functional import (
    MODE_LIF,
    QIF_MODES,
    NeuronTensors,
    neuron_sequence_reference,
    state_after_reset,
)
from .fused import BACKENDS, neuron_sequence_fused
from .parameters import LIFParameters, QIFParameters, window_moments
from .surrogate import surrogate_kind

IMPLS = ("fused", "reference")


class QIFState(NamedTuple):
    """QIF state: ``v`` = membrane potential after reset, ``[B, ...]``."""

    v: torch.Tensor


class LIFState(NamedTuple):
    """LIF state: ``v`` = membrane potential after reset, ``[B, ...]``."""

    v: torch.Tensor


def _inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


def _state_dtype(x: torch.Tensor) -> torch.dtype:
    if not x.is_floating_point():
        raise TypeError(
            f"neuron input must be a floating-point current, got {x.dtype}; "
            "convert it with x.float()"
        )
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


class _NeuronBase(nn.Module):
    """Shared machinery: parameter storage, input checks, the fused/reference split."""

    _state_cls: type = QIFState
    _params_cls: type = QIFParameters
    _learnable_names: tuple[str, ...] = ()

    def __init__(
        self,
        p=None,
        learnable=(),
        detach_reset: bool = False,
        impl: str = "fused",
        backend: str = "auto",
        record_states: bool = False,
        check_inputs: bool | None = None,
    ) -> None:
        """
        Args:
            p: neuron parameters (:class:`QIFParameters` / :class:`LIFParameters`);
                ``None`` uses the paper's defaults.
            learnable: names of parameters to train (e.g. ``("a", "u_c")``).
            detach_reset: stop gradients through the reset.
            impl: ``"fused"`` (one custom op over all steps) or ``"reference"``
                (step-by-step autograd).
            backend: kernel of the fused op: ``"auto"`` (Triton on CUDA, numba on
                CPU), ``"numba"``, ``"torch"`` or ``"triton"``
                (see :func:`qifsim.neurons.fused.resolve_backend`).
            record_states: return the state of every step (``state.v: [T, B, ...]``).
            check_inputs: raise on NaN/inf inputs (one reduction per call).
                ``None`` (default) checks CPU inputs and skips CUDA ones: there
                the check would synchronise with the host at every layer and
                step. A non-finite loss still stops training (``qifsim.train``).
                ``True`` checks on every device, ``False`` nowhere.
        """
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        learnable = (learnable,) if isinstance(learnable, str) else tuple(learnable)
        unknown = sorted(set(learnable) - set(self._learnable_names))
        if unknown:
            raise ValueError(
                f"cannot learn {unknown}; learnable parameters of {type(self).__name__}: "
                f"{self._learnable_names}"
            )
        p = self._params_cls() if p is None else p
        if not isinstance(p, self._params_cls):
            raise TypeError(f"expected {self._params_cls.__name__}, got {type(p).__name__}")
        self.p = p
        self.learnable = learnable
        self.detach_reset = detach_reset
        self.impl = impl
        self.backend = backend
        self.record_states = record_states
        self.check_inputs = check_inputs
        self._store_parameters(p)

    # -- storage -------------------------------------------------------------
    def _store(self, name: str, value, raw=None) -> None:
        """Register ``name`` as a fixed buffer, or its raw form as a Parameter.

        Tensors keep their dtype. Python numbers become float64 buffers (so
        float64 simulations see them unrounded) or default-dtype Parameters.
        """
        learn = name in self.learnable
        if isinstance(value, torch.Tensor):
            tensor = value.detach().clone()
        else:
            tensor = torch.tensor(
                value, dtype=torch.get_default_dtype() if learn else torch.float64
            )
        if learn:
            raw_value = tensor if raw is None else raw(tensor)
            self.register_parameter(f"{name}_raw", nn.Parameter(raw_value))
        else:
            self.register_buffer(f"{name}_fixed", tensor)

    # -- subclass interface -------------------------------------------------
    def _store_parameters(self, p) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def neuron_values(self) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def current_parameters(self):
        """The parameters in use now, as a (detached) parameters dataclass."""
        vals = {
            k: (v.item() if v.numel() == 1 else v.detach().clone())
            for k, v in self.neuron_values().items()
        }
        return self.p.replace(**vals)

    def _neuron_tensors(self, dtype: torch.dtype, device: torch.device) -> NeuronTensors:
        raise NotImplementedError  # pragma: no cover - abstract

    def _initial_state(self, shape: torch.Size, dtype: torch.dtype, p: NeuronTensors):
        return p.reset.expand(shape).to(dtype)

    # -- forward ------------------------------------------------------------
    def _check(self, x: torch.Tensor, min_dim: int) -> None:
        if x.dim() < min_dim:
            layout = "[T, B, ...]" if min_dim == 2 else "[B, ...]"
            raise ValueError(
                f"{type(self).__name__} expects input {layout}, got shape {tuple(x.shape)}"
            )
        check = x.device.type == "cpu" if self.check_inputs is None else self.check_inputs
        if check and not torch.compiler.is_compiling():
            # One reduction instead of an elementwise mask: any NaN/inf makes the
            # sum non-finite (finite inputs summing past the dtype's max would too,
            # and those would overflow the quadratic term anyway).
            if not bool(torch.isfinite(x.sum())):
                raise ValueError(
                    f"{type(self).__name__} input contains NaN or inf; check the layer "
                    "before it (or pass check_inputs=False to skip this check)"
                )

    def _run(self, x: torch.Tensor, state):
        """``x: [T, B, ...]`` -> ``(spikes, v, u_last, params)`` (see ``neuron_sequence_*``)."""
        dtype = _state_dtype(x)
        p = self._neuron_tensors(dtype, x.device)
        if state is None:
            u0 = self._initial_state(x.shape[1:], dtype, p)
        else:
            u0 = state.v
            if u0.shape != x.shape[1:]:
                raise ValueError(
                    f"state.v has shape {tuple(u0.shape)} but one input step has shape "
                    f"{tuple(x.shape[1:])}; pass state=None to start from rest"
                )
            u0 = u0.to(dtype)
        if self.impl == "fused":
            # Halves go in as they are: the fused op reads them into a float32 state.
            spikes, v, u_last = neuron_sequence_fused(x, u0, p, self.detach_reset, self.backend)
        else:
            spikes, v, u_last = neuron_sequence_reference(x.to(dtype), u0, p, self.detach_reset)
        return spikes, v, u_last, p

    def _sequence(self, x: torch.Tensor, state):
        self._check(x, 2)
        spikes, v, u_last, p = self._run(x, state)
        if self.record_states:
            v_after = state_after_reset(spikes.to(v.dtype), v, p.reset, self.detach_reset)
        else:
            v_after = u_last
        return spikes.to(x.dtype), self._state_cls(v_after)

    def _step(self, x: torch.Tensor, state):
        self._check(x, 1)
        spikes, _, u_last, _ = self._run(x.unsqueeze(0), state)
        return spikes[0].to(x.dtype), self._state_cls(u_last)

    def extra_repr(self) -> str:
        values = ", ".join(
            f"{k}={v.item():.4g}" if v.numel() == 1 else f"{k}=<{tuple(v.shape)}>"
            for k, v in self.neuron_values().items()
        )
        extra = f", learnable={self.learnable}" if self.learnable else ""
        return f"{values}, impl={self.impl!r}{extra}"


class _QIFBase(_NeuronBase):
    _state_cls = QIFState
    _params_cls = QIFParameters
    _learnable_names = ("a", "u_rest", "u_c", "u_th")

    def _store_parameters(self, p: QIFParameters) -> None:
        a, u_rest, u_c = (torch.as_tensor(v, dtype=torch.float64) for v in (p.a, p.u_rest, p.u_c))
        self._store("a", a, _inverse_softplus)
        # Storage that keeps u_rest < u_c (see neuron_values for the inverse):
        #   u_c learnable:            u_c_raw = softplus^-1(u_c - u_rest), u_rest as given
        #   only u_rest learnable:    u_rest_raw = softplus^-1(u_c - u_rest)
        if "u_c" in self.learnable:
            self._store("u_rest", u_rest)
            self._store("u_c", u_c - u_rest, _inverse_softplus)
        else:
            self._store(
                "u_rest", u_c - u_rest if "u_rest" in self.learnable else u_rest, _inverse_softplus
            )
            self._store("u_c", u_c)
        self._store("u_th", p.u_th)

    def neuron_values(self) -> dict[str, torch.Tensor]:
        """Current effective ``a, u_rest, u_c, u_th`` (differentiable tensors)."""
        a = F.softplus(self.a_raw) if "a" in self.learnable else self.a_fixed
        if "u_c" in self.learnable:
            u_rest = self.u_rest_raw if "u_rest" in self.learnable else self.u_rest_fixed
            u_c = u_rest + F.softplus(self.u_c_raw)
        elif "u_rest" in self.learnable:
            u_c = self.u_c_fixed
            u_rest = u_c - F.softplus(self.u_rest_raw)
        else:
            u_rest, u_c = self.u_rest_fixed, self.u_c_fixed
        u_th = self.u_th_raw if "u_th" in self.learnable else self.u_th_fixed
        return {"a": a, "u_rest": u_rest, "u_c": u_c, "u_th": u_th}

    def _neuron_tensors(self, dtype, device) -> NeuronTensors:
        vals = {k: v.to(device=device, dtype=dtype) for k, v in self.neuron_values().items()}
        if self.p.surrogate == "analytic":
            with torch.no_grad():
                centre, width = window_moments(
                    vals["a"], vals["u_rest"], vals["u_c"], vals["u_th"], self.p.form
                )
        else:
            centre = vals["u_th"].detach()
            width = torch.tensor(self.p.alpha, dtype=dtype, device=device)
        return NeuronTensors(
            a=vals["a"],
            reset=vals["u_rest"],
            u_c=vals["u_c"],
            u_th=vals["u_th"],
            centre=centre,
            width=width,
            mode=QIF_MODES[self.p.form],
            kind=surrogate_kind(self.p.surrogate),
        )


class _LIFBase(_NeuronBase):
    _state_cls = LIFState
    _params_cls = LIFParameters
    _learnable_names = ("beta", "u_th")

    def _store_parameters(self, p: LIFParameters) -> None:
        beta = torch.as_tensor(p.beta, dtype=torch.float64)
        if "beta" in self.learnable and not bool(((beta > 0) & (beta < 1)).all()):
            raise ValueError(
                f"a learnable beta must lie strictly inside (0, 1) (it is stored as a logit), "
                f"got {p.beta!r}"
            )
        self._store("beta", beta, torch.logit)
        self._store("u_th", p.u_th)

    def neuron_values(self) -> dict[str, torch.Tensor]:
        """Current effective ``beta, u_th`` (differentiable tensors)."""
        beta = torch.sigmoid(self.beta_raw) if "beta" in self.learnable else self.beta_fixed
        u_th = self.u_th_raw if "u_th" in self.learnable else self.u_th_fixed
        return {"beta": beta, "u_th": u_th}

    def _neuron_tensors(self, dtype, device) -> NeuronTensors:
        vals = {k: v.to(device=device, dtype=dtype) for k, v in self.neuron_values().items()}
        zero = torch.zeros((), dtype=dtype, device=device)
        return NeuronTensors(
            a=vals["beta"],
            reset=zero,
            u_c=zero,
            u_th=vals["u_th"],
            centre=vals["u_th"].detach(),
            width=torch.tensor(self.p.alpha, dtype=dtype, device=device),
            mode=MODE_LIF,
            kind=surrogate_kind(self.p.surrogate),
        )


class QIFCell(_QIFBase):
    """One time step of a layer of discretized QIF neurons.

    ``forward(x: [B, ...], state: QIFState | None) -> (spikes [B, ...], QIFState)``.
    """

    def forward(self, input: torch.Tensor, state: QIFState | None = None):  # noqa: A002
        return self._step(input, state)


class QIF(_QIFBase):
    """A layer of discretized QIF neurons over a time-first sequence.

    ``forward(x: [T, B, ...], state: QIFState | None) -> (spikes [T, B, ...], QIFState)``.
    ``impl="fused"`` (default) runs all T steps in one custom op with a hand-written
    backward; ``impl="reference"`` steps through :func:`~qifsim.neurons.functional.neuron_step`.
    """

    def forward(self, input: torch.Tensor, state: QIFState | None = None):  # noqa: A002
        return self._sequence(input, state)


class LIFCell(_LIFBase):
    """One time step of a layer of LIF neurons (Wu et al. 2018 form)."""

    def forward(self, input: torch.Tensor, state: LIFState | None = None):  # noqa: A002
        return self._step(input, state)


class LIF(_LIFBase):
    """A layer of LIF neurons (Wu et al. 2018 form) over a time-first sequence."""

    def forward(self, input: torch.Tensor, state: LIFState | None = None):  # noqa: A002
        return self._sequence(input, state)
