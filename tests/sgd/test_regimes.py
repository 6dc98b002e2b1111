"""sgd_regime (the paper's three regimes from a run's loss ratio and feature memory) and feature_memory."""

from __future__ import annotations

import numpy as np
import pytest

import deepeft as de
from deepeft.sgd import LEARNED_LOSS_RATIO, MEMORY_THRESHOLD, feature_memory, sgd_regime


def test_rule_and_boundaries():
    assert sgd_regime(1.0, LEARNED_LOSS_RATIO, 0.99).regime == "ordered"  # learned wins over memory
    assert sgd_regime(1.0, 1.01 * LEARNED_LOSS_RATIO, MEMORY_THRESHOLD).regime == "jamming"
    assert sgd_regime(1.0, 1.01 * LEARNED_LOSS_RATIO, 0.99 * MEMORY_THRESHOLD).regime == "paramagnetic"
    assert sgd_regime(2.0, 3.0, -0.2).regime == "paramagnetic"  # loss grew, memory anticorrelated
    v = sgd_regime(0.4, 0.002, 0.3)
    assert v.loss_ratio == pytest.approx(0.005) and v.memory == 0.3 and "0.005" in v.reason
    assert sgd_regime(1.0, 0.05, 0.5, learned=0.1).regime == "ordered"
    assert sgd_regime(1.0, 0.5, 0.5, memory_threshold=0.4).regime == "jamming"


@pytest.mark.parametrize("args, msg", [
    ((0.0, 0.0, 0.5), "untrained"),
    ((-1.0, 0.1, 0.5), "loss_init"),
    ((1.0, float("nan"), 0.5), "loss_final"),
    ((1.0, 0.1, 1.5), "correlation coefficient"),
    ((1.0, 0.1, "high"), "memory"),
])
def test_bad_input(args, msg):
    with pytest.raises(de.DeepEFTInputError, match=msg):
        sgd_regime(*args)


def test_feature_memory():
    rng = np.random.default_rng(0)
    z0, z1 = rng.normal(size=(2, 4000, 50))
    assert feature_memory(np.tanh(z0), np.tanh(z0)) == pytest.approx(1.0)
    assert feature_memory(-z0, z0) == pytest.approx(-1.0)
    # independent ReLU features: uncentred correlation E[relu]²/E[relu²] = 1/π, centred 0 (SE ≈ 1/√(N n) ≈ 0.0022)
    r0, r1 = np.maximum(z0, 0), np.maximum(z1, 0)
    assert abs(feature_memory(r1, r0) - 1 / np.pi) < 0.02
    assert abs(feature_memory(r1, r0, center=True)) < 5 * 0.0022
    with pytest.raises(de.DeepEFTInputError, match="one shape"):
        feature_memory(r0, r1[:, :3])
    with pytest.raises(de.DeepEFTInputError, match="zero"):
        feature_memory(np.zeros((3, 2)), np.ones((3, 2)))
    with pytest.raises(de.DeepEFTInputError, match="NaN"):
        feature_memory(np.full((3, 2), np.nan), np.ones((3, 2)))
