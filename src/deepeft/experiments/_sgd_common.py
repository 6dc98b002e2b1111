"""Shared pieces of the SGD phase-diagram experiments (``sgd-phase-diagram``, ``sgd-linear-scaling``,
``sgd-finite-size``; Park, Lucini & Aarts 2025): member-chunk tasks, one chunk's training run
reduced to stored arrays, ensemble statistics over members, the qualitative-structure checks and
the heat-map / slice figures.

Not an experiment module (it registers nothing). Tasks are chunks of ensemble members: chunk i
trains its members with the library seed ``ctx.seed mod 2³²`` (members 0..c−1 of that seed are
independent of every other chunk's), so a sweep is resumable and distributable and the results
are assembled by concatenating chunks along ``member``.

References:
  Park, Lucini & Aarts, Phase diagram and eigenvalue dynamics of stochastic gradient descent in multilayer neural networks (2025)
    arXiv:2509.01349
  (docs/references.md)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import DeepEFTInputError
from ..statistics import bootstrap_se, mean_se
from .checks import Check, close_check, greater_check, ratio_check, zcheck

__all__ = [
    "PHASES",
    "MP_PAPER",
    "member_tasks",
    "chunk_seed",
    "train_chunk",
    "concat_members",
    "mean_se",
    "ratio_check",
    "greater_check",
    "transition_temperature",
    "transition_check",
    "dbm_transition_check",
    "factor_check",
    "bootstrap_se",
    "mp_checks",
    "nearest",
    "heatmap",
    "check_grid",
]

PHASES = ("ordered", "paramagnetic", "jamming")
# the paper's quoted Marchenko–Pastur upper edges (4.2) for the 3-32-16-1 setup: 1/σ_W → x₊
MP_PAPER = {8.0: 0.046, 2.0**-8: 1.9e5}


def check_grid(values, key: str) -> None:
    """Positive, finite, strictly increasing and listed once."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0 or np.any(~np.isfinite(a)) or np.any(a <= 0) or np.any(np.diff(a) <= 0):
        raise DeepEFTInputError(f"parameter {key!r} must list positive numbers in increasing order, each once; "
                                f"got {list(values)}.")


def member_tasks(members: int, per_task: int, **extra) -> list[dict]:
    """Chunks of ``per_task`` members (the last one smaller): [{**extra, "chunk": i, "members": c}, ...]."""
    n = math.ceil(members / per_task)
    return [{**extra, "chunk": i, "members": min(per_task, members - i * per_task)} for i in range(n)]


def chunk_seed(ctx) -> int:
    """The library seed of one member chunk (32 bits of the task's 64-bit stream)."""
    return int(ctx.seed % 2**32)


