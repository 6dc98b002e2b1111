"""de.diagnose and `deepeft diagnose` (issue 17 item 3): per-layer table, criticality verdicts, CLI outputs.

Verdicts are checked against networks whose phase is known from the book: ReLU at C_W = 2 is critical (5.67), at
C_W = 1 ordered and at C_W = 4 chaotic (χ_⊥ = C_W/2, (5.62)); PyTorch's default Linear init (kaiming_uniform with
a = √5) has Var(W) = 1/(3 n_in), i.e. C_W = 1/3: ordered for a deep ReLU net (a finding about a common default)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import deepeft as de
from _optional import require
from conftest import Z_MAX
from deepeft.cli import app


def _arrays(C_W, depth=12, width=96, act="relu", seed=0):
    """W^{(ℓ)} ~ N(0, C_W/n_{ℓ−1}) (2.20) drawn with NumPy (cheaper here than compiling de.sample_params per net)."""
    rng = np.random.default_rng(seed)
    n = [48] + [width] * (depth - 1) + [10]
    return de.from_arrays([rng.normal(0, np.sqrt(C_W / a), (b, a)) for a, b in zip(n[:-1], n[1:])], None, act)


def test_relu_verdicts():
    for C_W, verdict in ((2.0, "critical"), (1.0, "ordered"), (4.0, "chaotic")):
        ds = de.diagnose(_arrays(C_W))
        assert list(ds.verdict.values) == ["input"] + [verdict] * 11
        np.testing.assert_allclose(ds.chi_perp.values[1:], ds.C_W.values[1:] / 2, rtol=1e-9)  # χ_⊥ = A₂ C_W (5.62)
        assert ds.attrs["C_W_critical"] == 2.0 and ds.attrs["universality_class"] == "scale-invariant"
        # empirical C_W within its sampling error of the initialisation value (SE C_W√(2/(n_in n_out)))
        se = C_W * np.sqrt(2.0 / (ds.n_in.values * ds.n_out.values))
        assert np.all(np.abs(ds.C_W.values - C_W) / se < Z_MAX)
        assert ds.eigenvalues.shape == (12, 96) and np.isnan(ds.eigenvalues.values[-1, 10:]).all()
        assert (ds.attrs["regime"] == "critical") == (verdict == "critical")


def test_torch_default_init_is_ordered_for_deep_relu():
    torch = require("torch")
    torch.manual_seed(0)
    nn = torch.nn
    layers = [nn.Linear(64, 128), nn.ReLU()]
    for _ in range(10):
        layers += [nn.Linear(128, 128), nn.ReLU()]
    m = nn.Sequential(*layers, nn.Linear(128, 10))
    ds = de.diagnose(m)
    C_W = ds.C_W.values
    se = (1 / 3) * np.sqrt(2.0 / (ds.n_in.values * ds.n_out.values))  # uniform entries: Var of the sample variance differs
    assert np.all(np.abs(C_W - 1 / 3) < 10 * se)  # ≈ 1/3 (kaiming_uniform(a=√5))
    assert set(ds.verdict.values[1:]) == {"ordered"} and "ordered" in ds.attrs["regime"]


def test_cli_table_json_html(tmp_path):
    torch = require("torch")
    torch.manual_seed(1)
    nn = torch.nn
    m = nn.Sequential(nn.Linear(20, 40), nn.Tanh(), nn.Linear(40, 40), nn.Tanh(), nn.Linear(40, 3))
    torch.save(m.state_dict(), tmp_path / "m.pt")
    torch.save({"epoch": 3, "model_state_dict": m.state_dict()}, tmp_path / "ckpt.pt")
    runner = CliRunner()
    r = runner.invoke(app, ["diagnose", str(tmp_path / "m.pt"), "--activation", "tanh", "--html", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    assert "verdict" in r.stdout and "network regime" in r.stdout
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "<table>" in page
    r = runner.invoke(app, ["diagnose", str(tmp_path / "ckpt.pt"), "--activation", "tanh", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    ref = de.diagnose(m)
    assert [row["C_W"] for row in out["layers"]] == pytest.approx(ref.C_W.values, rel=1e-12)
    assert out["attrs"]["activation"] == "tanh" and len(out["layers"]) == 3
    # bad input: a state dict without --activation, a pickled module without --trust-pickle, an unknown format
    assert runner.invoke(app, ["diagnose", str(tmp_path / "m.pt")]).exit_code == 2
    torch.save(m, tmp_path / "full.pt")
    r = runner.invoke(app, ["diagnose", str(tmp_path / "full.pt")])
    assert r.exit_code == 2 and "--trust-pickle" in r.output
    assert runner.invoke(app, ["diagnose", str(tmp_path / "full.pt"), "--trust-pickle"]).exit_code == 0
    (tmp_path / "w.txt").write_text("x")
    r = runner.invoke(app, ["diagnose", str(tmp_path / "w.txt")])
    assert r.exit_code == 2 and "unknown model format" in r.output


def test_diagnose_needs_an_activation_for_bare_weights():
    with pytest.raises(de.DeepEFTInputError, match="activation="):
        de.diagnose([np.eye(4), np.ones((2, 4))])
    with pytest.raises(de.DeepEFTInputError, match="activation="):
        de.diagnose({"Dense_0": {"kernel": np.eye(4), "bias": np.zeros(4)}})


def test_custom_activation_gets_its_critical_point_or_says_why_not(tmp_path):
    """A custom callable: the criticality attributes come from the Gaussian engine (de.criticality), here for
    σ(z) = tanh z + z/10 (K* = 0 class, C_W* = 1/σ′(0)² = 1/1.21, (5.89)); a series stores the activation by name only,
    so its diagnosis says so (spectra mode) or asks for the callable (weights mode) instead of dropping them."""
    import jax.numpy as jnp

    from deepeft.diagnostics import SpectrumRecorder, load_series
    from deepeft.diagnostics.diagnose import diagnose_series
    from deepeft.diagnostics.render import diagnosis_table

    def act(z):
        return jnp.tanh(z) + 0.1 * z

    im = _arrays(1.0, depth=3, width=16, act=act)
    ds = de.diagnose(im)
    assert ds.attrs["universality_class"] == "K*=0"
    assert ds.attrs["C_W_critical"] == pytest.approx(1 / 1.21, rel=1e-9) and ds.attrs["C_b_critical"] == 0.0
    assert np.isfinite(ds.C_W_ratio.values).all() and np.isfinite(ds.chi_perp.values[1:]).all()
    for mode in ("spectra", "weights"):
        path = tmp_path / f"{mode}.zarr"
        with SpectrumRecorder(path, mode=mode) as rec:
            for k in range(3):
                rec.record(k, im)
        s = load_series(path)
        if mode == "spectra":
            d = diagnose_series(s)
            assert "pass activation=<the callable>" in d.attrs["criticality_note"]
            assert "pass activation=<the callable>" in diagnosis_table(d)
        else:
            with pytest.raises(de.DeepEFTInputError, match="pass activation=<the callable>"):
                diagnose_series(s)
            assert diagnose_series(s, activation=act).attrs["C_W_critical"] == pytest.approx(1 / 1.21, rel=1e-9)
