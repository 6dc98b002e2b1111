"""sgd-dbm-drift: which reading of the DBM convergence test (4.15) reproduces which part of the paper's Fig. 8
(Park, Lucini & Aarts 2025, §4.2, appendix B; issue 17 item 4; docs/sgd.md).

(4.15) needs the drift K_S and the Coulomb coefficient V_S of the level spacing "at the end of training".
Three readings of that (``deepeft.sgd.dbm_analysis(drift=…)``):

* ``instantaneous`` — at the t_f weights (appendix B as written);
* ``time_averaged`` — mean over ``checkpoints`` weights of continued SGD, ``spacing`` steps apart;
* ``quenched`` — after ``quench_steps`` full-batch GD steps from the t_f weights (the SGD noise removed).

Each at t_f = ``steps`` and after longer training, t_f × ``longer`` (the same SGD stream continued), in the
bases of ``bases``. Tasks are member chunks of the paper's 3-32-16-1 tanh setup on a T × 1/σ_W grid.

Predictions: the Marchenko–Pastur moments at initialisation, and the DBM coefficients themselves — K_S and D_S
of (4.4), (B.9) at the t_f weights (eigenbasis of X, float64) against an independent path, central differences of
the spectrum along each sample's gradient step (``deepeft.sgd.spacing_finite_differences``): a wrong sign of K_S or
a scale slip of D_S fails them. The other checks are findings: in the
ordered corner (lowest T, largest 1/σ_W), per t_f and basis — the instantaneous and the time-averaged
drift have a random sign (P(K_S < 0) = ½, binomial z); at the first t_f the quenched drift is positive for
most models (P(K_S < 0) < ½ at z ≥ min_z); it is ≥ ``quench_ratio`` times smaller than the instantaneous
one (medians of |K_S|); the quenched drift at t_f predicts the change of S during the longer training
(Pearson correlation > 0, Fisher z; the instantaneous one's r is quoted beside it); the models are still
converging (median S(t_f) below the teacher's, S grows with longer training). Against Fig. 8: the converged
fraction of (4.15) in the ordered corner per reading is below the 68 % plateau, and the instantaneous
reading's fraction drops from the ordered corner to the highest T (the high-T boundary it does show).

Figures: converged fraction per reading and t_f (heat maps with the 68/95/99.7 % lines, as Fig. 8);
histograms of K_S per reading in the ordered corner; K_S at t_f per reading against the later change of S; median S
against the teacher's.

References:
  Park, Lucini & Aarts, Phase diagram and eigenvalue dynamics of stochastic gradient descent in multilayer neural networks (2025)
    arXiv:2509.01349
  (docs/references.md)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import DeepEFTInputError
from ..statistics import Z_CLAIM, Z_MAX
from . import _sgd_common as sc
from .base import Experiment
from .checks import Check, close_check, greater_check, zcheck
from .config import param
from .registry import register

_LEVELS = (0.68, 0.95, 0.997)
_K_FLOOR = 1e-9  # |K_S| below this is drawn at 0 in the signed-log histogram


def _setup():
    from ..sgd import TeacherStudent

    return TeacherStudent.paper()


def fisher_z(r: float, n: int) -> float:
    """z-score of a Pearson correlation r against 0 from n pairs (Fisher transform, stderr 1/√(n − 3))."""
    if n <= 3 or not math.isfinite(r):
        return math.nan
    return math.atanh(max(min(r, 1 - 1e-15), -1 + 1e-15)) * math.sqrt(n - 3)


@register
class SGDDBMDrift(Experiment):
    name = "sgd-dbm-drift"
    description = ("DBM convergence test (4.15) read three ways (instantaneous, time-averaged, quenched drift) "
                   "and after longer training")
    references = "Park, Lucini & Aarts 2025 (4.3)-(4.15), (B.7)-(B.9), Fig. 8"
    order = 303

    @dataclasses.dataclass(frozen=True)
    class Params:
        temperatures: tuple[float, ...] = param((2.0**-5, 1.0, 8.0), "temperatures T = ε/|B| (increasing)", min=0.0)
        inv_sigma_W: tuple[float, ...] = param((2.0**-8, 8.0), "initial-weight scales 1/σ_W (increasing)", min=0.0)
        batch_size: int = param(4, "minibatch size |B|", min=1, max=4000)
        members: int = param(12, "ensemble size |S|", min=4)
        members_per_task: int = param(12, "members per task", min=1)
        steps: int = param(2500, "SGD steps t_f of the first reading", min=1)
        longer: int = param(2, "longer training: the readings again at t_f × longer (SGD stream continued)", min=2)
        n_records: int = param(10, "log-spaced recording times up to t_f", min=3)
        bases: tuple[str, ...] = param(("K",), "bases of the DBM coefficients (appendix B: K; X: eigenbasis of X)")
        quench_steps: int = param(25, "quenched reading: full-batch GD steps from the t_f weights", min=1)
        checkpoints: int = param(5, "time-averaged reading: checkpoints of continued SGD (first at t_f)", min=2)
        spacing: int = param(50, "time-averaged reading: SGD steps between checkpoints", min=1)
        quench_ratio: float = param(10.0, "finding: median |K_S| instantaneous / quenched ≥ this", min=1.0,
                                    analysis=True)
        min_z: float = param(Z_CLAIM, "one-sided significance of the findings", min=0.0, analysis=True)
        corr_min_z: float = param(2.0, "one-sided significance (Fisher z) of the correlation between the quenched "
                                       "K_S and the later change of S (≈ 0.66–0.88 measured: z ≥ 3 needs ≳ 20 members)",
                                  min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound of the P(K_S < 0) = ½ and exact-moment checks", min=1.0,
                             analysis=True)
        fd_rtol: float = param(1e-5, "prediction: K_S, D_S (4.4), (B.9) against central differences of the "
                                     "spectrum, relative tolerance (truncation ≈ 1e-8 measured)", min=0.0,
                               analysis=True)
        seed: int = param(0, "experiment seed; chunk i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            sc.check_grid(self.temperatures, "temperatures")
            sc.check_grid(self.inv_sigma_W, "inv_sigma_W")
            bad = [b for b in self.bases if b not in ("K", "X")]
            if bad or not self.bases or len(set(self.bases)) != len(self.bases):
                raise DeepEFTInputError(f"bases must list 'K' and/or 'X' once each, got {list(self.bases)}.")

    presets = {
        "quick": {},
        "paper": {"temperatures": tuple(float(2.0**k) for k in range(-5, 7)),
                  "inv_sigma_W": tuple(float(2.0**k) for k in (-8, 0, 3)),
                  "members": 100, "members_per_task": 25, "steps": 100_000, "longer": 4, "n_records": 30,
                  "bases": ("K", "X"), "checkpoints": 20, "quench_steps": 400, "corr_min_z": Z_CLAIM},
    }

    def tasks(self, p):
        return sc.member_tasks(p.members, p.members_per_task)

    def compute(self, p, task, ctx):
        import jax.numpy as jnp

        from ..sgd import (
            DRIFTS,
            continue_ensemble,
            dbm_analysis,
            level_spacing,
            phase_grid,
            spacing_drift,
            spacing_finite_differences,
            train_ensemble,
        )

        g = phase_grid(p.temperatures, p.inv_sigma_W, p.batch_size)
        shape, M = g["grid_shape"], task["members"]
        run = train_ensemble(_setup(), g["learning_rate"], g["sigma_W"], members=M, steps=p.steps,
                             batch_size=p.batch_size, seed=sc.chunk_seed(ctx), n_records=p.n_records, grid_shape=shape)
        grid = (M, *shape)
        eig0 = np.asarray(run.eigenvalues[0], np.float64).reshape(*grid, -1)[:, 0]
        out: dict = {"eig_init": (("member", "inv_sigma_W", "level"), eig0),
                     "S_teacher": (("member",), level_spacing(run.teacher_eigenvalues))}
        # the DBM coefficients in the eigenbasis of X (float64) against finite differences of the spectrum, at the
        # t_f weights of the two corners of the largest-1/σ_W column (lowest and highest T)
        pts = _corner_points(shape)
        K_X, _, D_X = spacing_drift(run, basis="X", member_chunk=M, dtype=jnp.float64)
        K_fd, D_fd = spacing_finite_differences(run, pts)
        for k, val in (("K_S_X", K_X[:, pts]), ("D_S_X", D_X[:, pts]), ("K_S_fd", K_fd), ("D_S_fd", D_fd)):
            out[k] = (("member", "corner"), np.asarray(val, np.float64))
        per: dict = {}
        runs = [run, continue_ensemble(run, p.steps * (p.longer - 1), n_records=p.n_records)]
        for r in runs:
            S = level_spacing(r.eigenvalues)  # (R, M, P)
            dt = (r.times[-1] - r.times[-2]) * r.learning_rate  # continuous time of the last interval
            vals = {"S": S[-1], "trend": (S[-1] - S[-2]) / dt, "test_loss": r.test_loss[-1]}
            for drift in DRIFTS:
                for basis in p.bases:
                    d = dbm_analysis(r, basis=basis, drift=drift, checkpoints=p.checkpoints, spacing=p.spacing,
                                     quench_steps=p.quench_steps, member_chunk=M)
                    for k in ("K_S", "V_S", "D_S", "converged"):
                        vals[f"{k}|{drift}|{basis}"] = np.asarray(getattr(d, k), np.float64)
                    if drift == "quenched":
                        vals[f"K_S_trajectory|{basis}"] = d.K_S_trajectory
            for k, v in vals.items():
                per.setdefault(k, []).append(v.reshape(grid))
        dims = ("t_f", "member", "T", "inv_sigma_W")
        for k, v in per.items():
            name, *rest = k.split("|")
            if not rest:
                out[name] = (dims, np.stack(v))
            elif len(rest) == 1:
                out[f"{name}__{rest[0]}"] = (dims, np.stack(v))
            else:
                out[f"{name}__{rest[0]}__{rest[1]}"] = (dims, np.stack(v))
        return out

    def assemble(self, p, tasks, results):
        import xarray as xr

        from ..sgd import DRIFTS

        _, (merged,) = sc.concat_members(results)
        coords = {"t_f": [p.steps, p.steps * p.longer], "member": np.arange(p.members), "T": list(p.temperatures),
                  "inv_sigma_W": list(p.inv_sigma_W), "level": np.arange(1, 17), "drift": list(DRIFTS),
                  "basis": list(p.bases),
                  "corner": list(_CORNERS[:len(_corner_points((len(p.temperatures), len(p.inv_sigma_W))))])}
        data = {}
        for k, (dims, arr) in merged.items():
            parts = k.split("__")
            if len(parts) == 3 and parts[1] in DRIFTS:
                continue
            if len(parts) == 2:  # K_S_trajectory__basis
                continue
            data[k] = (dims, arr)
        for var in ("K_S", "V_S", "D_S", "converged"):
            stack = np.stack([np.stack([merged[f"{var}__{d}__{b}"][1] for b in p.bases]) for d in DRIFTS])
            data[var] = (("drift", "basis", "t_f", "member", "T", "inv_sigma_W"), stack)
        data["K_S_trajectory"] = (("basis", "t_f", "member", "T", "inv_sigma_W"),
                                  np.stack([merged[f"K_S_trajectory__{b}"][1] for b in p.bases]))
        ds = xr.Dataset(data, coords=coords)
        ds["fraction"] = ds.converged.mean("member")
        return ds

    # -- analysis ---------------------------------------------------------------------------------

    def analyze(self, p, ds):
        s = np.asarray(p.inv_sigma_W)
        M = ds.sizes["member"]
        o = {"T": 0, "inv_sigma_W": len(s) - 1}
        checks: list[Check] = []
        corner = f"ordered corner (T={p.temperatures[0]:g}, 1/σ_W={s[-1]:g})"
        for it, tf in enumerate(ds.t_f.values):
            d = ds.isel(t_f=it, **o)
            tag = f"t_f={tf}"
            S, St = d.S.values, ds.S_teacher.values
            checks.append(greater_check(f"{tag}: {corner}: still converging — median S(t_f) of the teachers > the "
                                        f"students' (measured {np.median(St):.3g} vs {np.median(S):.3g})",
                                        np.median(St), _median_se(St), np.median(S), _median_se(S), min_z=p.min_z,
                                        what="median difference"))
            for basis in p.bases:
                b = f"{tag}, basis {basis}: {corner}"
                K = {dr: d.K_S.sel(drift=dr, basis=basis).values for dr in ds.drift.values}
                for dr in ("instantaneous", "time_averaged"):
                    neg = float((K[dr] < 0).mean())
                    checks.append(zcheck(f"{b}: {dr} drift has a random sign, P(K_S < 0) = ½", 0.5, neg,
                                         0.5 / math.sqrt(M), max_z=p.max_z, kind="finding"))
                negq = float((K["quenched"] < 0).mean())
                if it == 0:  # closer to convergence (longer training) the noise-free drift shrinks towards 0
                    checks.append(greater_check(f"{b}: the quenched drift is positive for most models, "
                                                f"P(K_S < 0) = {negq:.2f} < ½", 0.5, 0.0, negq,
                                                math.sqrt(max(negq * (1 - negq), 0.25 / M) / M), min_z=p.min_z,
                                                what="½ − P(K_S < 0) (binomial stderr)"))
                ratio = float(np.median(np.abs(K["instantaneous"])) / np.median(np.abs(K["quenched"])))
                checks.append(Check(f"{b}: |K_S| drops when the SGD noise is removed: median |K_S| instantaneous / "
                                    "quenched", None, ratio, None, None, bool(ratio >= p.quench_ratio),
                                    f"finding: ratio ≥ {p.quench_ratio:g}", "finding"))
                if it == 0 and ds.sizes["t_f"] > 1:
                    dS = ds.S.isel(t_f=1, **o).values - d.S.values  # the change of S during the longer training
                    r = float(np.corrcoef(K["quenched"], dS)[0, 1])
                    r_inst = float(np.corrcoef(K["instantaneous"], dS)[0, 1])
                    z = fisher_z(r, M)
                    checks.append(Check(f"{b}: the quenched K_S at t_f predicts the change of S during the longer "
                                        f"training (Pearson r over members; instantaneous K_S: r = {r_inst:.2f})",
                                        None, r, 1 / math.sqrt(max(M - 3, 1)), None, bool(z >= p.corr_min_z),
                                        f"finding: r > 0 with Fisher z = atanh(r)√(M − 3) ≥ {p.corr_min_z:g} "
                                        f"(here {z:.2f})",
                                        "finding"))
                f_lo = float(d.converged.sel(drift="instantaneous", basis=basis).values.mean())
                f_hi = float(ds.converged.sel(drift="instantaneous", basis=basis).isel(t_f=it, T=-1,
                                                                                      inv_sigma_W=o["inv_sigma_W"]).mean())
                checks.append(greater_check(f"{b}: instantaneous reading — the converged fraction drops from the "
                                            f"ordered corner to T={p.temperatures[-1]:g} (Fig. 8's high-T boundary)",
                                            f_lo, math.sqrt(max(f_lo * (1 - f_lo), 0.25 / M) / M), f_hi,
                                            math.sqrt(max(f_hi * (1 - f_hi), 0.25 / M) / M), min_z=2.0,
                                            what="fraction difference (binomial stderr)"))
                for dr in ds.drift.values:
                    f = float(d.converged.sel(drift=dr, basis=basis).values.mean())
                    checks.append(Check(f"{b}: {dr} reading — converged fraction of (4.15) below Fig. 8's "
                                        "ordered-phase plateau (≥ 68 %)", None, f, math.sqrt(f * (1 - f) / M), None,
                                        bool(f < _LEVELS[0]), "finding: fraction < 0.68", "finding"))
        if ds.sizes["t_f"] > 1:
            d0, d1 = ds.isel(t_f=0, **o), ds.isel(t_f=-1, **o)
            diff = d1.S.values - d0.S.values
            m, se = sc.mean_se(diff)
            checks.append(greater_check(f"{corner}: S grows with longer training (t_f={ds.t_f.values[0]} → "
                                        f"{ds.t_f.values[-1]}, paired over members)", m, se, 0.0, 0.0,
                                        min_z=p.min_z, what="mean S difference"))
        checks += sc.mp_checks("", ds.eig_init.values, s, 16, 32, edge_rtol=0.2, max_z=p.max_z)
        checks += self._finite_difference_checks(p, ds)
        return checks

    @staticmethod
    def _finite_difference_checks(p, ds) -> list[Check]:
        """K_S and D_S of (4.4), (B.9) against the finite-difference path (every member and corner; worst shown)."""
        out = []
        for q, what in (("K_S", "drift K_S = (K_N − K_1)/(N − 1)"), ("D_S", "diffusion D_S = (V_11 + V_NN)/(2(N − 1)²)")):
            th, fd = ds[f"{q}_X"].values.ravel(), ds[f"{q}_fd"].values.ravel()
            atol = p.fd_rtol * float(np.sqrt(np.mean(th**2)))  # for members whose K_S is near 0
            excess = np.abs(fd - th) / (atol + p.fd_rtol * np.abs(th))
            i = int(np.nanargmax(excess)) if np.isfinite(excess).any() else 0
            out.append(close_check(f"t_f={int(ds.t_f.values[0])}: DBM {what} (4.4), (B.9) in the eigenbasis of X = the "
                                   "rate of the spectrum under per-sample gradient steps (central differences; "
                                   f"{th.size} models at {', '.join(ds.corner.values)} corner; worst shown)",
                                   th[i], fd[i], rtol=p.fd_rtol, atol=atol))
        return out

    # -- figures ----------------------------------------------------------------------------------

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        from ..sgd import boundary_temperature

        T, s = np.asarray(p.temperatures), np.asarray(p.inv_sigma_W)
        basis = p.bases[0]
        drifts = list(ds.drift.values)
        nt = ds.sizes["t_f"]
        fig = Figure(figsize=(5.2 * len(drifts), 4.0 * nt), layout="constrained")
        axes = np.atleast_2d(fig.subplots(nt, len(drifts)))
        for it in range(nt):
            for j, dr in enumerate(drifts):
                frac = ds.fraction.sel(drift=dr, basis=basis).isel(t_f=it).values
                bounds = {lv: boundary_temperature(frac, T, lv) for lv in _LEVELS}
                sc.heatmap(axes[it, j], fig, T, s, frac, f"{dr}, t_f={ds.t_f.values[it]}: fraction converged (4.15)",
                           log=False, boundaries=bounds, fraction=frac)
        fig.suptitle(f"Fig. 8 read three ways (basis {basis}, {p.members} members): white lines where 68/95/99.7 % "
                     "of the models satisfy (4.15)", fontsize=10)
        io, so = 0, len(s) - 1
        hf = Figure(figsize=(15, 4.0), layout="constrained")
        a1, a2, a3 = hf.subplots(1, 3)
        for it in range(nt):
            d = ds.isel(t_f=it, T=io, inv_sigma_W=so)
            for j, dr in enumerate(drifts):
                K = d.K_S.sel(drift=dr, basis=basis).values
                mag = np.maximum(np.log10(np.abs(K) / _K_FLOOR + 1e-300), 0.0)
                a1.hist(np.sign(K) * mag, bins=30, histtype="step", color=f"C{j}",
                        ls="-" if it == 0 else "--", label=f"{dr}, t_f={ds.t_f.values[it]}")

        a1.set_xlabel(f"sign(K_S) · log10(|K_S| / {_K_FLOOR:g})  (negative: K_S < 0)")
        a1.set_title(f"K_S in the ordered corner (T={T[io]:g}, 1/σ_W={s[so]:g})", fontsize=9)
        a1.legend(fontsize=6)
        d0 = ds.isel(t_f=0, T=io, inv_sigma_W=so)
        if nt > 1:
            dS = ds.S.isel(t_f=1, T=io, inv_sigma_W=so).values - d0.S.values
            for j, dr in enumerate(drifts):
                K0 = d0.K_S.sel(drift=dr, basis=basis).values
                a2.scatter(dS, K0 / np.abs(K0).max(), s=8, color=f"C{j}", label=f"{dr} (scaled to max |K_S| = 1)")
        a2.axhline(0, color="k", lw=0.5)
        a2.axvline(0, color="k", lw=0.5)
        a2.set_xlabel(f"change of S from t_f={ds.t_f.values[0]} to {ds.t_f.values[-1]}")
        a2.set_ylabel(f"K_S at t_f={ds.t_f.values[0]} / max |K_S|")
        a2.legend(fontsize=7)
        a2.set_title("which drift predicts the later change of S", fontsize=9)
        St = np.median(ds.S_teacher.values)
        for it in range(nt):
            a3.bar(it, np.median(ds.S.isel(t_f=it, T=io, inv_sigma_W=so).values), label=f"t_f={ds.t_f.values[it]}")
        a3.axhline(St, color="k", ls="--", label="teachers' median S")
        a3.set_xticks(range(nt))
        a3.set_xticklabels([str(t) for t in ds.t_f.values])
        a3.set_xlabel("t_f")
        a3.set_ylabel("median level spacing S (4.5)")
        a3.legend(fontsize=7)
        a3.set_title("students still converging towards the teachers' spacing", fontsize=9)
        return {"dbm_fraction.png": fig, "dbm_drift.png": hf}


_CORNERS = ("ordered", "hot")


def _corner_points(shape) -> list[int]:
    """Flat (T-major) indices of the lowest- and highest-T points of the largest-1/σ_W column (one if nT = 1)."""
    nT, ns = shape
    return list(dict.fromkeys([ns - 1, (nT - 1) * ns + ns - 1]))


def _median_se(x) -> float:
    """Standard error of a sample median, 1.2533 σ/√n (normal approximation)."""
    x = np.asarray(x, np.float64)
    return float(1.2533 * x.std(ddof=1) / math.sqrt(x.size))
