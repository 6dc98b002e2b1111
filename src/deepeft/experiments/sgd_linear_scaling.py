"""sgd-linear-scaling: the linear scaling rule of SGD (Park, Lucini & Aarts 2025, (2.29)–(2.30)): only T = ε/|B| matters,
so different (ε, |B|) at the same T give the same phase diagram — tested on slices (T at fixed 1/σ_W) of
the loss map that defines the phases (Fig. 2); alignment and G(t_f, 0) are stored and drawn too and can
be checked pointwise (``observables``).

Tasks are chunks of members; a chunk trains every batch size with the same seed, so the members of
all batch sizes share teacher, data and initial weights and only the minibatch noise differs: the
comparison with the reference batch size is a paired difference per member (mean ± stderr over
members), which removes the teacher-to-teacher spread from the error. The rule is a statement about
the continuous time t = (steps)·ε of (2.30): by default every |B| runs steps ∝ 1/|B| (the same t and
the same number of samples seen); with ``equal_time = false`` all run the same number of steps.

Checks. (1) The phase diagram: the loss transition T*(|B|) (mid-point crossing of the log mean loss,
as in sgd-phase-diagram) agrees with T*(reference) within a factor ``transition_factor`` (default 2,
one step of the paper's T grid); stderr by a paired bootstrap over members. (2) Pointwise, in the
small-ε regime where (2.30) is derived (every compared ε ≤ ``max_lr``): the final observables agree
with the reference within |z| < max_z. (3) The time unit of (2.30), a prediction that depends on ε: the
drift of (2.29) is the full-gradient step −ε∇ℒ (the minibatch mean is unbiased), so from each member's
initial weights the first step lowers the training loss by ΔL = −ε|∇ℒ|² + O(ε²), and with ε = T|B| the
ratio −ΔL/(T|B|·|∇ℒ|²) is 1 at every T, |B| with T|B| ≤ ``max_lr``. Measured on full-gradient steps of
size ε, ε/2, ε/4, ε/8 (ε from :func:`~deepeft.sgd.phase_grid`, the code under test) from each member's
initial weights and Richardson-extrapolated to ε → 0 (the minibatch noise, O(ε²) in the drop, would need
~400 members to resolve a few percent); |∇ℒ|² by autodiff (:func:`~deepeft.sgd.gradient_norm`). The
O(ε⁴) remainder enters as an allowance, the last Richardson correction, stated in the rule (measured: the
remainder of the three-step extrapolation grows as ε³, ×8 per doubling, so the corrections converge; at
100 members the deviations stay below the allowance, e.g. 6e-5 vs 3e-4 at ε = 1/4, 1.2e-3 vs 1.4e-3 at
ε = 1/2). Quick preset: ratios 1 to 1.0006, |z| ≤ 1.9; a scaling-rule slip ε × (|B|/2)^0.25 gives 1.189 at
|B| = 4 (|z| ≥ 220) and 1.414 at |B| = 8 (|z| = 3.6e3), while checks (1), (2) stay blind to it (the
converged low-T loss does not depend on ε).

References:
  Park, Lucini & Aarts, Phase diagram and eigenvalue dynamics of stochastic gradient descent in multilayer neural networks (2025)
    arXiv:2509.01349
  (docs/references.md)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DeepEFTInputError
from ..statistics import Z_MAX, agrees, zscore
from . import _sgd_common as sc
from .base import Experiment
from .checks import Check, zcheck
from .config import param
from .registry import register

_OBS = {"test_loss": "test loss", "alignment": "alignment", "G": "G(t_f,0)"}


def _setup():
    from ..sgd import TeacherStudent

    return TeacherStudent.paper()


def _steps(p, B: int) -> int:
    """SGD steps at batch size B: the reference steps, scaled by reference_batch/B under ``equal_time``."""
    return max(1, round(p.steps * p.reference_batch / B)) if p.equal_time else p.steps


#: step sizes of the first-step probe as fractions of ε (halving): Richardson extrapolation to ε → 0
_PROBE = (1.0, 0.5, 0.25, 0.125)


def _first_step(p, seed: int, members: int) -> tuple[np.ndarray, np.ndarray]:
    """ΔL_train(h) = ℒ(θ₀ − h∇ℒ) − ℒ(θ₀) of one full-gradient step of size h = ε·_PROBE (ε from
    :func:`~deepeft.sgd.phase_grid` at each |B|) from every member's initial weights, (batch, member, T, σ, h),
    and |∇ℒ(θ₀)|² (3.3), (batch, member, T, σ)."""
    from ..sgd import phase_grid, train_ensemble

    lr, sw = [], []
    for B in p.batch_sizes:
        g = phase_grid(p.temperatures, p.inv_sigma_W, B)
        for f in _PROBE:
            lr.append(g["learning_rate"] * f)
            sw.append(g["sigma_W"])
    run = train_ensemble(_setup(), np.concatenate(lr), np.concatenate(sw), members=members, steps=1, batch_size=1,
                         method="gd", seed=seed, times=[0, 1])
    d = np.asarray(run.train_loss - run.train_loss_init, np.float64)
    shape = (members, len(p.batch_sizes), len(_PROBE), len(p.temperatures), len(p.inv_sigma_W))
    g2 = np.asarray(run.grad_norm_init, np.float64) ** 2
    return d.reshape(shape).transpose(1, 0, 3, 4, 2), g2.reshape(shape)[:, :, 0].transpose(1, 0, 2, 3)


def _first_step_check(name, eps, dL, grad2, max_z):
    """−E[ΔL]/(ε|∇ℒ|²) = 1 for the drift of (2.29) with ε = T|B| (2.30), per member, averaged over members.

    dL: (member, h) at h = ε·_PROBE (halving). The slopes S(h) = ΔL(h)/h = −|∇ℒ|² + O(h) are Richardson-extrapolated
    (level j: S⁽ʲ⁾(h) = [2ʲS⁽ʲ⁻¹⁾(h/2) − S⁽ʲ⁻¹⁾(h)]/(2ʲ − 1)) to the top level, whose remainder is O(ε^{len(_PROBE)});
    that remainder is bounded by the last correction |S⁽ᵗᵒᵖ⁾(ε) − S⁽ᵗᵒᵖ⁻¹⁾(ε/2)| (ensemble mean; measured: the
    corrections fall by ~2^level per level), stated in the rule as the allowance. ε is the theory's T|B|, not the
    learning rate the trainer used: a slip of the rule shows as a ratio ≠ 1."""
    table = [dL[:, k] / (eps * f) for k, f in enumerate(_PROBE)]
    prev = table
    for j in range(1, len(_PROBE)):
        prev, table = table, [(2**j * table[k + 1] - table[k]) / (2**j - 1) for k in range(len(table) - 1)]
    ratio, last = -table[0] / grad2, -prev[1] / grad2
    m, se = sc.mean_se(ratio)
    allow = float(abs(m - last.mean()))
    ok = bool(np.isfinite(m) and agrees(m - 1.0, se, max_z=max_z, allowance=allow))
    return Check(name, 1.0, float(m), float(se), float(zscore(m - 1.0, se)), ok,
                 f"|sim − 1| < {max_z:g}·stderr + {allow:.2g} (allowance: the O(ε^{len(_PROBE)}) Richardson remainder, "
                 "bounded by the last correction)", "prediction")


def _transition_ratio_check(name, T, loss_b, loss_ref, factor: float, seed: int):
    """T*(|B|)/T*(reference) (mid-point crossings of the log mean loss) within a factor; members paired."""

    def ratio(idx):
        return sc.transition_temperature(T, loss_b[idx].mean(0)) / sc.transition_temperature(T, loss_ref[idx].mean(0))

    return sc.factor_check(name, ratio, loss_b.shape[0], factor, "T*(|B|)/T*(ref)", seed)


@register
class SGDLinearScaling(Experiment):
    name = "sgd-linear-scaling"
    description = "SGD linear scaling rule: same T = eps/|B| from different (eps, |B|) gives the same phase-diagram slice"
    references = "Park, Lucini & Aarts 2025 (2.29), (2.30), (3.2), (3.4), (3.5)"
    order = 301

    @dataclasses.dataclass(frozen=True)
    class Params:
        temperatures: tuple[float, ...] = param((2.0**-5, 0.125, 1.0, 4.0), "temperatures T = ε/|B| (increasing)",
                                                min=0.0)
        inv_sigma_W: tuple[float, ...] = param((8.0,), "initial-weight scales 1/σ_W (increasing)", min=0.0)
        batch_sizes: tuple[int, ...] = param((2, 4, 8), "minibatch sizes |B| (ε = T|B|)", min=1, max=4000)
        reference_batch: int = param(4, "the batch size the others are compared with (the paper's 4)", min=1)
        members: int = param(16, "ensemble size", min=2)
        members_per_task: int = param(8, "members per task (each task trains every batch size)", min=1)
        steps: int = param(10_000, "SGD steps t_f of the reference batch size", min=1)
        equal_time: bool = param(True, "compare at equal continuous time t = steps·ε (2.30), i.e. steps ∝ 1/|B| "
                                       "(equal samples seen); false: equal steps for every |B|")
        n_records: int = param(10, "log-spaced recording times", min=2)
        observables: tuple[str, ...] = param(("test_loss",), "observables compared by checks (all are stored and drawn)",
                                             choices=tuple(_OBS), analysis=True)
        max_z: float = param(Z_MAX, "pass when |z| < max_z for the paired differences", min=1.0, analysis=True)
        max_lr: float = param(0.5, "pointwise checks only where every compared ε ≤ max_lr (the small-ε regime of "
                                   "(2.30))", min=0.0, analysis=True)
        transition_factor: float = param(2.0, "allowed factor between T*(|B|) and T*(reference_batch)", min=1.0,
                                         analysis=True)
        seed: int = param(0, "experiment seed; chunk i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            sc.check_grid(self.temperatures, "temperatures")
            sc.check_grid(self.inv_sigma_W, "inv_sigma_W")
            sc.check_grid(self.batch_sizes, "batch_sizes")
            if self.reference_batch not in self.batch_sizes:
                raise DeepEFTInputError(f"reference_batch {self.reference_batch} must be one of batch_sizes "
                                        f"{list(self.batch_sizes)}.")
            if len(self.batch_sizes) < 2:
                raise DeepEFTInputError("list at least two batch_sizes to compare.")

    presets = {
        "quick": {},
        "paper": {"temperatures": tuple(float(2.0**k) for k in range(-5, 7)), "inv_sigma_W": (1.0, 8.0),
                  "batch_sizes": (1, 2, 4, 8, 16), "members": 100, "members_per_task": 10, "steps": 100_000,
                  "n_records": 20},
    }

    def tasks(self, p):
        return sc.member_tasks(p.members, p.members_per_task)

    def compute(self, p, task, ctx):
        seed = sc.chunk_seed(ctx)
        per_b = [sc.train_chunk(_setup(), p.temperatures, p.inv_sigma_W, batch_size=B, members=task["members"],
                                steps=_steps(p, B), n_records=p.n_records, seed=seed, dbm_basis=None)
                 for B in p.batch_sizes]
        out = {}
        for k in ("test_loss", "G", "alignment", "grad_norm"):
            dims, _ = per_b[0][k]
            arr = np.stack([r[k][1] if "time" not in r[k][0] else r[k][1][-1] for r in per_b])
            dims = tuple(d for d in dims if d != "time")
            out[k] = (("batch", *dims), arr)
        dL, g2 = _first_step(p, seed, task["members"])
        out["first_step_dL"] = (("batch", "member", "T", "inv_sigma_W", "h"), dL)
        out["grad2_init"] = (("batch", "member", "T", "inv_sigma_W"), g2)
        return out

    def assemble(self, p, tasks, results):
        import xarray as xr

        _, (merged,) = sc.concat_members(results)
        coords = {"batch": list(p.batch_sizes), "member": np.arange(p.members), "T": list(p.temperatures),
                  "inv_sigma_W": list(p.inv_sigma_W), "h": list(_PROBE)}
        return xr.Dataset(dict(merged), coords=coords)

    def analyze(self, p, ds):
        checks = []
        ref = ds.sel(batch=p.reference_batch)
        T = np.asarray(p.temperatures)
        for B in p.batch_sizes:
            for t in T:
                if t * B > p.max_lr:
                    continue
                for s in p.inv_sigma_W:
                    sel = {"batch": B, "T": t, "inv_sigma_W": s}
                    checks.append(_first_step_check(
                        f"first-step loss drop −ΔL/(T|B|·|∇ℒ|²) = 1 at T={t:g}, 1/σ_W={s:g}, |B|={B} (ε = T|B| (2.30))",
                        t * B, ds.first_step_dL.sel(sel).transpose("member", "h").values,
                        ds.grad2_init.sel(sel).values, p.max_z))
            if B == p.reference_batch:
                continue
            other = ds.sel(batch=B)
            for j, s in enumerate(p.inv_sigma_W):
                if T.size >= 2:
                    checks.append(_transition_ratio_check(
                        f"loss transition T* at 1/σ_W={s:g}: |B|={B} / |B|={p.reference_batch} (same phase diagram)",
                        T, other.test_loss.isel(inv_sigma_W=j).transpose("member", "T").values,
                        ref.test_loss.isel(inv_sigma_W=j).transpose("member", "T").values, p.transition_factor,
                        p.seed))
            for k in p.observables:
                label = _OBS[k]
                d = (other[k] - ref[k]).transpose("member", "T", "inv_sigma_W").values
                m, se = sc.mean_se(d)
                for i, t in enumerate(T):
                    if max(t * B, t * p.reference_batch) > p.max_lr:
                        continue  # outside the small-ε regime: covered by the transition check
                    for j, s in enumerate(p.inv_sigma_W):
                        checks.append(zcheck(f"{label} at T={t:g}, 1/σ_W={s:g}: |B|={B} (ε={t * B:g}) − "
                                             f"|B|={p.reference_batch} (ε={t * p.reference_batch:g})",
                                             0.0, m[i, j], se[i, j], max_z=p.max_z))
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        T = np.asarray(p.temperatures)
        fig = Figure(figsize=(4.6 * (len(_OBS) + 1), 3.8), layout="constrained")
        axes = fig.subplots(1, len(_OBS) + 1)
        for ax, (k, label) in zip(axes, _OBS.items()):
            for jb, B in enumerate(p.batch_sizes):
                for j, s in enumerate(p.inv_sigma_W):
                    m, se = sc.mean_se(ds[k].sel(batch=B).isel(inv_sigma_W=j).transpose("member", "T").values)
                    ax.errorbar(T * (1 + 0.04 * (jb - len(p.batch_sizes) / 2)), m, yerr=se, fmt="-o", ms=3, capsize=2,
                                label=f"|B|={B}, 1/σ_W={s:g}")
            ax.set_xscale("log", base=2)
            if k == "test_loss":
                ax.set_yscale("log")
            ax.set_xlabel("T = ε/|B|")
            ax.set_ylabel(f"mean {label} at t_f")
            ax.legend(fontsize=6)
        axes[0].set_title("linear scaling rule: same T, different (ε, |B|)", fontsize=9)
        ax = axes[-1]
        Bs = np.asarray(p.batch_sizes, float)
        for j, s in enumerate(p.inv_sigma_W):
            L = ds.test_loss.isel(inv_sigma_W=j).transpose("batch", "member", "T").values
            def t_star(idx, L=L):
                return np.array([sc.transition_temperature(T, L[b][idx].mean(0)) for b in range(Bs.size)])

            ax.errorbar(Bs, t_star(np.arange(L.shape[1])), yerr=sc.bootstrap_se(t_star, L.shape[1], p.seed, 100),
                        fmt="-o", ms=3, capsize=2, label=f"1/σ_W={s:g}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("|B| (ε = T|B|)")
        ax.set_ylabel("loss transition T*")
        ax.set_title("the phase diagram per |B|: T* (bootstrap errors)", fontsize=9)
        ax.legend(fontsize=6)
        return {"linear_scaling.png": fig}
