"""finite-width-bayes at reduced size: a complete run whose predictions pass (the quick preset is judged by
`make run`; its perturbed-theory case is in test_experiments_mutations.py)."""

from __future__ import annotations

import pytest

from _expt import assert_complete_run, quick_or_run
from deepeft.errors import DeepEFTInputError
from deepeft.experiments import resolve_params


@pytest.mark.slow
def test_small_run_is_complete_and_predictions_pass(tmp_path):
    """At 8192 networks; in CI (after `make run`) the quick-preset run that `make run` made with this code."""
    summary, path = quick_or_run("finite-width-bayes", tmp_path / "fwb", {"n_networks": 8192})
    assert_complete_run(summary, path)
    checks = summary["checks"]
    assert {c["kind"] for c in checks} == {"prediction", "resolution", "finding"}
    bad = [c["name"] for c in checks if c["kind"] == "prediction" and not c["pass"]]
    assert not bad, bad


def test_bad_parameters():
    with pytest.raises(DeepEFTInputError, match="three distinct"):
        resolve_params("finite-width-bayes", overrides={"widths": "64,128"})
    with pytest.raises(DeepEFTInputError, match="n_out"):
        resolve_params("finite-width-bayes", overrides={"n_train": 3, "n_out": 2})
