"""Checkpoint series (issue 17 item 4): Zarr recorder (resume, refusals), PyTorch hook, DBM analysis over the series.

The DBM estimators are tested on stationary synthetic dynamics with known coefficients (kind: Monte Carlo, z-scores
from the estimators' own standard errors): the time-averaged K_S, T·V_S, T·D_S fitted to an Euler–Maruyama path of
(4.8) (deepeft.sgd.integrate_level_spacing) equal the instantaneous (constant) coefficients that generated it."""

from __future__ import annotations

import numpy as np
import pytest

import deepeft as de
from _optional import require
from conftest import Z_MAX
from deepeft.diagnostics import SpectrumRecorder, fit_spacing_sde, load_series, series_dbm
from deepeft.diagnostics.series_dbm import eigenvalue_drift
from deepeft.diagnostics.spectrum import gram_eigenvalues
from deepeft.sgd import integrate_level_spacing


def _model(rng, scale=1.0, shapes=((12, 6), (8, 12), (3, 8))):
    return [scale * rng.normal(size=s) for s in shapes]


def test_record_resume_and_read_back(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "run.zarr"
    models = [_model(rng) for _ in range(5)]
    with SpectrumRecorder(path, mode="weights") as rec:
        for k in range(3):
            rec.record(10 * k, models[k])
    with SpectrumRecorder(path, mode="weights") as rec:  # resume
        assert rec.count == 3
        with pytest.raises(de.DeepEFTInputError, match="not after the last recorded step 20"):
            rec.record(20, models[3])
        rec.record(30, models[3])
        with pytest.raises(de.DeepEFTInputError, match="differ from the series"):
            rec.record(40, _model(rng, shapes=((12, 6), (9, 12), (3, 9))))
    s = load_series(path)
    np.testing.assert_array_equal(s.steps, [0, 10, 20, 30])
    for l in range(3):
        np.testing.assert_allclose(s.eigenvalues[l][2], gram_eigenvalues(models[2][l]), rtol=1e-12)
    np.testing.assert_allclose(s.weights_at(1)[0][0], models[1][0], rtol=1e-6)
    assert s.model_at(-1).net.n == (6, 12, 8, 3)
    # a spectra-only series in the same folder name is refused (mode mismatch), and so is a new one without resume
    with pytest.raises(de.DeepEFTInputError, match="mode='weights'"):
        SpectrumRecorder(path, mode="spectra")
    with pytest.raises(de.DeepEFTInputError, match="already exists"):
        SpectrumRecorder(path, mode="weights", resume=False)


def test_interrupted_and_corrupt_stores(tmp_path):
    import zarr

    rng = np.random.default_rng(1)
    path = tmp_path / "run.zarr"
    with SpectrumRecorder(path) as rec:
        for k in range(3):
            rec.record(k, _model(rng))
    g = zarr.open_group(str(path), mode="r+")
    g.attrs["pending"] = 3  # an interrupted 4th record: partly written, count not raised
    g["eig_0"][3] = 999.0
    assert load_series(path).steps.size == 3  # never mixed in
    with pytest.warns(de.DeepEFTWarning, match="interrupted"):
        rec = SpectrumRecorder(path)
    rec.record(3, _model(rng))
    s = load_series(path)
    assert s.eigenvalues[0].shape == (4, 6) and s.eigenvalues[0].max() < 999.0
    g["eig_1"].resize((2, 8))  # now corrupt: fewer records than committed
    with pytest.raises(de.DeepEFTInputError, match="corrupt"):
        load_series(path)
    with pytest.raises(de.DeepEFTInputError, match="corrupt"):
        SpectrumRecorder(path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("not zarr")
    with pytest.raises(de.DeepEFTInputError):
        load_series(tmp_path / "other")
    with pytest.raises(de.DeepEFTInputError, match="NaN"):
        SpectrumRecorder(tmp_path / "nan.zarr").record(0, [np.full((3, 3), np.nan)])


def test_torch_optimizer_hook_records_every_k_steps(tmp_path):
    torch = require("torch")
    torch.manual_seed(0)
    nn = torch.nn
    m = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    X, y = torch.randn(32, 6), torch.randn(32, 1)
    rec = SpectrumRecorder(tmp_path / "t.zarr", every=10, background=True)
    rec.record(0, m)
    handle = rec.attach(opt, m)
    for _ in range(20):
        opt.zero_grad()
        ((m(X) - y) ** 2).mean().backward()
        opt.step()
    handle.remove()
    rec.close()
    s = load_series(tmp_path / "t.zarr")
    np.testing.assert_array_equal(s.steps, [0, 10, 20])
    np.testing.assert_allclose(s.eigenvalues[1][-1], gram_eigenvalues(m[2].weight.detach().double().numpy()), rtol=1e-5)
    assert s.activation == "tanh"


def test_time_averaged_spacing_coefficients_equal_the_instantaneous_ones():
    """Stationary (4.8) with constant K_S = −2, V_S = 1, D_S = 0.5 at T = 0.2 (S* = V_S T/|K_S| = 0.1, relaxation time
    ≈ S*²/(V_S T) = 0.05): checkpoints every Δ = 0.001 (fine Euler step 1e-4); the WLS fit of a 10⁴-checkpoint path
    recovers K_S, T V_S, T D_S within Z_MAX standard errors (z printed on failure)."""
    K_S, V_S, D_S, T = -2.0, 1.0, 0.5, 0.2
    t, S = integrate_level_spacing(0.1, K_S, V_S, D_S, T, 10.0, n_steps=100_000, seed=3)
    t, S = t[::10], S[::10, 0]
    fit = fit_spacing_sde(t, S)
    z = [(fit.K_S - K_S) / fit.K_S_stderr, (fit.TV_S - T * V_S) / fit.TV_S_stderr, (fit.TD_S - T * D_S) / fit.TD_S_stderr]
    assert max(map(abs, z)) < Z_MAX, z
    # and the check has power: a generator with twice the restoring drift (K_S = −4) is > Z_MAX SE away
    assert abs(fit.K_S + 4.0) / fit.K_S_stderr > Z_MAX and abs(fit.TD_S - 2 * T * D_S) / fit.TD_S_stderr > Z_MAX


def test_series_dbm_end_to_end_and_eigenvalue_drift(tmp_path):
    """Two eigenvalues x_1 = 1, x_2 = 1 + S(t) recorded through diagonal 2 × 2 weights; series_dbm reproduces the fit on
    S, the recorded instantaneous coefficients average to themselves, and the per-eigenvalue drift/diffusion of a
    Brownian motion with drift μ, variance rate σ² are recovered (z-scores)."""
    K_S, V_S, D_S, T = -2.0, 1.0, 0.5, 0.2
    t, S = integrate_level_spacing(0.1, K_S, V_S, D_S, T, 0.04, n_steps=400, seed=4)
    t, S = t[::10], S[::10, 0]  # 41 records
    path = tmp_path / "dbm.zarr"
    with SpectrumRecorder(path) as rec:
        for k, s in enumerate(S):
            W = np.diag([np.sqrt(2 * 1.0), np.sqrt(2 * (1.0 + s))])  # eigenvalues of WᵀW/2 = (1, 1 + S)
            rec.record(k, [W], coefficients={0: (K_S, V_S, D_S)})
    res = series_dbm(load_series(path), 0, window=1.0, sigma_W2=1.0)
    np.testing.assert_allclose(res.S, S * 2, rtol=1e-10)  # x = λ·n with n = 2: S_x = 2 S
    ref = fit_spacing_sde(np.arange(S.size), 2 * S)
    assert res.spacing.K_S == pytest.approx(ref.K_S) and res.instantaneous["K_S"][0] == pytest.approx(K_S)
    assert res.verdict in ("converging", "diverging") and np.isfinite(res.rhs)
    rng = np.random.default_rng(5)
    mu, sig2, dt = np.array([0.5, -1.0]), np.array([0.2, 0.05]), 0.01
    x = np.cumsum(np.vstack([np.zeros(2), mu * dt + np.sqrt(sig2 * dt) * rng.normal(size=(4000, 2))]), axis=0)
    drift, drift_se, tv, tv_se = eigenvalue_drift(np.arange(4001) * dt, x)
    assert np.all(np.abs(drift - mu) / drift_se < Z_MAX) and np.all(np.abs(tv - sig2) / tv_se < Z_MAX)


def test_cli_on_a_recorded_series(tmp_path):
    """`deepeft diagnose run.zarr`: the last checkpoint's table plus the per-layer DBM table (weights and spectra modes)."""
    from typer.testing import CliRunner

    from deepeft.cli import app

    rng = np.random.default_rng(6)
    base = _model(rng, shapes=((20, 10), (20, 20), (2, 20)))
    for mode in ("weights", "spectra"):
        path = tmp_path / f"{mode}.zarr"
        with SpectrumRecorder(path, mode=mode) as rec:
            for k in range(18):
                rec.record(k, [W + 0.01 * rng.normal(size=W.shape) for W in base], activation="tanh")
        r = CliRunner().invoke(app, ["diagnose", str(path)])
        assert r.exit_code == 0, r.output
        assert "Dyson Brownian motion" in r.stdout and ("critical" in r.stdout or "ordered" in r.stdout or mode == "spectra")
        r = CliRunner().invoke(app, ["diagnose", str(path), "--json"])
        rows = __import__("json").loads(r.stdout)["layers"]
        assert all(row["dbm_verdict"] in ("converging", "diverging") for row in rows[:2])


def test_float32_recording_matches_float64(tmp_path):
    rng = np.random.default_rng(7)
    W = [rng.normal(0, 0.1, (40, 30))]
    for prec in ("float64", "float32"):
        with SpectrumRecorder(tmp_path / f"{prec}.zarr", precision=prec) as rec:
            rec.record(0, W)
    a, b = (load_series(tmp_path / f"{p}.zarr").eigenvalues[0][0] for p in ("float64", "float32"))
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5 * a.max())
    with pytest.raises(de.DeepEFTInputError, match="precision"):
        SpectrumRecorder(tmp_path / "x.zarr", precision="half")


def test_partial_copies_and_damaged_chunks_are_refused(tmp_path, monkeypatch):
    """Issue 17 "corrupt/partial Zarr stores": a committed record whose chunk file is gone reads back as the arrays'
    fill values (step −1, NaN), never as zeros mixed into the series; a damaged chunk file is unreadable. Both are
    refused by the reader and on resuming, with what to do."""
    import shutil

    from deepeft.diagnostics import series

    monkeypatch.setattr(series, "TIME_CHUNK", 4)  # two time chunks with few records
    TIME_CHUNK = 4
    rng = np.random.default_rng(7)
    shapes = ((4, 3), (2, 4))
    src = tmp_path / "run.zarr"
    with SpectrumRecorder(src, mode="weights") as rec:
        for k in range(TIME_CHUNK + 3):  # two time chunks
            rec.record(k, _model(rng, shapes=shapes))
    assert load_series(src).steps.size == TIME_CHUNK + 3
    cases = {"eig": ("eig_0", "c/1/0"), "step": ("step", "c/1"), "W": ("W_1", f"c/{TIME_CHUNK + 1}/0/0")}
    for case, (arr, chunk) in cases.items():
        p = tmp_path / f"{case}.zarr"
        shutil.copytree(src, p)
        assert (p / arr / chunk).exists()
        (p / arr / chunk).unlink()  # a partial copy: one chunk file missing
        if case == "W":
            s = load_series(p)  # spectra intact; the weights of record TIME_CHUNK + 1 are gone
            s.weights_at(0)
            with pytest.raises(de.DeepEFTInputError, match="missing"):
                s.weights_at(TIME_CHUNK + 1)
            continue
        with pytest.raises(de.DeepEFTInputError, match="corrupt"):
            load_series(p)
        with pytest.raises(de.DeepEFTInputError, match="corrupt"):
            SpectrumRecorder(p, mode="weights")
    p = tmp_path / "garbage.zarr"
    shutil.copytree(src, p)
    (p / "eig_1" / "c" / "0" / "0").write_bytes(b"\x00garbage")
    with pytest.raises(de.DeepEFTInputError, match="cannot be read"):
        load_series(p)


def test_background_store_equals_the_synchronous_one(tmp_path):
    """background=True writes the same series as the synchronous recorder, bit for bit (spectra and weights), with
    the torch fast snapshot (a recorded module is read from its Linear layers) equal to the full float64 import."""
    torch = require("torch")
    from deepeft.diagnostics.spectrum import gram_eigenvalues_many

    torch.manual_seed(1)
    nn = torch.nn
    m = nn.Sequential(nn.Linear(7, 12), nn.ReLU(), nn.Sequential(nn.Linear(12, 9, bias=False), nn.ReLU()), nn.Linear(9, 2))
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    X, y = torch.randn(16, 7), torch.randn(16, 2)
    recs = {(mode, bg): SpectrumRecorder(tmp_path / f"{mode}{bg}.zarr", mode=mode, every=3, background=bg)
            for mode in ("spectra", "weights") for bg in (False, True)}
    for rec in recs.values():
        rec.record(0, m)
    handles = [rec.attach(opt, m) for rec in recs.values()]
    last = None
    for _ in range(9):
        opt.zero_grad()
        ((m(X) - y) ** 2).mean().backward()
        opt.step()
        last = de.from_torch(m)  # the full import of the weights just recorded (the 9th step is a record)
    for h in handles:
        h.remove()
    for rec in recs.values():
        rec.close()
    s = {k: load_series(tmp_path / f"{k[0]}{k[1]}.zarr") for k in recs}
    ref = s[("spectra", False)]
    np.testing.assert_array_equal(ref.steps, [0, 3, 6, 9])
    for k, other in s.items():
        np.testing.assert_array_equal(other.steps, ref.steps)
        for l in range(3):
            np.testing.assert_array_equal(other.eigenvalues[l], ref.eigenvalues[l], err_msg=str(k))
    for l, ev in enumerate(gram_eigenvalues_many(last.weights)):
        np.testing.assert_array_equal(ref.eigenvalues[l][-1], ev)  # fast snapshot == full import
    for t in range(4):
        for (W0, b0), (W1, b1) in zip(s[("weights", False)].weights_at(t), s[("weights", True)].weights_at(t)):
            np.testing.assert_array_equal(W0, W1)
            np.testing.assert_array_equal(b0, b1)
    np.testing.assert_array_equal(s[("weights", True)].weights_at(-1)[1][1], 0.0)  # the bias-free layer
    np.testing.assert_allclose(s[("weights", True)].weights_at(-1)[0][0], last.params[0][0], rtol=1e-7)


def test_background_close_waits_and_worker_errors_propagate(tmp_path, monkeypatch):
    """close() waits for the records still on the worker; a worker's error is raised (its own exception, once) by the
    next record() or by close(); nothing after a failed record is written, and the store stays readable."""
    import threading

    import zarr

    from deepeft.diagnostics import series

    rng = np.random.default_rng(3)
    real = series.gram_eigenvalues_many
    gate = threading.Event()

    def slow(Ws, *a, **k):
        gate.wait(120.0)  # (long: a starved CI machine must not open it early)
        return real(Ws, *a, **k)

    monkeypatch.setattr(series, "gram_eigenvalues_many", slow)
    path = tmp_path / "bg.zarr"
    rec = SpectrumRecorder(path, background=True)
    try:
        rec.record(0, _model(rng))
        rec.record(5, _model(rng))
        assert int(zarr.open_group(str(path), mode="r").attrs["count"]) == 0  # both records still on the worker
        threading.Timer(0.2, gate.set).start()
        rec.close()  # waits for both
    finally:
        gate.set()
    assert load_series(path).steps.tolist() == [0, 5]

    calls = {"n": 0}

    def fails_on_second(Ws, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk on fire")
        return real(Ws, *a, **k)

    monkeypatch.setattr(series, "gram_eigenvalues_many", fails_on_second)
    rec = SpectrumRecorder(path, background=True)  # resume
    rec.record(6, _model(rng))
    rec.record(7, _model(rng))  # fails on the worker
    rec._pending[-1].exception()  # (wait for the worker to fail)
    with pytest.raises(RuntimeError, match="disk on fire") as info:
        rec.record(8, _model(rng))
    assert "background record of step 7" in "".join(getattr(info.value, "__notes__", []))
    with pytest.raises(de.DeepEFTInputError, match="stopped after its background record of step 7"):
        rec.record(9, _model(rng))
    rec.close()  # already raised: close does not raise it again
    assert load_series(path).steps.tolist() == [0, 5, 6]
    with pytest.warns(de.DeepEFTWarning, match="interrupted"):  # record 7 was left pending: discarded on resuming
        SpectrumRecorder(path).close()

    # an error nobody saw yet is raised by close(), also through the context manager; NaN weights in the background
    calls["n"] = 0
    with pytest.raises(RuntimeError, match="disk on fire"):
        with SpectrumRecorder(tmp_path / "b.zarr", background=True) as rec:
            rec.record(0, _model(rng))
            rec.record(1, _model(rng))
    monkeypatch.setattr(series, "gram_eigenvalues_many", real)
    rec = SpectrumRecorder(tmp_path / "nan.zarr", background=True)
    rec.record(0, _model(rng))
    bad = _model(rng)
    bad[1][2, 3] = np.nan
    rec.record(1, [np.asarray(W) for W in _model(rng)])
    with pytest.raises(de.DeepEFTInputError, match="NaN"):
        rec.record(2, bad)  # the importer refuses it on the calling thread
    rec.close()
    assert load_series(tmp_path / "nan.zarr").steps.tolist() == [0, 1]


def test_torch_fast_snapshot_still_checks_shapes_and_values(tmp_path):
    torch = require("torch")
    nn = torch.nn
    m = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    with SpectrumRecorder(tmp_path / "t.zarr", background=True) as rec:
        rec.record(0, m)
        m[2] = nn.Linear(8, 4)  # a replaced layer of another shape
        with pytest.raises(de.DeepEFTInputError, match="differ from the series"):
            rec.record(1, m)
        m[2] = nn.Linear(8, 3)
        rec.record(2, m)  # a replaced layer of the same shape: its weights are recorded
        expected = gram_eigenvalues(m[2].weight.detach().double().numpy())
        with torch.no_grad():
            m[0].weight[0, 0] = float("nan")
        rec.record(3, m)  # refused on the worker
        with pytest.raises(de.DeepEFTInputError, match="NaN"):
            rec.close()
    s = load_series(tmp_path / "t.zarr")
    assert s.steps.tolist() == [0, 2]
    np.testing.assert_array_equal(s.eigenvalues[1][-1], expected)
