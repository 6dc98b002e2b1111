"""ntk-evolution at a tiny size: every remainder slope passes, and the run is complete (dataset, figure, summary).
The perturbed-theory case is in test_experiments_mutations (the η² term of (∞.4) off by 3 %)."""

import numpy as np
import pytest

from deepeft.experiments import get_experiment, resolve_params, run_experiment

pytestmark = pytest.mark.slow


def test_ntk_evolution_tiny_run(tmp_path):
    over = {"activations": "tanh", "widths": "4", "n_networks": 2, "n_eta": 3, "train_steps": 3}
    res = run_experiment("ntk-evolution", tmp_path, overrides=over, render=False)
    s = res.summary
    for c in s["checks"]:
        print("PASS" if c["pass"] else "FAIL", c["name"], c["simulation"])
    assert s["n_checks_all"] == 10 and s["n_failed_all"] == 0
    assert {c["kind"] for c in s["checks"]} == {"resolution"}  # deterministic slopes: no standard error
    assert s["figures"]
    import xarray as xr

    ds = xr.open_zarr(res.out_dir / "data.zarr", zarr_format=3, consolidated=False).load()
    assert np.all(ds.rel_change_ntk_out.values > 0) and np.all(ds.rel_change_features.values > 0)


def test_ntk_evolution_refuses_kinked_activations():
    from deepeft.errors import DeepEFTInputError

    with pytest.raises(DeepEFTInputError, match="kinks"):
        resolve_params(get_experiment("ntk-evolution"), "quick", overrides={"activations": "relu"})