def train_chunk(setup, temperatures, inv_sigma_W, *, batch_size: int, members: int, steps: int, n_records: int,
                seed: int, dbm_basis: str | None = "K", phase_points=None, method: str = "sgd") -> dict:
    """Train one member chunk on the T × 1/σ_W grid and reduce it to stored arrays.

    Returns ``{name: (dims, array)}`` with dims among (time, member, T, inv_sigma_W, level, phase):
    test_loss, G (3.4), G_self = G(t, t), alignment (3.5), spacing S (4.5) over time; grad_norm(_init) (3.3),
    train_loss(_init) at t = 0 and t_f; the initial eigenvalues of X (4.1) per 1/σ_W (common random
    numbers: identical for every T); eigenvalue trajectories at ``phase_points`` ((iT, iσ) per phase);
    the teacher's eigenvalues; with ``dbm_basis`` the level-spacing coefficients K_S, V_S at t_f
    and the convergence test (4.15) per model.
    """
    from ..sgd import dbm_analysis, level_spacing, phase_grid, train_ensemble

    g = phase_grid(temperatures, inv_sigma_W, batch_size)
    shape = g["grid_shape"]
    run = train_ensemble(setup, g["learning_rate"], g["sigma_W"], members=members, steps=steps,
                         batch_size=batch_size, method=method, seed=seed, n_records=n_records, grid_shape=shape)
    R, M = run.times.size, members
    grid4 = (R, M, *shape)
    tm = ("time", "member", "T", "inv_sigma_W")
    out: dict[str, Any] = {k: (tm, getattr(run, k).reshape(grid4)) for k in ("test_loss", "G", "G_self", "alignment")}
    out["spacing"] = (tm, level_spacing(run.eigenvalues).reshape(grid4))
    for k in ("grad_norm", "grad_norm_init", "train_loss", "train_loss_init"):
        out[k] = (("member", "T", "inv_sigma_W"), getattr(run, k).reshape(M, *shape))
    eig = np.asarray(run.eigenvalues, np.float64).reshape(R, M, *shape, -1)
    out["eig_init"] = (("member", "inv_sigma_W", "level"), eig[0, :, 0])
    out["teacher_eigenvalues"] = (("member", "level"), run.teacher_eigenvalues)
    if phase_points is not None:
        traj = np.stack([eig[:, :, i, j] for i, j in phase_points], axis=2)  # (R, M, phase, level)
        out["eig_phase"] = (("time", "member", "phase", "level"), traj)
    if dbm_basis is not None:
        d = dbm_analysis(run, basis=dbm_basis)
        for k in ("K_S", "V_S", "D_S"):
            out[k] = (("member", "T", "inv_sigma_W"), getattr(d, k).reshape(M, *shape))
        out["converged"] = (("member", "T", "inv_sigma_W"), d.converged.reshape(M, *shape).astype(np.int8))
    return out


def concat_members(results: list[dict], groups: list | None = None):
    """Concatenate task results along ``member`` (variables without it are taken from the first task).

    groups: optional task labels; tasks with the same label are concatenated together and the
    groups stacked along a new leading axis (used for sweeps over widths or batch sizes).
    """
    if groups is None:
        groups = [0] * len(results)
    labels = list(dict.fromkeys(groups))
    merged = []
    for lab in labels:
        rs = [r for r, g in zip(results, groups) if g == lab]
        m = {}
        for var, (dims, _) in rs[0].items():
            if "member" in dims:
                ax = dims.index("member")
                m[var] = (dims, np.concatenate([np.asarray(r[var][1]) for r in rs], axis=ax))
            else:
                m[var] = (dims, np.asarray(rs[0][var][1]))
        merged.append(m)
    return labels, merged


def transition_temperature(T, loss) -> float:
    """T where log mean-loss first crosses the midpoint between its values at the lowest and highest T
    (log-log interpolation); NaN when it never does."""
    T, y = np.log(np.asarray(T, np.float64)), np.log(np.asarray(loss, np.float64))
    mid = 0.5 * (y[0] + y[-1])
    above = np.nonzero(y > mid)[0]
    if y[-1] <= y[0] or above.size == 0 or above[0] == 0:
        return math.nan
    i = above[0]
    w = (mid - y[i - 1]) / (y[i] - y[i - 1])
    return float(np.exp(T[i - 1] + w * (T[i] - T[i - 1])))


def transition_check(name: str, T, loss_members, lo: float, hi: float, *, rng_seed: int = 0) -> Check:
    """T* (:func:`transition_temperature` of the ensemble-mean loss) inside [lo, hi]; stderr by bootstrap over members."""
    L = np.asarray(loss_members, np.float64)  # (member, T)
    Ts = transition_temperature(T, L.mean(0))
    se = float(bootstrap_se(lambda idx: transition_temperature(T, L[idx].mean(0)), L.shape[0], rng_seed))
    ok = math.isfinite(Ts) and lo <= Ts <= hi
    return Check(name, None, Ts, se, None, ok,  # a window, not a predicted value: no theory column
                 f"T* (mid-point crossing of log mean loss between lowest and highest T) in [{lo:g}, {hi:g}] "
                 "(stderr: bootstrap over members; 'theory' column: √(lo·hi), the centre of the window)", "resolution")


