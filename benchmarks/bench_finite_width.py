"""Per-network finite-width trained-output prediction (PDLT (∞.141), issue 14), through ``de.trained_output``.

One tanh MLP (n_0 = 4, three hidden layers of width 256, n_L = 1: depth L = 4), N_A = 16 training and
N_B = 64 test inputs, full-batch GD at η = 1/λ_max(Ĥ_train): the closed-form prediction of the trained test
outputs (target ≤ 5 s warm, compilation excluded; the first call is reported too), next to the time of
actually training that network to a training residual < 1e-8 (jitted loop, float64) and the prediction errors
of the finite-width and the frozen-NTK forms against the trained network. Machine load (2 shared cores) makes
the timings indicative; the 1-min load average is recorded.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

import deepeft as de
from _timing import stopwatch, timed  # sibling module (the runner puts benchmarks/ on sys.path)
from deepeft._x64 import x64
from deepeft.losses import mse_loss
from deepeft.simulate.forward import forward_preactivations
from deepeft.simulate.training import gd_update

TARGET_SECONDS = 5.0


def _train(net, params, X, Y, eta, chunk=2000, max_chunks=100, tol=1e-8):
    with x64():
        p = tuple((jnp.asarray(W, jnp.float64), jnp.asarray(b, jnp.float64)) for W, b in params)
        Xa, Ya = jnp.asarray(X, jnp.float64), jnp.asarray(Y, jnp.float64)
        step = jax.jit(lambda q: jax.lax.fori_loop(0, chunk, lambda i, r: gd_update(net, mse_loss, r, Xa, Ya, eta), q))
        out = jax.jit(lambda q, x: forward_preactivations(net, q, x)[-1])
        steps = 0
        with stopwatch() as sw:
            for _ in range(max_chunks):
                p = jax.block_until_ready(step(p))
                steps += chunk
                if float(jnp.max(jnp.abs(out(p, Xa) - Ya))) < tol:
                    break
        return p, sw.wall, steps, out


def run(quick: bool = False) -> list[dict]:
    width, NA, NB, L = (64, 4, 8, 3) if quick else (256, 16, 64, 4)
    net = de.MLP(4, [width] * (L - 1), 1, "tanh", C_b=0.0, C_W=1.0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((NA + NB, 4))
    Y = np.sin(X[:NA, :1] + X[:NA, 1:2])
    params = de.sample_params(net, seed=0, dtype="float64")
    ode = {}

    def predict_ode():
        ode["out"] = de.trained_output(params, net, X[:NA], Y, X[NA:], algorithm="ode")

    cold = timed(predict_ode, 1).cold  # first call: compiles (the programs are shared by all three algorithms)
    eta = 0.5 * ode["out"].max_stable_eta
    res = {}

    def predict():
        res["out"] = de.trained_output(params, net, X[:NA], Y, X[NA:], eta=eta)

    warm, _, cpu = timed(predict, 3)
    pred = res["out"]
    pT, t_train, steps, out = _train(net, params, X[:NA], Y, eta)
    with x64():
        zB = np.asarray(out(pT, jnp.asarray(X[NA:])))
    err_fw = float(np.max(np.abs(zB - pred.output)))
    err_ntk = float(np.max(np.abs(zB - pred.ntk)))
    return [
        {
            "name": f"trained_output_width{width}_L{L}_NA{NA}_NB{NB}",
            "seconds": warm,
            "target": TARGET_SECONDS,
            "ratio": warm / TARGET_SECONDS,
            "passed": bool(warm <= TARGET_SECONDS),
            "cold_seconds": cold,
            "cpu_seconds": cpu,
            "train_seconds": t_train,
            "train_steps": steps,
            "err_finite_width": err_fw,
            "err_frozen_ntk": err_ntk,
            "load_avg_1min": os.getloadavg()[0],
            "train_ratio": warm / t_train,
            "notes": "warm: median of 3 (wall; cpu_seconds: process CPU time, the shared machine's load aside); "
            "cold: first call incl. compilation; train_seconds: jitted GD to residual < 1e-8 at the same η",
        }
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
