"""Independent numpy transcriptions of the neuron equations (SCIENCE.md), for tests.

Written from the equations, not from qifsim's code: QIF in the paper's
(v, o, u) form with the reset written as in Eq. 15, LIF in Wu et al.'s form
``u(t+1) = beta u(t) (1 - o(t)) + I(t)`` (reset applied on the next step).
"""

import numpy as np


def qif_numpy(x, a, u_rest, u_c, u_th, form="paper"):
    """x: [T, ...] -> (spikes [T, ...], u after reset [T, ...], v before reset [T, ...])."""
    x = np.asarray(x)
    u = np.full(x.shape[1:], u_rest, dtype=x.dtype) + np.zeros_like(x[0])
    spikes, us, vs = [], [], []
    for t in range(x.shape[0]):
        quad = a * (u - u_rest) * (u - u_c)
        v = (u + quad if form == "euler" else quad) + x[t]
        o = (v - u_th >= 0).astype(x.dtype)  # Θ(0) = 1
        u = v * (1 - o) + u_rest * o
        spikes.append(o)
        us.append(u)
        vs.append(v)
    return np.stack(spikes), np.stack(us), np.stack(vs)


def lif_numpy(x, beta, u_th):
    """Wu et al. 2018: returns (spikes, u (1 - o) i.e. after reset, u before reset)."""
    x = np.asarray(x)
    u = np.zeros_like(x[0])
    o = np.zeros_like(x[0])
    spikes, after, before = [], [], []
    for t in range(x.shape[0]):
        u = beta * u * (1 - o) + x[t]
        o = (u >= u_th).astype(x.dtype)
        spikes.append(o)
        after.append(u * (1 - o))
        before.append(u)
    return np.stack(spikes), np.stack(after), np.stack(before)
