"""diagnose-trained-mlp: weight spectra of a small MLP trained on scikit-learn's digits, recorded as a checkpoint series.

A ReLU MLP 64 → n → n → 10 at the critical initialisation C_W = 2, C_b = 0 (book (5.67); W ~ N(0, 2/n_in), b = 0)
is trained by minibatch SGD on the cross-entropy of the digits data (scikit-learn's 8 × 8 images, standardised;
a fixed train/test split). :class:`deepeft.diagnostics.SpectrumRecorder` stores every layer's spectrum every
``record_every`` steps (the PyTorch optimizer hook when torch is installed, else the same SGD written in JAX and
:func:`deepeft.diagnostics.record_jax`). Checks:

* prediction — at initialisation each layer's fitted Marchenko–Pastur variance ŝ² equals C_W/n_in (2.20) within its
  standard error ŝ²√(2/(n m)) (exact for Gaussian W), and the fitted aspect ratio q̂ equals min/max of the shape
  within the scatter of q̂ over Gaussian matrices of the same shape (parametric bootstrap, ``bootstrap`` draws);
* finding — no Tracy–Widom outlier at initialisation (the null's false-alarm rate is 1 % per layer);
* finding — outliers appear with training in layers 2 and 3 (structure learned beyond the MP bulk; at the quick
  size layer 2 grows 10 outliers, one per class, layer 3 two; the input layer's spectrum stays MP), and the
  trained network classifies the held-out digits (accuracy ≥ ``min_accuracy``). At ε = 0.05–0.2 no outlier
  forms within 3000 steps (lazy training at this width): the finding depends on the learning rate.

* finding — the run's regime (:func:`deepeft.sgd.sgd_regime`: ordered / paramagnetic / jamming from the training
  loss ratio loss(t_f)/loss(0) and the memory of the last hidden features) equals the regime deepeft's own phase
  diagram gives at the same T = ε/|B| and σ_W = √C_W: the paper's 3-32-16-1 tanh teacher–student ensemble
  (``phase_members`` members, |B| = ``phase_batch_size``, ε = T|B|, trained for the same continuous time
  steps·ε), classified by the same function; and, as its calibration, that function names the paper's three
  corners (Fig. 6) correctly. Findings, not predictions: the thresholds are conventions and the mapping of a ReLU
  cross-entropy MLP whose layers all train onto the tanh regression diagram with one trained layer goes through
  T and σ_W only (docs/diagnose.md).

The data are scikit-learn's digits; without scikit-learn the run stops with a message (``data="synthetic"`` asks
for a deterministic 10-class Gaussian mixture in 64 dimensions instead; attrs say which was used).

References:
  Martin & Mahoney, Implicit self-regularization in deep neural networks (2021) arXiv:1810.01075
  Park, Lucini & Aarts (2025) arXiv:2509.01349 (Marchenko–Pastur (4.2), DBM §4)
  (docs/diagnose.md)
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..diagnostics.series import SpectrumRecorder, load_series, record_jax
from ..diagnostics.spectrum import gram_eigenvalues, spectrum_of_eigenvalues
from ..errors import DeepEFTInputError
from ..sgd.regimes import sgd_regime
from ..statistics import Z_MAX
from .base import Experiment
from .checks import Check, zcheck
from .config import param
from .registry import register

C_W_INIT = 2.0  # critical ReLU initialisation (5.67)


DATA_SOURCES = ("digits", "synthetic")


def load_digits_data(seed: int, data: str = "digits"):
    """(X_train, y_train, X_test, y_test, source): standardised digits (80/20 split), or, only when asked for
    (``data="synthetic"``), a deterministic 10-class Gaussian mixture in 64 dimensions."""
    rng = np.random.default_rng(seed)
    if data == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise DeepEFTInputError(
                "diagnose-trained-mlp trains on scikit-learn's digits, and scikit-learn is not installed: "
                "pip install 'deepeft[sklearn]' (or scikit-learn>=1.5), or run with --set data=synthetic for a "
                "10-class Gaussian mixture (its findings are not the digits ones).") from None
        X, y = load_digits(return_X_y=True)
        source = "sklearn.datasets.load_digits"
    elif data == "synthetic":
        centers = np.random.default_rng(12345).normal(0, 1.0, (10, 64))
        y = np.arange(1800) % 10
        X = centers[y] + np.random.default_rng(54321).normal(0, 1.5, (1800, 64))
        source = "synthetic 10-class Gaussian mixture (data=synthetic)"
    else:
        raise DeepEFTInputError(f"data must be one of {DATA_SOURCES}, got {data!r}.")
    X = (X - X.mean(0)) / np.maximum(X.std(0), 1e-8)
    perm = rng.permutation(len(y))
    k = int(0.8 * len(y))
    return X[perm[:k]], y[perm[:k]].astype(np.int64), X[perm[k:]], y[perm[k:]].astype(np.int64), source


def mp_theory(C_W: float, shape) -> tuple[float, float]:
    """MP parameters of W ~ N(0, C_W/n_in) (2.20) in :mod:`deepeft.diagnostics.spectrum`'s units: (s², q)."""
    n_out, n_in = shape
    return C_W / n_in, min(shape) / max(shape)


