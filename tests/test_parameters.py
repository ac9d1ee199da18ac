"""Parameter validation and learnable parameters that keep their constraints."""

import math

import pytest
import torch

from qifsim import LIFParameters, QIFParameters
from qifsim.neurons import LIF, QIF


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(a=0.0), "a must be > 0"),
        (dict(a=-0.1), "a must be > 0"),
        (dict(a=torch.tensor([0.2, -0.2])), "a must be > 0"),
        (dict(u_rest=0.5, u_c=0.5), "u_rest must be < u_c"),
        (dict(u_rest=0.8, u_c=0.2), "u_rest must be < u_c"),
        (dict(u_th=float("nan")), "u_th must be finite"),
        (dict(u_th=float("inf")), "u_th must be finite"),
        (dict(a=float("nan")), "a must be finite"),
        (dict(form="rk4"), "form must be one of"),
        (dict(surrogate="magic"), "unknown surrogate 'magic'; choose one of"),
        (dict(surrogate="sigmoid", alpha=-1.0), "alpha must be a finite number > 0"),
        (dict(alpha=2.0), "takes no alpha"),
        (dict(u_th="0.5"), "u_th must be a float or a tensor"),
    ],
)
def test_bad_qif_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QIFParameters(**kwargs)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(beta=-0.1), r"beta must be within \[0, 1\]"),
        (dict(beta=1.5), r"beta must be within \[0, 1\]"),
        (dict(u_th=float("nan")), "u_th must be finite"),
        (dict(surrogate="analytic", alpha=None), "derived for QIF neurons"),
    ],
)
def test_bad_lif_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LIFParameters(**kwargs)


def test_module_arguments_are_checked():
    with pytest.raises(ValueError, match="cannot learn"):
        QIF(learnable=("tau",))
    with pytest.raises(ValueError, match="impl must be one of"):
        QIF(impl="fast")
    with pytest.raises(ValueError, match="strictly inside"):
        LIF(LIFParameters(beta=1.0), learnable="beta")
    with pytest.raises(TypeError, match="expected QIFParameters"):
        QIF(LIFParameters())


def test_bad_inputs_raise_clear_errors():
    q = QIF()
    with pytest.raises(ValueError, match=r"expects input \[T, B, \.\.\.\]"):
        q(torch.randn(5))
    with pytest.raises(TypeError, match="floating-point current"):
        q(torch.ones(3, 2, 4, dtype=torch.int64))
    x = torch.randn(3, 2, 4)
    x[1, 0, 2] = float("nan")
    with pytest.raises(ValueError, match="contains NaN or inf"):
        q(x)
    _, state = q(torch.randn(3, 2, 4))
    with pytest.raises(ValueError, match="state.v has shape"):
        q(torch.randn(3, 5, 4), state)


def test_input_check_defaults_to_cpu_only():
    """``check_inputs=None`` checks CPU inputs; ``False`` skips; ``True`` checks everywhere."""
    x = torch.randn(3, 2, 4)
    x[0, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="contains NaN or inf"):
        QIF(check_inputs=True)(x)
    spikes, _ = QIF(check_inputs=False)(x)
    assert spikes.shape == x.shape
    if torch.cuda.is_available():  # no host sync by default on CUDA
        spikes, _ = QIF().cuda()(x.cuda())
        assert spikes.shape == x.shape
        with pytest.raises(ValueError, match="contains NaN or inf"):
            QIF(check_inputs=True).cuda()(x.cuda())


def test_aliases_and_defaults():
    assert QIFParameters(surrogate="super").surrogate == "superspike"
    assert QIFParameters(surrogate="sigmoid").alpha == 4.0
    assert QIFParameters().replace(surrogate="rect").alpha == 1.0
    assert LIFParameters().alpha == 1.0 and LIFParameters().surrogate == "rect"


def test_learnable_parameters_keep_their_constraints_under_training():
    q = QIF(
        QIFParameters(a=0.25, u_rest=0.0, u_c=0.5, u_th=0.5),
        learnable=("a", "u_rest", "u_c", "u_th"),
    )
    lif = LIF(learnable=("beta", "u_th"))
    values = q.neuron_values()
    assert values["a"].item() == pytest.approx(0.25)
    assert values["u_c"].item() == pytest.approx(0.5)
    assert lif.neuron_values()["beta"].item() == pytest.approx(0.25)
    opt = torch.optim.SGD(list(q.parameters()) + list(lif.parameters()), lr=5.0)
    x = torch.rand(4, 8, 16)
    for _ in range(30):
        opt.zero_grad()
        vals, lv = q.neuron_values(), lif.neuron_values()
        # push a and beta negative, u_c below u_rest: the reparametrisation must hold them
        loss = vals["a"].sum() + (vals["u_c"] - vals["u_rest"]).sum() - lv["beta"].sum() * 0
        loss = loss + lv["beta"].sum() + q(x)[0].sum() * 0
        loss.backward()
        opt.step()
    vals, lv = q.neuron_values(), lif.neuron_values()
    assert (vals["a"] > 0).all() and (vals["u_c"] > vals["u_rest"]).all()
    assert ((lv["beta"] > 0) & (lv["beta"] < 1)).all()
    assert vals["a"].item() < 0.25  # it did move
    current = q.current_parameters()
    assert isinstance(current, QIFParameters) and math.isfinite(current.a)


def test_only_u_rest_learnable_keeps_it_below_u_c():
    q = QIF(QIFParameters(u_rest=-0.1, u_c=0.5), learnable="u_rest")
    assert q.neuron_values()["u_rest"].item() == pytest.approx(-0.1)
    opt = torch.optim.SGD(q.parameters(), lr=10.0)
    for _ in range(20):
        opt.zero_grad()
        (-q.neuron_values()["u_rest"]).backward()
        opt.step()
    assert q.neuron_values()["u_rest"].item() < 0.5
