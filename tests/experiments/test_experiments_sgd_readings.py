"""sgd-students (tanh/ReLU/GELU phase diagrams) and sgd-dbm-drift (three readings of (4.15)) at tiny size: the
datasets assemble, the checks exist, the exact ReLU homogeneity prediction holds for ReLU and fails for tanh,
and the phase classification and readings behave as documented."""

from __future__ import annotations

import numpy as np
import pytest

from _expt import load_dataset
from deepeft.errors import DeepEFTInputError
from deepeft.experiments import resolve_params, run_experiment
from deepeft.experiments.sgd_students import PHASE_NAMES, affine_gradient_check, classify

STUDENTS = {"activations": ["tanh", "relu"], "temperatures": [2.0**-5, 64.0], "inv_sigma_W": [2.0**-8, 0.25, 2.0, 8.0],
            "members": 4, "members_per_task": 4, "steps": 300, "n_records": 3}
DRIFT = {"temperatures": [2.0**-5, 8.0], "inv_sigma_W": [8.0], "members": 4, "steps": 200, "n_records": 3,
         "checkpoints": 2, "spacing": 10, "quench_steps": 3}


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    path = tmp_path_factory.mktemp("students")
    return run_experiment("sgd-students", path, overrides=STUDENTS, render=False), path


@pytest.fixture(scope="module")
def drift(tmp_path_factory):
    path = tmp_path_factory.mktemp("drift")
    return run_experiment("sgd-dbm-drift", path, overrides=DRIFT, render=False), path


def test_students_dataset_and_homogeneity(students):
    res, path = students
    ds = load_dataset(path)
    assert ds.test_loss.dims == ("activation", "member", "T", "inv_sigma_W")
    assert list(ds.activation.values) == ["tanh", "relu"]
    checks = {c["name"]: c for c in res.summary["checks"]}
    homo = [c for n, c in checks.items() if n.startswith("relu: E‖∇ℒ‖² at init is quadratic")]
    assert len(homo) == 1 and homo[0]["pass"] and homo[0]["kind"] == "prediction"
    # the same law fails for tanh (bounded, not homogeneous): the check can fail
    tanh = affine_gradient_check("tanh: ", STUDENTS["inv_sigma_W"], ds.grad_norm_init.sel(activation="tanh").values[:, 0],
                                 rtol=1e-3)
    assert not tanh.passed
    # ReLU at T = 64: most students die within 300 steps (every feature zero, so ℒ = ℒ₀ exactly)
    relu_hot = ds.sel(activation="relu").isel(T=-1)
    dead = relu_hot.alive.values == 0
    assert dead.mean() >= 0.5
    np.testing.assert_allclose(relu_hot.rel_loss.values[dead], 1.0, rtol=1e-5)


def test_classify_phases():
    rel = np.array([0.01, 0.5, 0.5, 1.0, np.inf, 2e3])
    mem = np.array([0.9, 0.9, 0.1, np.nan, np.nan, 0.0])
    alive = np.array([1.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    code = classify(rel, mem, alive, ordered_level=0.05, diverged_level=1e3, memory_level=0.5)
    assert [PHASE_NAMES[c] for c in code] == ["ordered", "jamming", "paramagnetic", "dead", "diverged", "diverged"]


def test_drift_dataset_and_readings(drift):
    res, path = drift
    ds = load_dataset(path)
    assert ds.K_S.dims == ("drift", "basis", "t_f", "member", "T", "inv_sigma_W")
    assert list(ds.drift.values) == ["instantaneous", "time_averaged", "quenched"]
    assert list(ds.t_f.values) == [200, 400]
    assert np.all((ds.fraction >= 0) & (ds.fraction <= 1))
    names = [c["name"] for c in res.summary["checks"]]
    for key in ("instantaneous drift has a random sign", "time_averaged drift has a random sign",
                "quenched drift is positive", "median |K_S| instantaneous / quenched", "predicts the change of S",
                "S grows with longer training", "drops from the ordered corner", "MP second moment"):
        assert any(key in n for n in names), key
    # the DBM coefficients against central differences of the spectrum: predictions, and they hold
    fd = [c for c in res.summary["checks"] if "(B.9) in the eigenbasis of X" in c["name"]]
    assert len(fd) == 2 and all(c["pass"] and c["kind"] == "prediction" for c in fd), fd
    assert ds.K_S_fd.dims == ("member", "corner") and list(ds.corner.values) == ["ordered", "hot"]
    # removing the SGD noise shrinks the drift in the ordered corner
    K = ds.K_S.isel(basis=0, T=0, inv_sigma_W=-1)
    assert np.median(np.abs(K.sel(drift="quenched").values)) < np.median(np.abs(K.sel(drift="instantaneous").values))


def test_bad_parameters():
    with pytest.raises(DeepEFTInputError, match="activations"):
        resolve_params("sgd-students", "quick", overrides={"activations": ["tanh", "relu6x"]})
    with pytest.raises(DeepEFTInputError, match="bases"):
        resolve_params("sgd-dbm-drift", "quick", overrides={"bases": ["Y"]})


def test_relu_homogeneity_needs_four_sigma_points():
    """The ReLU homogeneity prediction fixes a quadratic with three σ_W and tests it at a fourth: fewer values with
    ReLU listed is an input error at parameter resolution (it used to drop the check silently)."""
    with pytest.raises(DeepEFTInputError, match="at least 4 values of inv_sigma_W, got 3.*drop 'relu'"):
        resolve_params("sgd-students", "quick", overrides={"inv_sigma_W": [0.25, 2.0, 8.0]})
    p = resolve_params("sgd-students", "quick", overrides={"activations": ["tanh", "gelu"], "inv_sigma_W": [0.25, 8.0]})
    assert p.inv_sigma_W == (0.25, 8.0)  # no ReLU: no homogeneity check, two values suffice
    with pytest.raises(DeepEFTInputError, match="at least 4 values of inv_sigma_W, got 3"):
        affine_gradient_check("relu: ", [0.25, 2.0, 8.0], np.ones((2, 3)), rtol=1e-3)
