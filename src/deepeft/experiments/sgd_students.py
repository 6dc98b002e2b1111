"""sgd-students: the SGD phase diagram of ReLU and GELU students beside the tanh one (Park, Lucini & Aarts 2025,
outlook: "activation functions of the ReLU type are only bounded on one side, which will affect the phase
structure"; issue 18 item 3).

The paper's teacher–student setup (3-32-16-1, only W^{(2)} trainable, |D| = 4000, |B| = 4) with the activation
of teacher *and* student replaced (the student copies the teacher's frozen layers, so both must share it; the
teacher keeps C_W = 1). Tasks: activation × member chunk; every task trains the T × 1/σ_W grid with the
observables of ``sgd-phase-diagram``: test loss (3.2) — here also relative to the zero predictor's loss
ℒ₀ = ½E[y²], since the activations' teachers have different output scales —, the feature memory
G(t_f, 0) (3.4) as the correlation coefficient G(t_f, 0)/√(G(t_f, t_f)G(0, 0)) (G itself scales with σ_W²
for ReLU), alignment (3.5), gradient norms (3.3), λ̄ (4.7), and the DBM test (4.15).

Phases per grid point (ensemble means): *ordered* ℒ/ℒ₀ ≤ ``ordered_level``; *diverged* a non-finite or
≥ ``diverged_level``·ℒ₀ loss; *dead* (ReLU) every feature zero at t_f (G(t_f, t_f) = 0: the network
outputs 0, ℒ = ℒ₀); otherwise *jamming* when the memory correlation ≥ ``memory_level``, else *paramagnetic*.

Checks. Predictions: positive homogeneity of ReLU, φ(σz) = σφ(z) and φ′(σz) = φ′(z), makes the gradient at
initialisation exactly affine in σ_W for the common-random-number draws, ∇ℒ(σ) = σB − A, so E‖∇ℒ‖² is a
quadratic in σ_W: the value at an interior σ_W is predicted from three others (checked for ReLU; the tanh
students violate it, which the tests use to show the check can fail); the exact finite-size Marchenko–Pastur moments of
the initial spectrum (4.2). Findings (what the run establishes, rule stated with the measured direction):
the tanh corners as in ``sgd-phase-diagram``; the ReLU and GELU jamming corner learns (ℒ(t_f)/ℒ(0) ≪ the
tanh one: no σ_z² = ½ saturation); the high-T fate of each unbounded activation (ReLU: most students
die, GELU: diverged); the loss transition T* at 1/σ_W = 8 per activation (resolution: a grid window).

Figures: per activation (rows) heat maps of ℒ/ℒ₀, memory, alignment, DBM converged fraction and the phase
map; loss vs T at the largest and smallest 1/σ_W for all activations.

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
from .checks import Check, close_check
from .config import param
from .registry import register

#: phase labels of :func:`classify` (index = code in the stored ``phase_code``)
PHASE_NAMES = ("ordered", "paramagnetic", "jamming", "dead", "diverged")
#: σ_W values the ReLU homogeneity prediction needs: a quadratic in σ_W through three, predicted at a fourth
HOMOGENEITY_POINTS = 4


def _setup(activation: str):
    from ..sgd import TeacherStudent

    return TeacherStudent.build((3, 32, 16, 1), activation, (2,))


def memory_correlation(G, G_self_t, G_self_0):
    """G(t, 0)/√(G(t, t) G(0, 0)) (3.4) normalised: 1 = features unchanged, 0 = memory erased; NaN where the
    features vanish (dead ReLU network)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(G) / np.sqrt(np.asarray(G_self_t) * np.asarray(G_self_0))


def classify(rel_loss, memory, alive, *, ordered_level: float, diverged_level: float, memory_level: float):
    """Phase code per grid point (index into PHASE_NAMES) from ensemble means: relative loss ℒ/ℒ₀, memory
    correlation and the fraction of models with non-zero features at t_f (``alive``)."""
    from ..sgd.regimes import regime_codes  # the three phases: one rule (sgd.sgd_regime)

    r, a = np.asarray(rel_loss, np.float64), np.asarray(alive, np.float64)
    code = regime_codes(r, memory, learned=ordered_level, memory_threshold=memory_level)
    code = np.where((a < 0.5) & (code != 0), 3, code)  # dead features, unless the loss was learned anyway
    return np.where(~np.isfinite(r) | (r >= diverged_level), 4, code)


