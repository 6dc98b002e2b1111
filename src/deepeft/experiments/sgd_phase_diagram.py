"""sgd-phase-diagram: the T–1/σ_W phase diagram of SGD in the 3-32-16-1 tanh teacher–student network
(Park, Lucini & Aarts 2025, §3–4; ``deepeft.sgd``).

Tasks are chunks of ensemble members (resumable, distributable); each trains its members at every
grid point (T = ε/|B| (2.30), 1/σ_W (2.11)) with the paper's setup (only W^{(2)} trainable,
|D| = 4000, |B| = 4), records test loss (3.2), G(t, 0) (3.4), alignment (3.5), the level spacing
S(t) (4.5), gradient norms (3.3) and the eigenvalues of X = W Wᵀ (4.1), and runs the
Dyson-Brownian-motion convergence test (4.15) per model at t_f. Results are assembled over members.

Figures: heat maps of loss, G(t_f, 0), alignment, gradient norm, λ̄ (4.7) and the converged fraction with
the DBM boundaries (68/95/99.7 %, Fig. 8) and the jamming boundary σ_z² = ½ (§2.3, Fig. 9) overlaid
(Figs. 2, 5, 7, 9 analogues); slices of loss and gradient vs T with error bars and the gradient at
initialisation vs 1/σ_W (Figs. 3, 4); eigenvalue trajectories in the three phases with the teacher's
eigenvalues, and the initial spectrum against Marchenko–Pastur (Fig. 6, (4.2)); the law p(φ) = e^{−V(φ)} of
the features and its single → double-well transition at σ_z² = ½ against sampled tanh z (Fig. 1, (2.21)).

Checks (qualitative structure, each with its rule): ordered-corner loss ≥ 100× below the paramagnetic
corner (every T ≥ 4 at the largest 1/σ_W) and below the jamming corner (smallest T and 1/σ_W);
alignment higher in the ordered corner; memory of the initial features G(t_f, 0) only in the jamming
corner; the loss transition near T ~ 1 at 1/σ_W = 8; the gradient at initialisation small at large σ_W;
λ̄ ordered by phase (Fig. 7); DBM converged fraction higher in the ordered than the paramagnetic corner;
Marchenko–Pastur x₊ = 0.046 (1/σ_W = 8) and 1.9e5 (2⁻⁸) closed form vs paper and vs the measured edge,
plus the exact finite-size moments of the initial spectrum; χ² of sampled tanh z against p(φ) (2.21) below,
at and above σ_z² = ½; the DBM boundary where the converged fraction falls to half its low-T plateau
against the loss transition, and the measured sign statistics of K_S (docs/sgd.md: a finding).

References:
  Park, Lucini & Aarts, Phase diagram and eigenvalue dynamics of stochastic gradient descent in multilayer neural networks (2025)
    arXiv:2509.01349
  (docs/references.md)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DeepEFTInputError
from ..statistics import Z_CLAIM, Z_MAX
from . import _sgd_common as sc
from .base import Experiment
from .checks import zcheck
from .config import param
from .registry import register

_LEVELS = (0.68, 0.95, 0.997)


def _pow2(*k) -> tuple[float, ...]:
    return tuple(float(2.0**e) for e in k)


def _setup():
    from ..sgd import TeacherStudent

    return TeacherStudent.paper()


def _phase_points(p) -> list[tuple[int, int]]:
    """(iT, iσ) of the ordered (T_min, max 1/σ_W), paramagnetic (T ≈ paramagnetic_T, max 1/σ_W) and jamming
    (T_min, min 1/σ_W) points (Fig. 6)."""
    ns = len(p.inv_sigma_W)
    return [(0, ns - 1), (sc.nearest(p.temperatures, p.paramagnetic_T), ns - 1), (0, 0)]


def jamming_lines() -> dict[str, float]:
    """The jamming boundary σ_z² = σ_W² q = ½ (§2.3): with the teachers' actual feature scale q and the bound q = 1."""
    from ..sgd import feature_scale, jamming_inv_sigma_W

    q = feature_scale(_setup())
    return {f"jamming σ_z²=½ (q={q:.2f})": jamming_inv_sigma_W(q), "jamming bound (q=1)": jamming_inv_sigma_W(1.0)}