def factor_check(name: str, ratio_of, members: int, factor: float, rule: str, rng_seed: int = 0) -> Check:
    """Pass when the ratio ``ratio_of(idx)`` of two ensemble statistics (idx: member indices) lies in
    [1/factor, factor]; stderr by a paired bootstrap over members (both statistics resampled together).
    The factor is a resolution, not a statistical bound (e.g. one step of a 2×-spaced T grid); the
    stderr is reported next to it."""
    r = ratio_of(np.arange(members))
    se = float(bootstrap_se(ratio_of, members, rng_seed))
    ok = bool(math.isfinite(r) and 1.0 / factor <= r <= factor)
    return Check(name, 1.0, float(r), se, None, ok,
                 f"{rule} in [1/{factor:g}, {factor:g}] (stderr: paired bootstrap over members)", "resolution")


def dbm_transition_check(name: str, T, converged_members, loss_members, factor: float, rng_seed: int = 0) -> Check:
    """The T where the converged fraction of (4.15) falls to half its low-T plateau
    (:func:`~deepeft.sgd.boundary_temperature`, relative) against the loss transition T*
    (:func:`transition_temperature`), both from the same members: T_DBM/T* in [1/factor, factor]."""
    from ..sgd import boundary_temperature

    C = np.asarray(converged_members, np.float64)  # (member, T)
    L = np.asarray(loss_members, np.float64)

    def ratio(idx):
        tb = boundary_temperature(C[idx].mean(0)[:, None], T, 0.5, relative=True)[0]
        return tb / transition_temperature(T, L[idx].mean(0))

    return factor_check(name, ratio, C.shape[0], factor, "T_DBM(½ plateau)/T*", rng_seed)


def mp_checks(label: str, eig_init, inv_sigma_W, n_out: int, n_in: int, *, edge_rtol: float, max_z: float) -> list[Check]:
    """Marchenko–Pastur (4.2) at initialisation, per 1/σ_W column of ``eig_init`` (member, σ, level).

    * closed-form x₊ = σ_W²(1 + √r)² against the paper's quoted value (0.046, 1.9e5) where the paper quotes one
      (rule: within half a unit of the quoted last digit);
    * measured edge: ensemble mean of the largest eigenvalue against x₊, |x_max/x₊ − 1| ≤ edge_rtol (the finite-n
      Tracy–Widom shift of the largest eigenvalue is O(n^{-2/3}), about −11 % at n = 16, 32);
    * exact finite-size moments of the Wishart law whose n → ∞ limit is (4.2): E[x] = σ_W², E[x²] = σ_W⁴(1 + (n_ℓ + 1)/n_{ℓ−1})
      (z-scores over members).
    """
    from ..sgd import marchenko_pastur

    out = []
    e = np.asarray(eig_init, np.float64)
    s_all = np.asarray(inv_sigma_W, np.float64)
    for j, s in enumerate(s_all):
        s2 = 1.0 / s**2
        mp = marchenko_pastur(s2, n_out, n_in)
        tag = f"{label}1/σ_W={s:g}"
        quoted = next((v for k, v in MP_PAPER.items() if abs(k - s) <= 1e-12 * k), None)
        if quoted is None and j not in (0, s_all.size - 1):
            continue  # every column holds the same draws scaled by σ_W (common random numbers)
        if quoted is not None and (n_out, n_in) == (16, 32):
            digits = 10.0 ** (math.floor(math.log10(quoted)) - 1)  # two significant digits quoted
            out.append(close_check(f"{tag}: MP edge x₊ closed form vs paper {quoted:g}", quoted, mp.x_plus,
                                   rtol=0.0, atol=0.5 * digits, kind="regression"))
        xmax, xmax_se = mean_se(e[:, j].max(-1))
        rel = xmax / mp.x_plus - 1
        out.append(Check(f"{tag}: MP edge x₊ (4.2) vs measured largest eigenvalue at init", mp.x_plus, float(xmax),
                         float(xmax_se), None, bool(abs(rel) <= edge_rtol),
                         f"|x_max/x₊ − 1| ≤ {edge_rtol:g} (finite-n Tracy–Widom shift of the edge)", "resolution"))
    # exact moments once: the columns share their draws (scaled by σ_W), so their z-scores coincide
    x = e[:, 0] * s_all[0] ** 2  # x/σ_W²
    m1, m1_se = mean_se(x.mean(-1))
    m2, m2_se = mean_se((x**2).mean(-1))
    out.append(zcheck(f"{label}MP mean eigenvalue E[x/σ_W²] = 1 at init", 1.0, m1, m1_se, max_z=max_z))
    out.append(zcheck(f"{label}MP second moment E[x²/σ_W⁴] = 1 + (n_ℓ+1)/n_ℓ₋₁ at init",
                      1 + (n_out + 1) / n_in, m2, m2_se, max_z=max_z))
    return out