def affine_gradient_check(name: str, inv_sigma_W, grad_norm_init, *, rtol: float) -> Check:
    """E‖∇ℒ‖² at init is a quadratic in σ_W (ReLU homogeneity): predicted at an interior σ_W from three others
    (the two extremes and the other interior point nearest the largest σ_W), Lagrange interpolation. Needs
    ``HOMOGENEITY_POINTS`` = 4 values of σ_W (``SGDStudents.Params`` asks for them when ReLU is listed)."""
    s = 1.0 / np.asarray(inv_sigma_W, np.float64)
    if s.size < HOMOGENEITY_POINTS:
        raise DeepEFTInputError(_too_few_sigmas(s.size))
    g2 = (np.asarray(grad_norm_init, np.float64) ** 2).mean(0)  # (σ,) mean over members of ‖∇ℒ‖²
    order = np.argsort(s)
    k = order[-2]  # interior point predicted ...
    nodes = [order[0], order[1] if order[1] != k else order[2], order[-1]]  # ... from three others
    x, y = s[nodes], g2[nodes]
    pred = sum(y[i] * np.prod([(s[k] - x[j]) / (x[i] - x[j]) for j in range(3) if j != i]) for i in range(3))
    return close_check(f"{name}E‖∇ℒ‖² at init is quadratic in σ_W: value at 1/σ_W={1 / s[k]:g} from 1/σ_W="
                       f"{', '.join(f'{1 / v:g}' for v in x)}", pred, g2[k], rtol=rtol, kind="prediction")


def _too_few_sigmas(n: int) -> str:
    return (f"the ReLU homogeneity prediction (E‖∇ℒ‖² at init quadratic in σ_W: three values fix the quadratic, a "
            f"fourth tests it) needs at least {HOMOGENEITY_POINTS} values of inv_sigma_W, got {n}; list "
            f"{HOMOGENEITY_POINTS} or more (e.g. inv_sigma_W=[0.00390625, 0.25, 2.0, 8.0]) or drop 'relu' from "
            "activations.")