_FEATURE_SZ2 = (0.2, 0.5, 1.0, 3.0)  # σ_z² of the Fig. 1 analogue: below, at and above σ_c² = ½
_FEATURE_STREAM = 2021  # SeedSequence entropy [seed, stream] of the sampled features (apart from every task's)


def feature_histograms(seed: int, n: int = 200_000, bins: int = 40):
    """Monte Carlo law of φ = tanh z, z ~ N(0, σ_z²), per σ_z² in _FEATURE_SZ2: (edges, counts (k, bins))."""
    rng = np.random.default_rng([seed, _FEATURE_STREAM])
    edges = np.linspace(-1.0, 1.0, bins + 1)
    counts = np.stack([np.histogram(np.tanh(rng.normal(0.0, np.sqrt(s2), n)), edges)[0] for s2 in _FEATURE_SZ2])
    return edges, counts


def feature_chi2(edges, counts, sigma_z2: float) -> tuple[float, int]:
    """χ² of a histogram of tanh z against the bin probabilities of p(φ) (2.21) (Gauss–Legendre per bin)."""
    from ..sgd import feature_density

    x, w = np.polynomial.legendre.leggauss(32)
    lo, hi = edges[:-1, None], edges[1:, None]
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    prob = (feature_density(mid + half * x, sigma_z2) * w).sum(1) * half[:, 0]
    expected = counts.sum() * prob
    keep = expected > 5
    return float((((counts - expected) ** 2 / expected)[keep]).sum()), int(keep.sum() - 1)


_DISORDER_STREAM = 2025  # seed of the initialisations drawn for the disorder checks (apart from every task's)
_WISHART_MEMBERS = 1000
_ENERGY_MEMBERS = 2


def disorder_checks(seed: int, inv_sigma_W, *, max_z: float) -> list:
    """The disordered-system reading (2.7)–(2.9), (2.24) at initialisation, for the paper's setup: the six symmetry
    classes of J = W^{(L)ᵀ}W^{(L)} over sampled teachers' output layers against the Wishart moments (2.24) (z-scores;
    n_L = 1, σ² = teacher C_W = 1), and the energy (2.7) of the students' features against their MSE loss (2.6) on
    the test set at every 1/σ_W of the grid (an identity; float32 networks)."""
    import dataclasses as dc

    from ..sgd import disorder, energy_at_init, last_layer_weights, sample_problem, wishart_classes
    from .checks import close_check

    setup = _setup()
    out = []
    pr = sample_problem(dc.replace(setup, n_train=1, n_test=1), _WISHART_MEMBERS, seed=seed + _DISORDER_STREAM)
    W, s2 = last_layer_weights(setup, pr)
    wc = wishart_classes(disorder(W, np.zeros((W.shape[0], 1, setup.n[-1]))).J, s2, setup.n[-1])
    m, se = sc.mean_se(wc.samples, axis=0)
    for name, th, mv, sv in zip(wc.names, wc.theory, m, se):
        out.append(zcheck(f"(2.24) Wishart couplings J = W^(L)ᵀW^(L) at init: {name}", th, mv, sv, max_z=max_z))
    pr = sample_problem(dc.replace(setup, n_train=1), _ENERGY_MEMBERS, seed=seed + _DISORDER_STREAM)
    loss, en = energy_at_init(setup, pr, 1.0 / np.asarray(inv_sigma_W))
    rel = float(np.max(np.abs(en - loss) / loss))
    out.append(close_check("(2.7) loss as energy ½φJφ − hφ + C = MSE (2.6) at init, every 1/σ_W (max relative difference)",
                           0.0, rel, atol=1e-4))
    return out