def _init(rng, dims):
    return [(rng.normal(0, np.sqrt(C_W_INIT / a), (b, a)), np.zeros(b)) for a, b in zip(dims[:-1], dims[1:])]


def _train_torch(torch, params, data, p, rec):
    Xtr, ytr, Xte, yte = data
    torch.manual_seed(p.seed)
    nn = torch.nn
    layers = []
    for i, (W, b) in enumerate(params):
        lin = nn.Linear(W.shape[1], W.shape[0])  # float32, as users train; the recorder works in float64
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
        layers += [lin] + ([nn.ReLU()] if i < len(params) - 1 else [])
    m = nn.Sequential(*layers)
    opt = torch.optim.SGD(m.parameters(), lr=p.learning_rate)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread avoids spinning workers on a shared machine
    try:
        return _sgd_loop(torch, m, opt, data, p, rec)
    finally:
        torch.set_num_threads(threads)


def _run_summary(acc, loss0, loss1, phi0, phi1) -> dict:
    """What the regime classification needs (:func:`deepeft.sgd.sgd_regime`): training loss at t = 0 and t_f and the
    memory of the last hidden layer's features on the held-out data (centred: ReLU features are not odd)."""
    from ..sgd.regimes import feature_memory

    return {"accuracy": float(acc), "loss_init": float(loss0), "loss_final": float(loss1),
            "memory": feature_memory(phi1, phi0, center=True)}


def _sgd_loop(torch, m, opt, data, p, rec):
    nn = torch.nn
    Xtr, ytr, Xte, yte = data
    Xt, yt = torch.from_numpy(Xtr.astype(np.float32)), torch.from_numpy(ytr)
    Xe = torch.from_numpy(Xte.astype(np.float32))

    def state():  # training loss on the whole training set, hidden features on the held-out data
        with torch.no_grad():
            return float(nn.functional.cross_entropy(m(Xt), yt)), m[:-1](Xe).numpy().astype(np.float64)

    loss0, phi0 = state()
    rec.record(0, m)
    handle = rec.attach(opt, m)
    g = np.random.default_rng(p.seed + 1)
    for _ in range(p.steps):
        idx = torch.from_numpy(g.integers(0, len(ytr), p.batch_size))
        opt.zero_grad()
        nn.functional.cross_entropy(m(Xt[idx]), yt[idx]).backward()
        opt.step()
    handle.remove()
    loss1, phi1 = state()
    with torch.no_grad():
        acc = float((m(Xe).argmax(1).numpy() == yte).mean())
    return _run_summary(acc, loss0, loss1, phi0, phi1)


def _train_jax(params, data, p, rec):
    import jax
    import jax.numpy as jnp

    Xtr, ytr, Xte, yte = data

    def hidden(ps, X):
        h = X
        for W, b in ps[:-1]:
            h = jax.nn.relu(h @ W.T + b)
        return h

    def forward(ps, X):
        W, b = ps[-1]
        return hidden(ps, X) @ W.T + b

    def loss(ps, X, y):
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(forward(ps, X)), y[:, None], axis=1))

    @jax.jit
    def step(ps, X, y):
        g = jax.grad(loss)(ps, X, y)
        return [(W - p.learning_rate * gW, b - p.learning_rate * gb) for (W, b), (gW, gb) in zip(ps, g)]

    with jax.enable_x64(True):
        ps = [(jnp.asarray(W), jnp.asarray(b)) for W, b in params]
        Xt, yt, Xe = jnp.asarray(Xtr), jnp.asarray(ytr), jnp.asarray(Xte)
        loss0, phi0 = float(loss(ps, Xt, yt)), np.asarray(hidden(ps, Xe))
        record_jax(rec, 0, [W for W, _ in ps], activation="relu")
        g = np.random.default_rng(p.seed + 1)
        for s in range(1, p.steps + 1):
            idx = g.integers(0, len(ytr), p.batch_size)
            ps = step(ps, jnp.asarray(Xtr[idx]), jnp.asarray(ytr[idx]))
            if s % p.record_every == 0:
                record_jax(rec, s, [W for W, _ in ps], activation="relu")
        acc = float((np.asarray(forward(ps, Xe)).argmax(1) == yte).mean())
        return _run_summary(acc, loss0, float(loss(ps, Xt, yt)), phi0, np.asarray(hidden(ps, Xe)))


