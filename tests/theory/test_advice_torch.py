"""``de.advise`` on a PyTorch ``nn.Sequential`` (issue 15 item 4): widths, activation and the empirical C_W =
n_in·Var(W), C_b = Var(b) read through ``de.from_torch``; critical vs PyTorch-default initialization; unsupported
layers named. Needs torch (optional extra): skipped without it unless DEEPEFT_REQUIRE_TORCH=1."""

from __future__ import annotations

import math

import numpy as np
import pytest

import deepeft as de
from _optional import require

pytestmark = pytest.mark.filterwarnings("ignore::deepeft.DeepEFTWarning")


def _torch():
    return require("torch")


def _mlp(torch, act, n=128, L=5, C_W=None, C_b=0.0, seed=0):
    """Linear + act layers; with C_W: W ~ N(0, C_W/n_in), b ~ N(0, C_b) (else PyTorch's default init)."""
    torch.manual_seed(seed)
    dims = [6] + [n] * (L - 1) + [1]
    layers = []
    for i in range(L):
        lin = torch.nn.Linear(dims[i], dims[i + 1])
        if C_W is not None:
            torch.nn.init.normal_(lin.weight, std=math.sqrt(C_W / dims[i]))
            torch.nn.init.normal_(lin.bias, std=math.sqrt(C_b)) if C_b > 0 else torch.nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i < L - 1:
            layers.append(act())
    return torch.nn.Sequential(*layers)


def test_torch_sequential_critical_and_default_init():
    torch = _torch()
    crit = _mlp(torch, torch.nn.Tanh, C_W=1.0)
    a = de.advise(crit)
    assert a.source.startswith("torch") and a.net.activation.name == "tanh"
    assert a.net.n == (6, 128, 128, 128, 128, 1)
    W = crit[2].weight.detach().double().numpy()
    assert a.net.C_W[1] == pytest.approx(128 * W.var(), rel=1e-6)  # empirical C_W = n_in·Var(W)
    assert a.at_critical_point and a.verdict == "critical"  # within 3 sampling standard errors
    # the same numbers as advising the imported spec by hand (exact tolerance there: not "at" the point)
    b = de.advise(de.MLP(6, [128] * 4, 1, "tanh", C_b=list(a.net.C_b), C_W=list(a.net.C_W)))
    assert b.chi_parallel == a.chi_parallel and not b.at_critical_point

    default = _mlp(torch, torch.nn.ReLU)  # kaiming_uniform(a=√5): Var(W) = 1/(3 n_in) → C_W ≈ 1/3
    d = de.advise(default)
    assert not d.at_critical_point
    assert np.allclose(d.net.C_W[1:-1], 1 / 3, rtol=0.05)
    msg = next(w.message for w in d.warnings if w.topic == "criticality")
    assert "not critical for relu; use C_b = 0, C_W = 2" in msg
    assert any("torch.nn.init.normal_(m.weight, std=(2 / m.in_features) ** 0.5)" in w.message for w in d.warnings)


def test_torch_unsupported_layer_is_named():
    torch = _torch()
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    with pytest.raises(de.DeepEFTInputError, match="BatchNorm1d"):
        de.advise(net)
