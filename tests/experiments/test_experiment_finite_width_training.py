"""finite-width-training at reduced size: a complete run whose predictions pass (the quick preset is judged by
`make run`; its perturbed-theory case is in test_experiments_mutations.py), the slope fit on exact power laws, and
bad parameters."""

from __future__ import annotations

import numpy as np
import pytest

from _expt import assert_complete_run, quick_or_run
from deepeft.errors import DeepEFTInputError
from deepeft.experiments import resolve_params
from deepeft.experiments.finite_width_training import log_slope


@pytest.mark.slow
def test_small_run_is_complete_and_predictions_pass(tmp_path):
    """Three widths, eight networks each (three compilations of the closed form's programs: ~20 s on one core); in CI
    (after `make run`) the quick-preset run (same activation and depth, four widths) that `make run` made with this code."""
    summary, path = quick_or_run("finite-width-training", tmp_path / "fwt",
                                 {"widths": "64,128,256", "n_networks": 8, "n_test": 4})
    assert_complete_run(summary, path)
    checks = summary["checks"]
    assert {c["kind"] for c in checks} == {"prediction", "finding"}
    assert sum(c["kind"] == "prediction" for c in checks) == 3
    bad = [c["name"] for c in checks if not c["pass"]]
    assert not bad, bad


def test_log_slope_recovers_a_power_law_with_the_spread_as_error():
    n = np.array([64.0, 128.0, 256.0])
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((3, 40))
    centred = noise - noise.mean(axis=1, keepdims=True)  # per-width means exactly on the line
    b, sb, m, se = log_slope(n, -2.0 * np.log(n)[:, None] + 1.0 + 0.1 * centred)
    assert b == pytest.approx(-2.0, abs=1e-12) and np.allclose(m, 1.0 - 2.0 * np.log(n))
    assert np.allclose(se, 0.1 * centred.std(axis=1, ddof=1) / np.sqrt(40))
    b, sb, m, se = log_slope(n, -1.0 * np.log(n)[:, None] + 0.3 * noise)
    assert abs(b + 1.0) < 4 * sb and 0.03 < sb < 0.1  # 0.3/√40 per width, Σ(ln n − mean)² = 2 ln²2: sb ≈ 0.048


def test_bad_parameters():
    with pytest.raises(DeepEFTInputError, match="kinks"):
        resolve_params("finite-width-training", overrides={"activations": "relu"})
    with pytest.raises(DeepEFTInputError, match="three distinct"):
        resolve_params("finite-width-training", overrides={"widths": "64,128"})
    with pytest.raises(DeepEFTInputError, match="eta_frac"):
        resolve_params("finite-width-training", overrides={"eta_frac": 1.0})