# The paper's phase corners (Fig. 6): ordered (T = 2⁻⁵, 1/σ_W = 8), hot (T = 4, 1/σ_W = 8), jammed (T = 2⁻⁵, 2⁻⁸)
PHASE_CORNERS = {"ordered": (2.0**-5, 8.0), "paramagnetic": (4.0, 8.0), "jamming": (2.0**-5, 2.0**-8)}
PHASE_POINTS = ("run",) + tuple(PHASE_CORNERS)


def phase_diagram_reference(T: float, sigma_W: float, *, members: int, steps: int, batch_size: int, seed: int) -> dict:
    """deepeft's own phase diagram at (T, σ_W) and at the paper's three corners: the 3-32-16-1 tanh teacher–student
    ensemble (:meth:`deepeft.sgd.TeacherStudent.paper`), ε = T|B|; per point and member the test loss at t = 0 and t_f
    (the problem is realisable: test ≈ training loss) and the memory G(t_f, 0)/√(G(t_f, t_f) G(0, 0)) (3.4)."""
    from ..sgd import TeacherStudent, train_ensemble

    Ts = np.array([T] + [c[0] for c in PHASE_CORNERS.values()])
    inv = np.array([1.0 / sigma_W] + [c[1] for c in PHASE_CORNERS.values()])
    run = train_ensemble(TeacherStudent.paper(), Ts * batch_size, 1.0 / inv, members=members, steps=steps,
                         batch_size=batch_size, seed=seed, times=np.array([0, steps]))
    assert run.G_self is not None
    return {"phase_T": (("phase_point",), Ts), "phase_inv_sigma_W": (("phase_point",), inv),
            "phase_loss_init": (("phase_member", "phase_point"), run.test_loss[0]),
            "phase_loss_final": (("phase_member", "phase_point"), run.test_loss[-1]),
            "phase_memory": (("phase_member", "phase_point"), run.G[-1] / np.sqrt(run.G_self[-1] * run.G_self[0]))}


