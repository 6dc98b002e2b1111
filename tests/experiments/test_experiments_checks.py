"""Check kinds and the headline: only predictions count in the headline pass rate; every kind is listed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepeft.experiments import _sgd_common as sc
from deepeft.experiments import get_experiment
from deepeft.experiments.checks import KINDS, Check, close_check, greater_check, headline, headline_text, ratio_check, zcheck
from deepeft.experiments.criticality_curves import CriticalityCurves


def test_kind_roundtrip_and_old_stores_default_to_prediction():
    c = zcheck("x", 1.0, 1.1, 0.1, kind="finding")
    d = c.to_json()
    assert d["kind"] == "finding" and Check.from_json(d) == c
    old = {k: v for k, v in d.items() if k != "kind"}
    assert Check.from_json(old).kind == "prediction"
    with pytest.raises(ValueError, match="kind must be one of"):
        Check("x", 0.0, 0.0, None, None, True, "r", "guess")


def test_headline_counts_predictions_only():
    checks = [
        zcheck("p ok", 1.0, 1.0, 0.1),
        zcheck("p bad", 1.0, 2.0, 0.1),
        close_check("reg ok", 1.0, 1.0, kind="regression"),
        Check("res bad", 1.0, 3.0, 0.1, None, False, "in [0.5, 2]", "resolution"),
        zcheck("finding ok", 0.5, 0.5, 0.1, kind="finding"),
    ]
    h = headline(checks)
    assert (h["n_checks"], h["n_failed"]) == (2, 1)
    assert (h["n_checks_all"], h["n_failed_all"]) == (5, 2)
    assert h["kinds"]["resolution"] == {"n_checks": 1, "n_failed": 1}
    assert set(h["kinds"]) == set(KINDS) and not h["passed"]
    assert headline([c.to_json() for c in checks]) == h  # JSON dicts work too
    text = headline_text(h)
    assert text.startswith("1/2 predictions pass") and "resolution 0/1" in text and "regression 1/1" in text
    assert headline([])["passed"] is False
    assert headline(checks[:1] + checks[2:3])["passed"] is True


def test_sgd_helpers_are_labelled():
    T = np.array([0.25, 0.5, 1.0, 2.0, 4.0])
    loss = np.exp(np.tile(np.array([0.0, 0.0, 1.0, 2.0, 2.0]), (8, 1)) + 0.01 * np.arange(8)[:, None])
    assert sc.transition_check("t", T, loss, 0.25, 4.0).kind == "resolution"
    assert sc.factor_check("f", lambda idx: 1.0, 8, 2.0, "r").kind == "resolution"
    eig = np.abs(np.random.default_rng(0).standard_normal((20, 2, 16))) + 0.1
    kinds = {c.name: c.kind for c in sc.mp_checks("", eig, [2.0**-8, 8.0], 16, 32, edge_rtol=0.2, max_z=5.0)}
    assert {k for n, k in kinds.items() if "vs paper" in n} == {"regression"}
    assert {k for n, k in kinds.items() if "measured largest" in n} == {"resolution"}
    assert {k for n, k in kinds.items() if "moment" in n or "mean eigenvalue" in n} == {"prediction"}


def test_ratio_and_greater_checks_use_the_stderr():
    """Both one-sided rules need significance: a ratio above the threshold within its noise fails."""
    assert ratio_check("r", 1000.0, 10.0, 1.0, 0.01, 100.0, "ratio").passed
    noisy = ratio_check("r", 150.0, 140.0, 1.0, 0.01, 100.0, "ratio")  # 1.5 × threshold but ~100 % error
    assert not noisy.passed and "here z = 0.36" in noisy.rule
    # thresholds are rules, not theory values; this z is not (measurement − theory)/stderr: both columns empty
    assert noisy.theory is None and noisy.z is None
    g = greater_check("g", 1.0, 0.1, 0.0, 0.1, what="d")
    assert g.theory is None and g.z is None and "here z = 7.07" in g.rule
    assert greater_check("g", 1.0, 0.1, 0.0, 0.1, what="d").passed
    assert not greater_check("g", 0.2, 0.1, 0.0, 0.1, what="d").passed
    assert ratio_check("r", 1000.0, 10.0, 1.0, 0.01, 100.0, "ratio").kind == "finding"
    # a denominator consistent with zero: judged on num − threshold·den (its ratio error is meaningless)
    zero_den = ratio_check("r", 100.0, 5.0, 0.1, 1.0, 10.0, "ratio")
    assert zero_den.passed and "unresolved" in zero_den.rule
    assert not ratio_check("r", 10.0, 5.0, 0.1, 1.0, 10.0, "ratio").passed


def test_criticality_book_constants_are_regressions(tmp_path):
    from deepeft.experiments import run_experiment

    exp = get_experiment("criticality")
    assert isinstance(exp, CriticalityCurves)
    s = run_experiment("criticality", tmp_path, overrides={"n_networks": 64, "depth": 3, "width": 8,
                                                            "cw_ratios": [1.0]}, render=False).summary
    kinds = {c["name"]: c["kind"] for c in s["checks"]}
    assert all(k == "regression" for n, k in kinds.items() if n.startswith("book "))
    assert s["n_checks"] == sum(k == "prediction" for k in kinds.values())
    assert s["kinds"]["regression"]["n_checks"] > 0
    stored = json.loads((tmp_path / "summary.json").read_text())
    assert all("kind" in c for c in stored["checks"])


def test_report_shows_kinds_and_the_prediction_headline(tmp_path):
    from deepeft.experiments import run_experiment

    run_experiment("gaussian-moments", tmp_path, overrides={"activations": ["relu"], "variances": [1.0],
                                                           "n_samples": 2000})
    html = (tmp_path / "report.html").read_text()
    assert "<th>kind</th>" in html and "<td>prediction</td>" in html
    assert "3/3 predictions pass" in html
