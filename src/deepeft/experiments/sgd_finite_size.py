"""sgd-finite-size: the SGD phase structure of the tanh teacher–student network at wider hidden layers
(Park, Lucini & Aarts 2025, outlook: "wider architectures may lead to more pronounced phase boundaries").

Widths (n_0, n_1, n_2, n_3) = (3, n_1, n_2, 1) with r = n_2/n_1 fixed by the listed pairs, only W^{(2)}
trainable, on a small T × 1/σ_W slice (ordered, paramagnetic and jamming corners and the T ~ 1
transition at 1/σ_W = 8). Tasks: width × member chunk. Checks per width: the ordered corner's loss
≥ 100× below the paramagnetic (every T ≥ 4) and jamming corners; the loss transition T* within the
stated range; the Marchenko–Pastur edge x₊ (4.2) against the measured largest eigenvalue at
initialisation and the exact finite-size moments; across widths, the measured edge approaches x₊
(Tracy–Widom shift ∝ n^{-2/3}). Figures: loss vs T per width with error bars, the edge deviation vs width.

References:
  Park, Lucini & Aarts, Phase diagram and eigenvalue dynamics of stochastic gradient descent in multilayer neural networks (2025)
    arXiv:2509.01349
  (docs/references.md)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import DeepEFTInputError
from ..statistics import Z_MAX
from . import _sgd_common as sc
from .base import Experiment
from .checks import Check
from .config import param
from .registry import register


def _setup(n1: int, n2: int):
    from ..sgd import TeacherStudent

    return TeacherStudent.build((3, n1, n2, 1), "tanh", (2,))


@register
class SGDFiniteSize(Experiment):
    name = "sgd-finite-size"
    description = "SGD phase structure at wider hidden layers (n1, n2): corners, transition, Marchenko-Pastur edge"
    references = "Park, Lucini & Aarts 2025 §3, (4.2), outlook (wider networks)"
    order = 302

    @dataclasses.dataclass(frozen=True)
    class Params:
        n1: tuple[int, ...] = param((32, 64, 128), "first hidden widths n_1 (paired with n2)", min=2)
        n2: tuple[int, ...] = param((16, 32, 64), "second hidden widths n_2 (the spectral layer's output)", min=2)
        temperatures: tuple[float, ...] = param((2.0**-5, 0.25, 1.0, 4.0), "temperatures T = ε/|B| (increasing)",
                                                min=0.0)
        inv_sigma_W: tuple[float, ...] = param((2.0**-8, 8.0), "initial-weight scales 1/σ_W (increasing)", min=0.0)
        batch_size: int = param(4, "minibatch size |B|", min=1, max=4000)
        members: int = param(8, "ensemble size per width", min=2)
        members_per_task: int = param(8, "members per task", min=1)
        steps: int = param(10_000, "SGD steps t_f", min=1)
        n_records: int = param(10, "log-spaced recording times", min=2)
        paramagnetic_T: float = param(4.0, "paramagnetic corner: every grid T ≥ this", min=0.0)
        loss_ratio: float = param(50.0, "required loss ratio other corner / ordered corner, significant at z ≥ 3 on the "
                                        "log scale (measured ≈ 200 ± 45 at 8 members: 100 is not resolved at 3σ)",
                                  min=1.0, analysis=True)
        transition_range: tuple[float, ...] = param((0.125, 4.0), "allowed [lo, hi] of the transition T* at 1/σ_W = 8",
                                                    min=0.0, analysis=True)
        edge_rtol: float = param(0.2, "allowed |x_max/x₊ − 1| of the measured MP edge at init", min=0.0, analysis=True)
        max_z: float = param(Z_MAX, "z-score bound of the exact-moment checks", min=1.0, analysis=True)
        seed: int = param(0, "experiment seed; task i uses SeedSequence(seed, spawn_key=(i,))", min=0)

        def __post_init__(self):
            if len(self.n1) != len(self.n2) or not self.n1:
                raise DeepEFTInputError(
                    f"n1 and n2 must list the same number of widths, got {list(self.n1)} and {list(self.n2)}."
                )
            if len(set(zip(self.n1, self.n2))) != len(self.n1):
                raise DeepEFTInputError("each (n1, n2) pair must be listed once.")
            sc.check_grid(self.temperatures, "temperatures")
            sc.check_grid(self.inv_sigma_W, "inv_sigma_W")
            if len(self.temperatures) < 2:
                raise DeepEFTInputError("list at least 2 temperatures.")
            if len(self.transition_range) != 2 or not 0 < self.transition_range[0] < self.transition_range[1]:
                raise DeepEFTInputError(f"transition_range must be [lo, hi] with 0 < lo < hi, got {list(self.transition_range)}.")

    presets = {
        "quick": {},
        "paper": {"n1": (32, 64, 128, 256), "n2": (16, 32, 64, 128),
                  "temperatures": tuple(float(2.0**k) for k in range(-5, 7)),
                  "inv_sigma_W": tuple(float(2.0**k) for k in (-8, -4, 0, 3)),
                  "members": 100, "members_per_task": 10, "steps": 100_000, "n_records": 20},
    }

    def tasks(self, p):
        out = []
        for w, (a, b) in enumerate(zip(p.n1, p.n2)):
            out += sc.member_tasks(p.members, p.members_per_task, width=w, n1=a, n2=b)
        return out

    def compute(self, p, task, ctx):
        r = sc.train_chunk(_setup(task["n1"], task["n2"]), p.temperatures, p.inv_sigma_W, batch_size=p.batch_size,
                           members=task["members"], steps=p.steps, n_records=p.n_records, seed=sc.chunk_seed(ctx),
                           dbm_basis=None)
        keep = ("test_loss", "G", "alignment", "grad_norm")
        out = {k: (r[k][0][1:], r[k][1][-1]) if r[k][0][0] == "time" else r[k] for k in keep}
        e = r["eig_init"][1]  # (member, σ, level): reduce to width-independent shapes
        out["x_max_init"] = (("member", "inv_sigma_W"), e.max(-1))
        out["x_m1_init"] = (("member", "inv_sigma_W"), e.mean(-1))
        out["x_m2_init"] = (("member", "inv_sigma_W"), (e**2).mean(-1))
        return out

    def assemble(self, p, tasks, results):
        import xarray as xr

        _, merged = sc.concat_members(results, [t["width"] for t in tasks])
        data = {k: (("width", *dims), np.stack([m[k][1] for m in merged])) for k, (dims, _) in merged[0].items()}
        coords = {"width": np.arange(len(p.n1)), "member": np.arange(p.members), "T": list(p.temperatures),
                  "inv_sigma_W": list(p.inv_sigma_W)}
        ds = xr.Dataset(data, coords=coords)
        return ds.assign_coords(n1=("width", list(p.n1)), n2=("width", list(p.n2)))

    def analyze(self, p, ds):
        from ..sgd import marchenko_pastur
        from .checks import zcheck

        T, s = np.asarray(p.temperatures), np.asarray(p.inv_sigma_W)
        checks, dev = [], []
        so = len(s) - 1
        hot = [i for i, t in enumerate(T) if t >= p.paramagnetic_T]
        k8 = sc.nearest(s, 8.0)
        for w, (n1, n2) in enumerate(zip(p.n1, p.n2)):
            pt = ds.isel(width=w)
            loss, se = sc.mean_se(pt.test_loss.values)
            tag = f"n1={n1}, n2={n2}"
            for i in hot:
                checks.append(sc.ratio_check(f"{tag}: loss paramagnetic (T={T[i]:g}, 1/σ_W={s[so]:g}) / ordered ≥ "
                                             f"{p.loss_ratio:g}", loss[i, so], se[i, so], loss[0, so], se[0, so],
                                             p.loss_ratio, "loss ratio"))
            if len(s) > 1:
                checks.append(sc.ratio_check(f"{tag}: loss jamming (T={T[0]:g}, 1/σ_W={s[0]:g}) / ordered ≥ "
                                             f"{p.loss_ratio:g}", loss[0, 0], se[0, 0], loss[0, so], se[0, so],
                                             p.loss_ratio, "loss ratio"))
            checks.append(sc.transition_check(f"{tag}: transition T* of the loss at 1/σ_W={s[k8]:g}", T,
                                              pt.test_loss.values[:, :, k8], *p.transition_range, rng_seed=p.seed))
            j = len(s) - 1
            mp = marchenko_pastur(1.0 / s[j] ** 2, n2, n1)
            xm, xm_se = sc.mean_se(pt.x_max_init.values[:, j])
            rel = xm / mp.x_plus - 1
            dev.append((abs(rel), xm_se / mp.x_plus))
            checks.append(Check(f"{tag}: MP edge x₊ (4.2) vs measured largest eigenvalue at init (1/σ_W={s[j]:g})",
                                mp.x_plus, float(xm), float(xm_se), None, bool(abs(rel) <= p.edge_rtol),
                                f"|x_max/x₊ − 1| ≤ {p.edge_rtol:g} (finite-n Tracy–Widom shift of the edge)",
                                "resolution"))
            s2 = 1.0 / s[j] ** 2
            m1, m1_se = sc.mean_se(pt.x_m1_init.values[:, j])
            m2, m2_se = sc.mean_se(pt.x_m2_init.values[:, j])
            checks.append(zcheck(f"{tag}: MP E[x] = σ_W² at init", s2, m1, m1_se, max_z=p.max_z))
            checks.append(zcheck(f"{tag}: MP E[x²] = σ_W⁴(1 + (n_ℓ+1)/n_ℓ₋₁) at init", s2**2 * (1 + (n2 + 1) / n1), m2,
                                 m2_se, max_z=p.max_z))
        if len(p.n2) > 1:
            small, large = int(np.argmin(p.n2)), int(np.argmax(p.n2))
            a, b = dev[small], dev[large]
            checks.append(sc.greater_check(f"MP edge deviation |x_max/x₊ − 1| shrinks: n2={p.n2[small]} > n2={p.n2[large]}",
                                           a[0], a[1], b[0], b[1], min_z=2.0, what="deviation difference"))
        return checks

    def figures(self, p, ds):
        from matplotlib.figure import Figure

        from ..sgd import marchenko_pastur

        T, s = np.asarray(p.temperatures), np.asarray(p.inv_sigma_W)
        fig = Figure(figsize=(14, 4.0), layout="constrained")
        axes = fig.subplots(1, 3)
        for w, (n1, n2) in enumerate(zip(p.n1, p.n2)):
            pt = ds.isel(width=w)
            for j, x in enumerate(s):
                m, se = sc.mean_se(pt.test_loss.values[:, :, j])
                axes[0 if j == len(s) - 1 else 1].errorbar(T, m, yerr=se, fmt="-o", ms=3, capsize=2,
                                                           label=f"n1={n1}, n2={n2}, 1/σ_W={x:g}")
        for ax in axes[:2]:
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("T = ε/|B|")
            ax.set_ylabel("mean test loss at t_f")
            ax.legend(fontsize=6)
        axes[0].set_title(f"ordered → paramagnetic (1/σ_W = {s[-1]:g})", fontsize=9)
        axes[1].set_title("other 1/σ_W (jamming at the smallest)", fontsize=9)
        j = len(s) - 1
        n2 = np.asarray(p.n2)
        rel, err = [], []
        for w, (a, b) in enumerate(zip(p.n1, p.n2)):
            mp = marchenko_pastur(1.0 / s[j] ** 2, b, a)
            m, se = sc.mean_se(ds.x_max_init.isel(width=w).values[:, j])
            rel.append(1 - m / mp.x_plus)
            err.append(se / mp.x_plus)
        axes[2].errorbar(n2, rel, yerr=err, fmt="o", capsize=2, label="measured 1 − x_max/x₊")
        axes[2].plot(n2, rel[0] * (n2 / n2[0]) ** (-2 / 3), "k--", label="∝ n2^(−2/3) (Tracy–Widom)")
        axes[2].set_xscale("log", base=2)
        axes[2].set_yscale("log")
        axes[2].set_xlabel("n2")
        axes[2].set_title("Marchenko–Pastur edge at initialisation", fontsize=9)
        axes[2].legend(fontsize=7)
        return {"finite_size.png": fig}