@register
class DiagnoseTrainedMLP(Experiment):
    name = "diagnose-trained-mlp"
    description = "weight spectra of an MLP trained on digits: MP bulk at init, TW outliers appear with training"
    references = "MP (4.2) of the SGD paper; Johnstone (2001) TW outlier test; docs/diagnose.md"
    order = 460

    @dataclasses.dataclass(frozen=True)
    class Params:
        width: int = param(256, "hidden width n (two hidden layers)", min=8)
        steps: int = param(1000, "SGD steps", min=1)
        batch_size: int = param(32, "minibatch size |B|", min=1)
        learning_rate: float = param(0.5, "SGD learning rate ε (at 0.05–0.2 no outlier forms within 3000 steps)", min=0.0)
        record_every: int = param(50, "record the spectra every this many steps", min=1)
        bootstrap: int = param(10, "Gaussian matrices per layer for the SE of the fitted aspect ratio", min=4)
        data: str = param("digits", "training data: scikit-learn's digits, or 'synthetic' (a 10-class Gaussian mixture)",
                          choices=DATA_SOURCES)
        phase_members: int = param(8, "teacher–student members of the phase-diagram reference (same T and σ_W)", min=1)
        phase_batch_size: int = param(4, "|B| of the teacher–student reference (the paper's 4; ε = T|B|)", min=1)
        backend: str = param("auto", "trainer: 'torch', 'jax' or 'auto' (torch when installed)",
                             choices=("auto", "torch", "jax"))
        min_accuracy: float = param(0.8, "held-out accuracy the trained network must reach", min=0.0, max=1.0,
                                    analysis=True)
        max_z: float = param(Z_MAX, "a prediction passes when |z| < max_z", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed (initialisation, split, minibatches)", min=0)

    presets = {
        "quick": {},
        "paper": {"width": 512, "steps": 10000, "record_every": 200, "bootstrap": 40, "phase_members": 100},
    }

    @staticmethod
    def temperature(p) -> float:
        """T = ε/|B| of the run (2.30)."""
        return p.learning_rate / p.batch_size

    @staticmethod
    def phase_steps(p) -> int:
        """Teacher–student steps for the same continuous time as the run: steps · ε / ε_ts with ε_ts = T |B_ts|."""
        return max(1, round(p.steps * p.batch_size / p.phase_batch_size))

    def compute(self, p, task, ctx):
        rng = ctx.rng()
        *data, source = load_digits_data(p.seed, p.data)
        dims = [64, p.width, p.width, 10]
        params = _init(rng, dims)
        backend = p.backend
        torch: Any = None
        if backend in ("auto", "torch"):
            try:
                import torch
            except ImportError:
                if backend == "torch":
                    raise
        backend = "torch" if torch is not None else "jax"
        with tempfile.TemporaryDirectory() as d:
            rec = SpectrumRecorder(Path(d) / "series.zarr", every=p.record_every)
            summary = _train_torch(torch, params, data, p, rec) if torch is not None else _train_jax(params, data, p, rec)
            rec.close()
            s = load_series(Path(d) / "series.zarr")
        out = {"steps": (("record",), s.steps), **{k: np.asarray(v) for k, v in summary.items()},
               "backend_torch": np.asarray(backend == "torch"), "sklearn_data": np.asarray(source.startswith("sklearn"))}
        for l, (e, shape) in enumerate(zip(s.eigenvalues, s.shapes), start=1):
            out[f"eig_{l}"] = (("record", f"rank_{l}"), e)
            qs = [spectrum_of_eigenvalues(gram_eigenvalues(rng.normal(0, 1.0, shape)), shape).aspect_ratio
                  for _ in range(p.bootstrap)]
            out[f"q_scatter_{l}"] = np.asarray(np.std(qs, ddof=1))
        out.update(phase_diagram_reference(self.temperature(p), np.sqrt(C_W_INIT), members=p.phase_members,
                                           steps=self.phase_steps(p), batch_size=p.phase_batch_size,
                                           seed=int(ctx.seed % 2**32)))
        return out

    @staticmethod
    def phase_verdicts(ds) -> dict:
        """sgd_regime of the ensemble means at each teacher–student point (the paper's E_S[·])."""
        L0, L1, mem = (ds[k].values.mean(0) for k in ("phase_loss_init", "phase_loss_final", "phase_memory"))
        return {name: sgd_regime(L0[i], L1[i], mem[i]) for i, name in enumerate(PHASE_POINTS)}

    def _spectra(self, ds, l: int, record: int):
        e = ds[f"eig_{l}"].values[record]
        shape = ((self._dims(ds)[l]), self._dims(ds)[l - 1])
        return spectrum_of_eigenvalues(e, shape), shape

    @staticmethod
    def _dims(ds):
        w = ds.sizes["rank_2"]  # layer 2 is (n, n): its m = n
        return [64, w, w, 10]

    def analyze(self, p, ds) -> list[Check]:
        checks = []
        for l in (1, 2, 3):
            ws, shape = self._spectra(ds, l, 0)
            s2, q = mp_theory(C_W_INIT, shape)
            checks.append(zcheck(f"layer {l} {shape}: MP variance at init = C_W/n_in", s2, ws.mp_sigma2,
                                 ws.mp_sigma2_stderr, max_z=p.max_z))
            checks.append(zcheck(f"layer {l} {shape}: MP aspect ratio at init = m/n", q, ws.aspect_ratio,
                                 float(ds[f"q_scatter_{l}"]), max_z=p.max_z))
            checks.append(Check(f"layer {l}: no Tracy–Widom outlier at init (level 1 %)", None, ws.num_outliers, None,
                                None, ws.num_outliers == 0, "number of outliers = 0", "finding"))
        for l in (2, 3):  # the layers after the first: the input layer's bulk stays MP (docs/diagnose.md)
            end, _ = self._spectra(ds, l, -1)
            checks.append(Check(f"layer {l}: outliers after {int(ds.steps.values[-1])} SGD steps", None,
                                end.num_outliers, None, None, end.num_outliers >= 1, "number of outliers ≥ 1",
                                "finding"))
        acc = float(ds.accuracy)
        checks.append(Check("held-out accuracy of the trained MLP", None, acc, None, None, acc >= p.min_accuracy,
                            f"accuracy ≥ {p.min_accuracy:g}", "finding"))
        checks += self.regime_checks(p, ds)
        return checks

    def regime_checks(self, p, ds) -> list[Check]:
        """The run's regime (:func:`deepeft.sgd.sgd_regime`) against deepeft's own phase diagram at the same T, σ_W.

        All findings: the classifier's thresholds are conventions and the digits MLP (ReLU, cross-entropy, every
        layer trained) is mapped onto the tanh teacher–student diagram only through T = ε/|B| and σ_W² = C_W."""
        v = self.phase_verdicts(ds)
        checks = []
        for name, (T, inv) in PHASE_CORNERS.items():
            got = v[name]
            checks.append(Check(f"regime classifier on deepeft's phase diagram: the {name} corner (T = {T:g}, "
                                f"1/σ_W = {inv:g}; teacher–student, {ds.sizes['phase_member']} members) is {name}",
                                None, got.loss_ratio, None, None, got.regime == name,
                                f"sgd_regime = {got.regime!r} ({got.reason})", "finding"))
        run = sgd_regime(float(ds.loss_init), float(ds.loss_final), float(ds.memory))
        ref = v["run"]
        members = [sgd_regime(a, b, c).regime for a, b, c in zip(ds.phase_loss_init.values[:, 0],
                                                                  ds.phase_loss_final.values[:, 0], ds.phase_memory.values[:, 0])]
        agree = sum(r == run.regime for r in members)
        T = self.temperature(p)
        checks.append(Check(f"regime of the trained MLP (T = ε/|B| = {T:g}, σ_W = √C_W = {np.sqrt(C_W_INIT):.3g}) = "
                            "regime of deepeft's teacher–student phase diagram at the same T and σ_W",
                            None, run.loss_ratio, None, None, run.regime == ref.regime,
                            f"MLP: {run.regime} ({run.reason}); teacher–student ensemble mean: {ref.regime} "
                            f"({ref.reason}); members individually {run.regime}: {agree}/{len(members)}",
                            "finding"))
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        from ..sgd.observables import MarchenkoPastur

        fig = Figure(figsize=(12, 3.4), layout="constrained")
        axes = fig.subplots(1, 3)
        for ax, l in zip(axes, (1, 2, 3)):
            for rec, color, label in ((0, "#58a", "init"), (-1, "#d73", f"step {int(ds.steps.values[-1])}")):
                ws, shape = self._spectra(ds, l, rec)
                ax.hist(ws.eigenvalues, bins=40, density=True, alpha=0.5, color=color, label=label)
                x = np.linspace(1e-9, ws.eigenvalues.max() * 1.05, 300)
                ax.plot(x, MarchenkoPastur(ws.mp_sigma2, ws.shape_ratio).pdf(x), color=color, lw=1)
                ax.axvline(ws.bulk_edge, color=color, ls=":", lw=1)
            ax.set_xscale("log")
            ax.set_title(f"layer {l} {shape}: spectrum of WᵀW/n, MP fits (lines)", fontsize=9)
            ax.legend(fontsize=7)
        tfig = Figure(figsize=(6, 3.4), layout="constrained")
        ax = tfig.subplots()
        for l in (1, 2, 3):
            ratio = [self._spectra(ds, l, r)[0] for r in range(ds.sizes["record"])]
            ax.plot(ds.steps.values, [w.lambda_max / w.bulk_edge for w in ratio], "o-", ms=3, label=f"layer {l}")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xlabel("SGD step")
        ax.set_ylabel("λ_max / fitted MP edge")
        ax.legend(fontsize=7)
        from ..sgd.regimes import LEARNED_LOSS_RATIO, MEMORY_THRESHOLD

        rfig = Figure(figsize=(6, 4), layout="constrained")
        ax = rfig.subplots()
        ratio = ds.phase_loss_final.values / ds.phase_loss_init.values
        for i, name in enumerate(PHASE_POINTS):
            T, inv = float(ds.phase_T.values[i]), float(ds.phase_inv_sigma_W.values[i])
            label = f"teacher–student {'at the run' if name == 'run' else name}: T={T:g}, 1/σ_W={inv:.3g}"
            ax.scatter(ratio[:, i], ds.phase_memory.values[:, i], s=12, alpha=0.6, label=label)
        ax.scatter([float(ds.loss_final) / float(ds.loss_init)], [float(ds.memory)], marker="*", s=150, color="k",
                   label="the trained MLP (training loss, centred memory)")
        ax.axvline(LEARNED_LOSS_RATIO, color="k", ls=":", lw=1)
        ax.axhline(MEMORY_THRESHOLD, color="k", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("loss(t_f) / loss(0)")
        ax.set_ylabel("feature memory (correlation with t = 0)")
        ax.set_title("sgd_regime: ordered left of the dotted line; jamming above, paramagnetic below it", fontsize=8)
        ax.legend(fontsize=6)
        return {"spectra.png": fig, "edge_ratio.png": tfig, "regime.png": rfig}