@register
class SGDPhaseDiagram(Experiment):
    name = "sgd-phase-diagram"
    description = "SGD phase diagram in the T-1/sigma_W plane: loss, G(t_f,0), alignment, gradient, DBM and jamming boundaries"
    references = "Park, Lucini & Aarts 2025 (2.11), (2.21), (2.30), (3.2)-(3.6), (4.1)-(4.15), Figs. 2-9"
    order = 300

    @dataclasses.dataclass(frozen=True)
    class Params:
        temperatures: tuple[float, ...] = param(_pow2(-5, -3, -1, 0, 1, 2, 6),
                                                "temperatures T = ε/|B| (increasing)", min=0.0)
        inv_sigma_W: tuple[float, ...] = param(_pow2(-8, -2, 1, 3),
                                               "initial-weight scales 1/σ_W (increasing)", min=0.0)
        batch_size: int = param(4, "minibatch size |B| (ε = T|B|)", min=1)
        members: int = param(16, "ensemble size |S| (teacher–student pairs per point)", min=2)
        members_per_task: int = param(8, "members per task (tasks = member chunks)", min=1)
        steps: int = param(20_000, "SGD steps t_f", min=1)
        n_records: int = param(20, "log-spaced recording times", min=2)
        paramagnetic_T: float = param(4.0, "paramagnetic corner: every grid T ≥ this (Fig. 6 centre: 4)", min=0.0)
        dbm_basis: str = param("K", "basis of the DBM coefficients (appendix B: K)", choices=("K", "X"))
        loss_ratio: float = param(100.0, "required loss ratio other corner / ordered corner", min=1.0, analysis=True)
        memory_ratio: float = param(10.0, "required ratio of G(t_f,0): jamming / other corners", min=1.0, analysis=True)
        transition_range: tuple[float, ...] = param((0.25, 4.0), "allowed [lo, hi] of the transition T* at 1/σ_W = 8",
                                                    min=0.0, analysis=True)
        dbm_transition_factor: float = param(3.0, "allowed factor between the DBM ½-plateau boundary and the loss "
                                                  "transition T* at 1/σ_W = 8", min=1.0, analysis=True)
        edge_rtol: float = param(0.2, "allowed |x_max/x₊ − 1| of the measured MP edge at init", min=0.0, analysis=True)
        min_z: float = param(Z_CLAIM, "ordering and ratio checks: one-sided significance z ≥ min_z", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound of the exact-moment checks", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; chunk i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            sc.check_grid(self.temperatures, "temperatures")
            sc.check_grid(self.inv_sigma_W, "inv_sigma_W")
            if len(self.temperatures) < 2 or len(self.inv_sigma_W) < 2:
                raise DeepEFTInputError("the phase diagram needs at least 2 temperatures and 2 values of inv_sigma_W.")
            if len(self.transition_range) != 2 or not 0 < self.transition_range[0] < self.transition_range[1]:
                raise DeepEFTInputError(f"transition_range must be [lo, hi] with 0 < lo < hi, got {list(self.transition_range)}.")
            if self.batch_size > 4000:
                raise DeepEFTInputError(f"batch_size {self.batch_size} exceeds |D| = 4000; lower it.")

    presets = {
        "quick": {},
        "paper": {
            "temperatures": _pow2(*range(-5, 7)),
            "inv_sigma_W": _pow2(*range(-8, 4)),
            "members": 100,
            "members_per_task": 10,
            "steps": 100_000,
            "n_records": 30,
        },
    }

    def tasks(self, p):
        return sc.member_tasks(p.members, p.members_per_task)

    def compute(self, p, task, ctx):
        return sc.train_chunk(_setup(), p.temperatures, p.inv_sigma_W, batch_size=p.batch_size,
                              members=task["members"], steps=p.steps, n_records=p.n_records, seed=sc.chunk_seed(ctx),
                              dbm_basis=p.dbm_basis, phase_points=_phase_points(p))

    def assemble(self, p, tasks, results):
        import xarray as xr

        from ..sgd import boundary_temperature, record_times

        _, (merged,) = sc.concat_members(results)
        setup = _setup()
        coords = {"time": record_times(p.steps, p.n_records), "member": np.arange(p.members),
                  "T": list(p.temperatures), "inv_sigma_W": list(p.inv_sigma_W),
                  "level": np.arange(1, setup.spectral_shape[0] + 1), "phase": list(sc.PHASES)}
        ds = xr.Dataset({k: v for k, v in merged.items()}, coords=coords)
        frac = ds.converged.mean("member")
        ds["dbm_fraction"] = frac
        ds["dbm_boundary"] = (("dbm_level", "inv_sigma_W"),
                              np.stack([boundary_temperature(frac.values, p.temperatures, lv) for lv in _LEVELS]))
        ds = ds.assign_coords(dbm_level=list(_LEVELS))
        ds["dbm_boundary_half"] = (("inv_sigma_W",), boundary_temperature(frac.values, p.temperatures, 0.5,
                                                                          relative=True))
        ds["jamming_inv_sigma_W"] = (("jamming_estimate",), np.array(list(jamming_lines().values())))
        ds = ds.assign_coords(jamming_estimate=list(jamming_lines()))
        pts = _phase_points(p)
        ds["phase_T"] = (("phase",), [p.temperatures[i] for i, _ in pts])
        ds["phase_inv_sigma_W"] = (("phase",), [p.inv_sigma_W[j] for _, j in pts])
        return ds

    # -- analysis ---------------------------------------------------------------------------------

    def analyze(self, p, ds):
        from ..sgd import spacing_rate

        T, s = np.asarray(p.temperatures), np.asarray(p.inv_sigma_W)
        last = ds.isel(time=-1)
        ms = lambda da: sc.mean_se(da.values, axis=0)  # noqa: E731 — over the member axis
        loss, loss_se = ms(last.test_loss)
        G, G_se = ms(last.G)
        al, al_se = ms(last.alignment)
        rate_m = spacing_rate(ds.spacing.isel(time=-1).values, ds.spacing.isel(time=0).values, p.steps)
        rate, rate_se = sc.mean_se(rate_m)
        io, so = 0, len(s) - 1  # ordered corner (T_min, max 1/σ_W); jamming corner (T_min, min 1/σ_W)
        hot = [i for i, t in enumerate(T) if t >= p.paramagnetic_T]
        checks = []
        o = (io, so)
        j = (io, 0)
        for i in hot:
            h = (i, so)
            tag = f"T={T[i]:g}, 1/σ_W={s[so]:g}"
            checks.append(sc.ratio_check(f"loss: paramagnetic ({tag}) / ordered corner ≥ {p.loss_ratio:g}",
                                         loss[h], loss_se[h], loss[o], loss_se[o], p.loss_ratio, "loss ratio", min_z=p.min_z))
            checks.append(sc.greater_check(f"alignment: ordered corner > paramagnetic ({tag})", al[o], al_se[o],
                                           al[h], al_se[h], min_z=p.min_z, what="alignment difference"))
            checks.append(sc.ratio_check(f"memory: G(t_f,0) jamming corner / paramagnetic ({tag}) ≥ {p.memory_ratio:g}",
                                         G[j], G_se[j], G[h], G_se[h], p.memory_ratio, "G ratio", min_z=p.min_z))
            checks.append(sc.greater_check(f"λ̄ (4.7): paramagnetic ({tag}) > ordered corner", rate[h], rate_se[h],
                                           rate[o], rate_se[o], min_z=p.min_z, what="rate difference"))
            f_o, f_h = ds.dbm_fraction.values[o], ds.dbm_fraction.values[h]
            M = ds.sizes["member"]
            checks.append(sc.greater_check(f"DBM (4.15): converged fraction ordered corner > paramagnetic ({tag})",
                                           f_o, np.sqrt(f_o * (1 - f_o) / M), f_h, np.sqrt(f_h * (1 - f_h) / M),
                                           min_z=2.0, what="fraction difference (binomial stderr)"))
        jt = f"T={T[io]:g}, 1/σ_W={s[0]:g}"
        checks.append(sc.ratio_check(f"loss: jamming ({jt}) / ordered corner ≥ {p.loss_ratio:g}",
                                     loss[j], loss_se[j], loss[o], loss_se[o], p.loss_ratio, "loss ratio", min_z=p.min_z))
        checks.append(sc.greater_check(f"alignment: ordered corner > jamming ({jt})", al[o], al_se[o], al[j], al_se[j],
                                       min_z=p.min_z, what="alignment difference"))
        checks.append(sc.ratio_check(f"memory: G(t_f,0) jamming ({jt}) / ordered corner ≥ {p.memory_ratio:g}",
                                     G[j], G_se[j], G[o], G_se[o], p.memory_ratio, "G ratio", min_z=p.min_z))
        checks.append(sc.greater_check(f"λ̄ (4.7): ordered corner > jamming ({jt})", rate[o], rate_se[o], rate[j],
                                       rate_se[j], min_z=p.min_z, what="rate difference"))
        k8 = sc.nearest(s, 8.0)
        checks.append(sc.transition_check(f"transition temperature T* of the loss at 1/σ_W={s[k8]:g} (Fig. 4: T ~ 1)",
                                          T, last.test_loss.values[:, :, k8], *p.transition_range, rng_seed=p.seed))
        checks.append(sc.dbm_transition_check(
            f"DBM (4.15): T where the converged fraction falls to ½ its low-T plateau vs loss T* at 1/σ_W={s[k8]:g}",
            T, ds.converged.values[:, :, k8], last.test_loss.values[:, :, k8], p.dbm_transition_factor, p.seed))
        neg = (ds.K_S.values[:, o[0], o[1]] < 0).mean()
        M = ds.sizes["member"]
        checks.append(zcheck("finding: P(K_S(t_f) < 0) in the ordered corner = ½ (the drift's sign is thermal noise, "
                             "so the converged fraction plateaus near ½, not 1 as in Fig. 8)", 0.5, neg,
                             0.5 / np.sqrt(M), max_z=p.max_z, kind="finding"))
        g0, g0_se = ms(ds.grad_norm_init.isel(T=0))
        kmax = int(np.argmax(g0))
        checks.append(sc.ratio_check(f"gradient at init (Fig. 4 right): 1/σ_W={s[kmax]:g} / 1/σ_W={s[0]:g} ≥ 10",
                                     g0[kmax], g0_se[kmax], g0[0], g0_se[0], 10.0, "gradient-norm ratio", min_z=p.min_z))
        n_out, n_in = _setup().spectral_shape
        checks += sc.mp_checks("", ds.eig_init.values, s, n_out, n_in, edge_rtol=p.edge_rtol, max_z=p.max_z)
        edges, counts = feature_histograms(p.seed)
        for s2, c in zip(_FEATURE_SZ2, counts):
            chi2, dof = feature_chi2(edges, c, s2)
            checks.append(zcheck(f"Fig. 1: law of φ = tanh z at σ_z² = {s2:g} vs p(φ) = e^(−V(φ)) (2.21), χ²/dof = "
                                 f"{chi2:.0f}/{dof}", float(dof), chi2, float(np.sqrt(2 * dof)), max_z=p.max_z))
        checks += disorder_checks(p.seed, p.inv_sigma_W, max_z=p.max_z)
        return checks

    # -- figures ----------------------------------------------------------------------------------

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        from ..sgd import marchenko_pastur, spacing_rate

        T, s = np.asarray(p.temperatures), np.asarray(p.inv_sigma_W)
        last = ds.isel(time=-1)
        mean = lambda da: da.mean("member").values  # noqa: E731
        rate = spacing_rate(ds.spacing.isel(time=-1).values, ds.spacing.isel(time=0).values, p.steps).mean(0)
        bounds = {lv: ds.dbm_boundary.sel(dbm_level=lv).values for lv in _LEVELS}
        jam = dict(zip(ds.jamming_estimate.values.tolist(), ds.jamming_inv_sigma_W.values))
        fig = Figure(figsize=(15, 8.4), layout="constrained")
        axes = fig.subplots(2, 3).ravel()
        panels = [
            (mean(last.test_loss), "mean test loss E_S[L] (3.2) (Fig. 2)", True),
            (mean(last.G), "feature memory G(t_f, 0) (3.4) (Fig. 5 left)", False),
            (mean(last.alignment), "alignment h·φ/(|h||φ|) (3.5) (Fig. 5 right)", False),
            (mean(ds.grad_norm), "mean gradient norm at t_f (3.3) (Fig. 3)", True),
            (rate, "λ̄(t_f) per SGD step (4.7) (Fig. 7)", False),
            (ds.dbm_fraction.values, f"fraction converged by (4.15), basis {p.dbm_basis} (Fig. 8)", False),
        ]
        for ax, (Z, title, log) in zip(axes, panels):
            sc.heatmap(ax, fig, T, s, Z, title, log=log, boundaries=bounds, jamming=jam, fraction=ds.dbm_fraction.values,
                       lines={"DBM: fraction = ½ its low-T plateau": ds.dbm_boundary_half.values})
        fig.suptitle(f"SGD phase diagram: {p.members} members, {p.steps} steps, |B| = {p.batch_size}; "
                     "white: DBM boundaries (68/95/99.7 %; dotted: contours of the converged fraction), cyan: converged fraction "
                     "= ½ its low-T plateau, red: jamming σ_z² = ½", fontsize=10)

        sl = Figure(figsize=(15, 4.2), layout="constrained")
        a1, a2, a3 = sl.subplots(1, 3)
        for k, x in enumerate(s):
            for ax, var in ((a1, last.test_loss), (a2, ds.grad_norm)):
                m, se = sc.mean_se(var.values[:, :, k])
                ax.errorbar(T, m, yerr=se, fmt="-o", ms=3, capsize=2, label=f"1/σ_W={x:g}")
        for ax, lab in ((a1, "mean test loss at t_f"), (a2, "mean gradient norm at t_f")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("T = ε/|B|")
            ax.set_ylabel(lab)
            ax.legend(fontsize=7)
        a1.set_title("slices vs T (Figs. 3, 4): error bars = stderr over members", fontsize=9)
        m, se = sc.mean_se(ds.grad_norm_init.isel(T=0).values)
        a3.errorbar(s, m, yerr=se, fmt="-o", ms=3, capsize=2)
        a3.set_xscale("log", base=2)
        a3.set_yscale("log")
        a3.set_xlabel("1/σ_W")
        a3.set_ylabel("gradient norm at initialisation")
        a3.set_title(f"Fig. 4 right: gradient at init (T = {T[0]:g})", fontsize=9)

        ev = Figure(figsize=(16, 4.0), layout="constrained")
        axes = ev.subplots(1, 4)
        t = ds.time.values + 1.0
        for k, ph in enumerate(sc.PHASES):
            ax = axes[k]
            tr = ds.eig_phase.sel(phase=ph).values  # (time, member, level)
            ax.plot(t, tr.reshape(t.size, -1), lw=0.3, alpha=0.4, color=f"C{k}")
            if ph == "ordered":
                for x in ds.teacher_eigenvalues.values.ravel():
                    ax.axhline(x, color="k", ls="--", lw=0.2, alpha=0.3)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("SGD step + 1")
            ax.set_ylabel("eigenvalues x_i of X = W Wᵀ (4.1)")
            ax.set_title(f"{ph}: T={float(ds.phase_T.sel(phase=ph)):g}, "
                         f"1/σ_W={float(ds.phase_inv_sigma_W.sel(phase=ph)):g} (Fig. 6)", fontsize=9)
        n_out, n_in = _setup().spectral_shape
        x = (ds.eig_init.values * np.asarray(s)[None, :, None] ** 2).ravel()  # x/σ_W²: one MP law for every σ_W
        mp = marchenko_pastur(1.0, n_out, n_in)
        axes[3].hist(x, bins=40, density=True, alpha=0.6, label="initial x/σ_W² (all members, all σ_W)")
        grid = np.linspace(mp.x_minus, mp.x_plus, 200)
        axes[3].plot(grid, mp.pdf(grid), "k-", label=f"Marchenko–Pastur (4.2), r = {n_out / n_in:g}")
        axes[3].axvline(mp.x_plus, color="red", ls=":", label="x₊/σ_W²")
        axes[3].set_xlabel("x / σ_W²")
        axes[3].legend(fontsize=7)
        axes[3].set_title("spectrum at initialisation", fontsize=9)
        fe = Figure(figsize=(10, 3.8), layout="constrained")
        b1, b2 = fe.subplots(1, 2)
        edges, counts = feature_histograms(p.seed)
        phi = np.linspace(-0.999, 0.999, 801)
        from ..sgd import feature_density, feature_extrema, feature_potential

        for k, (s2, c) in enumerate(zip(_FEATURE_SZ2, counts)):
            dens = c / (c.sum() * np.diff(edges))
            b1.stairs(dens, edges, color=f"C{k}", alpha=0.4)
            b1.plot(phi, feature_density(phi, s2), color=f"C{k}", label=f"σ_z² = {s2:g}, φ* = {float(feature_extrema(s2)):.2f}")
            b2.plot(phi, feature_potential(phi, s2), color=f"C{k}", label=f"σ_z² = {s2:g}")
        b1.set_ylim(0, 3)
        b1.set_xlabel("φ = tanh z")
        b1.set_ylabel("p(φ)")
        b1.set_title("Fig. 1: law of the features (2.21); histograms: 2e5 samples", fontsize=9)
        b1.legend(fontsize=7)
        b2.set_ylim(-1, 4)
        b2.set_xlabel("φ")
        b2.set_ylabel("V(φ) = (arctanh φ)²/(2σ_z²) + ln(1 − φ²)")
        b2.set_title("single → double well at σ_z² = ½ (§2.3)", fontsize=9)
        b2.legend(fontsize=7)
        return {"phase_diagram.png": fig, "slices.png": sl, "eigenvalues.png": ev, "features.png": fe}