def nearest(values, target: float) -> int:
    """Index of the grid value nearest to ``target`` on a log scale."""
    return int(np.argmin(np.abs(np.log(np.asarray(values, np.float64)) - math.log(target))))


def heatmap(ax, fig, T, s, Z, title: str, *, log: bool, boundaries=None, jamming=None, fraction=None,
            lines=None, cmap: Any = "viridis", cbar_label: str | None = None):
    """One T–1/σ_W heat map (log axes, cells centred on the grid points) with the DBM boundaries
    ``{level: T per 1/σ_W column}`` (where defined) and the jamming lines ``{label: 1/σ_W}`` overlaid; with
    ``fraction`` (the converged fraction on the grid) also its contours at the boundary levels (dotted);
    ``lines``: further boundaries ``{label: T per 1/σ_W column}`` (cyan, dashed). The colorbar is labelled
    ``cbar_label`` (default: the title up to its first parenthesis), with "(log scale)" when ``log``."""
    from matplotlib.colors import LogNorm

    T, s, Z = np.asarray(T, float), np.asarray(s, float), np.asarray(Z, float)

    def edges(v):
        lv = np.log2(v)
        d = np.diff(lv) if v.size > 1 else np.array([1.0])
        mid = (lv[1:] + lv[:-1]) / 2 if v.size > 1 else np.array([])
        return 2.0 ** np.concatenate([[lv[0] - d[0] / 2], mid, [lv[-1] + d[-1] / 2]])

    norm = None
    if log:
        pos = Z[np.isfinite(Z) & (Z > 0)]
        if pos.size:
            norm = LogNorm(vmin=pos.min(), vmax=pos.max())
        Z = np.where(Z > 0, Z, np.nan)
    im = ax.pcolormesh(edges(s), edges(T), Z, norm=norm, cmap=cmap, shading="flat")
    label = cbar_label if cbar_label is not None else title.split(" (")[0]
    fig.colorbar(im, ax=ax, label=label + (" (log scale)" if log and norm is not None else ""))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("1/σ_W")
    ax.set_ylabel("T = ε/|B|")
    ax.set_title(title, fontsize=9)
    for k, (level, Tb) in enumerate((boundaries or {}).items()):
        Tb = np.asarray(Tb, float)
        ok = np.isfinite(Tb)
        if ok.any():
            ax.plot(s[ok], Tb[ok], "-o", color="white", ms=2.5, lw=1.0 + 0.6 * k, alpha=0.5 + 0.2 * k,
                    label=f"DBM {100 * level:g}%")
    if fraction is not None and boundaries:
        f = np.asarray(fraction, float)
        lv = [v for v in boundaries if np.nanmin(f) < v < np.nanmax(f)]
        if lv and min(f.shape) > 1:
            ax.contour(s, T, f, levels=sorted(lv), colors="white", linestyles=":", linewidths=1.0)
    for label, Tb in (lines or {}).items():
        Tb = np.asarray(Tb, float)
        ok = np.isfinite(Tb)
        if ok.any():
            ax.plot(s[ok], Tb[ok], "--s", color="cyan", ms=2.5, lw=1.4, label=label)
    for label, x in (jamming or {}).items():
        ax.axvline(x, color="red", ls="--", lw=1.0, label=label)
    if boundaries or jamming or lines:
        ax.legend(fontsize=6, loc="upper left")