@register
class SGDStudents(Experiment):
    name = "sgd-students"
    description = "SGD phase diagram of tanh, ReLU and GELU students: where the ordered, paramagnetic and jamming phases move"
    references = "Park, Lucini & Aarts 2025 §2.3, §3, (4.15), outlook (ReLU-type activations)"
    order = 304

    @dataclasses.dataclass(frozen=True)
    class Params:
        activations: tuple[str, ...] = param(("tanh", "relu", "gelu"), "activations of teacher and student")
        temperatures: tuple[float, ...] = param((2.0**-5, 0.5, 2.0, 64.0), "temperatures T = ε/|B| (increasing)",
                                                min=0.0)
        inv_sigma_W: tuple[float, ...] = param((2.0**-8, 0.25, 2.0, 8.0), "initial-weight scales 1/σ_W (increasing)",
                                               min=0.0)
        batch_size: int = param(4, "minibatch size |B| (ε = T|B|)", min=1, max=4000)
        members: int = param(8, "ensemble size per activation", min=2)
        members_per_task: int = param(8, "members per task", min=1)
        steps: int = param(3000, "SGD steps t_f", min=1)
        n_records: int = param(8, "log-spaced recording times", min=2)
        dbm_basis: str = param("K", "basis of the DBM coefficients (appendix B: K)", choices=("K", "X"))
        ordered_level: float = param(0.05, "ordered phase: ℒ/ℒ₀ ≤ this (ℒ₀ = ½E[y²], the zero predictor)", min=0.0,
                                     analysis=True)
        diverged_level: float = param(1e3, "diverged phase: ℒ/ℒ₀ ≥ this or non-finite", min=1.0, analysis=True)
        memory_level: float = param(0.5, "jamming (memory kept): G(t_f,0)/√(G(t_f,t_f)G(0,0)) ≥ this", min=0.0,
                                    max=1.0, analysis=True)
        learn_ratio: float = param(10.0, "finding: tanh ℒ(t_f)/ℒ(0) in the jamming corner ≥ this × the ReLU/GELU one",
                                   min=1.0, analysis=True)
        homogeneity_rtol: float = param(1e-3, "ReLU: allowed relative error of the quadratic law of E‖∇ℒ‖² "
                                              "(float32 gradients)", min=0.0, analysis=True)
        transition_range: tuple[float, ...] = param((0.125, 8.0), "allowed [lo, hi] of the transition T* at 1/σ_W = 8",
                                                    min=0.0, analysis=True)
        min_z: float = param(Z_CLAIM, "ordering checks: one-sided significance z ≥ min_z", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound of the exact-moment checks", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            from ..activations import available_activations

            known = available_activations()
            bad = [a for a in self.activations if a not in known]
            if bad or not self.activations or len(set(self.activations)) != len(self.activations):
                raise DeepEFTInputError(f"activations must list known activations once each; unknown: {bad}. "
                                        f"Known: {known}.")
            sc.check_grid(self.temperatures, "temperatures")
            sc.check_grid(self.inv_sigma_W, "inv_sigma_W")
            if len(self.temperatures) < 2 or len(self.inv_sigma_W) < 2:
                raise DeepEFTInputError("list at least 2 temperatures and 2 values of inv_sigma_W.")
            if "relu" in self.activations and len(self.inv_sigma_W) < HOMOGENEITY_POINTS:
                raise DeepEFTInputError(_too_few_sigmas(len(self.inv_sigma_W)))
            if len(self.transition_range) != 2 or not 0 < self.transition_range[0] < self.transition_range[1]:
                raise DeepEFTInputError(f"transition_range must be [lo, hi] with 0 < lo < hi, got {list(self.transition_range)}.")

    presets = {
        "quick": {},
        "paper": {"temperatures": tuple(float(2.0**k) for k in range(-5, 7)),
                  "inv_sigma_W": tuple(float(2.0**k) for k in range(-8, 4)),
                  "members": 100, "members_per_task": 10, "steps": 100_000, "n_records": 30},
    }

    def tasks(self, p):
        out = []
        for a, act in enumerate(p.activations):
            out += sc.member_tasks(p.members, p.members_per_task, act_index=a, activation=act)
        return out

    def compute(self, p, task, ctx):
        from ..sgd import sample_problem

        setup = _setup(task["activation"])
        seed = sc.chunk_seed(ctx)
        r = sc.train_chunk(setup, p.temperatures, p.inv_sigma_W, batch_size=p.batch_size, members=task["members"],
                           steps=p.steps, n_records=p.n_records, seed=seed, dbm_basis=p.dbm_basis)
        out = {}
        for k in ("test_loss", "G", "G_self", "alignment", "spacing"):  # keep t = 0 and t_f only
            dims, a = r[k]
            out[k + "_0"], out[k] = (dims[1:], a[0]), (dims[1:], a[-1])
        for k in ("grad_norm", "grad_norm_init", "train_loss", "train_loss_init", "K_S", "V_S", "converged",
                  "eig_init"):
            out[k] = r[k]
        y = np.asarray(sample_problem(setup, task["members"], seed).y_test, np.float64)
        out["zero_loss"] = (("member",), 0.5 * (y**2).sum(-1).mean(-1))  # ℒ₀ = ½E[y²]: loss of ŷ = 0
        return out

    def assemble(self, p, tasks, results):
        import xarray as xr

        _, merged = sc.concat_members(results, [t["act_index"] for t in tasks])
        data = {k: (("activation", *dims), np.stack([m[k][1] for m in merged])) for k, (dims, _) in merged[0].items()}
        coords = {"activation": list(p.activations), "member": np.arange(p.members), "T": list(p.temperatures),
                  "inv_sigma_W": list(p.inv_sigma_W), "level": np.arange(1, 17)}
        ds = xr.Dataset(data, coords=coords)
        return ds.assign(**self._derived(p, ds))

    def _derived(self, p, ds) -> dict:
        rel = ds.test_loss / ds.zero_loss
        mem = memory_correlation(ds.G.values, ds.G_self.values, ds.G_self_0.values)
        dims = ("activation", "member", "T", "inv_sigma_W")
        return {"rel_loss": rel, "memory": (dims, mem), "alive": (dims, (ds.G_self.values > 0).astype(np.int8))}

    # -- analysis ---------------------------------------------------------------------------------

    def _means(self, ds, a):
        d = ds.isel(activation=a)
        with np.errstate(invalid="ignore"), _quiet():
            rel = np.nanmean(np.where(np.isfinite(d.rel_loss.values), d.rel_loss.values, np.inf), 0)
            mem = np.nanmean(d.memory.values, 0)
        alive = d.alive.values.mean(0)
        return rel, mem, alive

    def phase_map(self, p, ds, a):
        rel, mem, alive = self._means(ds, a)
        return classify(rel, mem, alive, ordered_level=p.ordered_level, diverged_level=p.diverged_level,
                        memory_level=p.memory_level)

    def analyze(self, p, ds):
        T, s = np.asarray(p.temperatures), np.asarray(p.inv_sigma_W)
        acts = list(p.activations)
        so, k8 = len(s) - 1, sc.nearest(s, 8.0)
        checks: list[Check] = []
        learn = {}
        for a, act in enumerate(acts):
            d = ds.isel(activation=a)
            maps = self.phase_map(p, ds, a)
            o = (0, so)
            rl = d.rel_loss.values
            loss, se = sc.mean_se(np.where(np.isfinite(rl), rl, np.nan))
            checks.append(Check(f"{act}: ordered corner (T={T[0]:g}, 1/σ_W={s[so]:g}) is ordered: ℒ/ℒ₀ ≤ "
                                f"{p.ordered_level:g}", None, float(loss[o]), float(se[o]), None,
                                bool(loss[o] <= p.ordered_level), "finding: the students learn at low T and small σ_W",
                                "finding"))
            lt = d.train_loss.values / d.train_loss_init.values  # ℒ(t_f)/ℒ(0) on the training set, per member
            learn[act] = sc.mean_se(np.log10(lt[:, 0, 0]))
            col = d.test_loss.values[:, :, k8]
            if np.all(np.isfinite(col)):
                checks.append(sc.transition_check(f"{act}: loss transition T* at 1/σ_W={s[k8]:g}", T, col,
                                                  *p.transition_range, rng_seed=p.seed))
            hot = maps[-1]  # the highest T row: the high-temperature fate of the activation
            fate = {0: "ordered", 1: "paramagnetic", 2: "jamming", 3: "dead", 4: "diverged"}
            names = sorted({fate[int(c)] for c in hot})
            if act == "relu":
                dead = 1.0 - d.alive.values[:, -1, :].mean()
                checks.append(Check(f"relu: at T={T[-1]:g} the students die (every feature 0 at t_f, ℒ = ℒ₀): "
                                    "fraction of dead models over the 1/σ_W row", 1.0, float(dead), None, None,
                                    bool(dead >= 0.5), "finding: fraction ≥ ½ (measured phases in that row: "
                                    f"{', '.join(names)})", "finding"))
                checks.append(affine_gradient_check("relu: ", s, d.grad_norm_init.values[:, 0, :],
                                                    rtol=p.homogeneity_rtol))
            elif act == "gelu":
                frac = float(np.mean(~np.isfinite(d.test_loss.values[:, -1, :])
                                     | (d.rel_loss.values[:, -1, :] >= p.diverged_level)))
                checks.append(Check(f"gelu: at T={T[-1]:g} the students diverge (ℒ/ℒ₀ ≥ {p.diverged_level:g} or "
                                    "non-finite): fraction over the 1/σ_W row", 1.0, frac, None, None,
                                    bool(frac >= 0.5), f"finding: fraction ≥ 0.5 (measured phases in that row: "
                                    f"{', '.join(names)})", "finding"))
            elif act == "tanh":
                mem_j, mem_j_se = sc.mean_se(d.memory.values[:, 0, 0])
                checks.append(Check(f"tanh: jamming corner (T={T[0]:g}, 1/σ_W={s[0]:g}) keeps its memory: "
                                    f"G(t_f,0)/√(G(t_f,t_f)G(0,0)) ≥ {p.memory_level:g}", None, float(mem_j),
                                    float(mem_j_se), None,
                                    bool(mem_j >= p.memory_level), "finding (the paper's jamming phase, §3)", "finding"))
        if "tanh" in acts:
            for act in acts:
                if act == "tanh":
                    continue
                (m_t, se_t), (m_a, se_a) = learn["tanh"], learn[act]
                checks.append(sc.greater_check(
                    f"{act} vs tanh: the jamming corner (T={T[0]:g}, 1/σ_W={s[0]:g}) learns — log10 ℒ(t_f)/ℒ(0) of tanh "
                    f"exceeds the {act} one by ≥ log10 {p.learn_ratio:g} (no σ_z² = ½ saturation)",
                    m_t - math.log10(p.learn_ratio), se_t, m_a, se_a, min_z=p.min_z, what="log10-ratio difference"))
        eig = ds.eig_init.isel(activation=0).values
        checks += sc.mp_checks("", eig, s, 16, 32, edge_rtol=0.2, max_z=p.max_z)
        return checks

    # -- figures ----------------------------------------------------------------------------------

    def figures(self, p, ds):
        from matplotlib.colors import ListedColormap
        from matplotlib.figure import Figure

        T, s = np.asarray(p.temperatures), np.asarray(p.inv_sigma_W)
        acts = list(p.activations)
        fig = Figure(figsize=(19, 3.6 * len(acts)), layout="constrained")
        axes = np.atleast_2d(fig.subplots(len(acts), 5))
        cmap = ListedColormap(["tab:green", "tab:red", "tab:blue", "0.3", "k"])
        for a, act in enumerate(acts):
            rel, mem, _ = self._means(ds, a)
            frac = ds.converged.isel(activation=a).mean("member").values
            with _quiet():
                al = np.nanmean(ds.alignment.isel(activation=a).values, 0)
            sc.heatmap(axes[a, 0], fig, T, s, np.where(np.isfinite(rel), rel, np.nan), f"{act}: test loss ℒ/ℒ₀ (3.2)",
                       log=True)
            sc.heatmap(axes[a, 1], fig, T, s, mem, f"{act}: memory G(t_f,0)/√(G(t_f,t_f)G(0,0)) (3.4)", log=False)
            sc.heatmap(axes[a, 2], fig, T, s, al, f"{act}: alignment (3.5)", log=False)
            sc.heatmap(axes[a, 3], fig, T, s, frac, f"{act}: fraction converged by (4.15)", log=False)
            sc.heatmap(axes[a, 4], fig, T, s, self.phase_map(p, ds, a).astype(float), f"{act}: phase", log=False,
                       cmap=cmap, cbar_label="phase code")
            axes[a, 4].collections[0].set_clim(-0.5, 4.5)
        fig.suptitle(f"SGD students: {p.members} members, {p.steps} steps, |B| = {p.batch_size}; phase codes 0 ordered "
                     "(green), 1 paramagnetic (red), 2 jamming (blue), 3 dead (grey), 4 diverged (black): ℒ/ℒ₀ ≤ "
                     f"{p.ordered_level:g} ordered, memory ≥ {p.memory_level:g} jamming, all features 0 dead, "
                     f"ℒ/ℒ₀ ≥ {p.diverged_level:g} diverged", fontsize=10)
        sl = Figure(figsize=(12, 4.0), layout="constrained")
        axs = sl.subplots(1, 2)
        for j, ax in zip((len(s) - 1, 0), axs):
            for a, act in enumerate(acts):
                r = ds.rel_loss.isel(activation=a, inv_sigma_W=j).values
                m, se = sc.mean_se(np.where(np.isfinite(r), r, np.nan))  # NaN where a model diverged
                ax.errorbar(T, m, yerr=se, fmt="-o", ms=3, capsize=2, label=act)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("T = ε/|B|")
            ax.set_ylabel("mean test loss ℒ/ℒ₀ at t_f")
            ax.set_title(f"1/σ_W = {s[j]:g} (error bars: stderr over members)", fontsize=9)
            ax.legend(fontsize=8)
        return {"students.png": fig, "students_slices.png": sl}


class _quiet:
    """Silence NumPy's 'mean of empty slice' warnings (columns where every model diverged)."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)
