"""Monte Carlo statistics and the pass policy: the currency in which theory meets experiment.

One module for every estimate with a standard error and every pass rule (layer 0: imports only numpy and
``deepeft.errors``):

* :class:`Estimate` — a value ± its standard error; ``est.z(theory)`` and ``est.agrees(theory)``;
* :func:`mean` (an :class:`Estimate`), :func:`mean_se` (arrays, lenient), :func:`jackknife` (delete-one-block),
  :func:`bootstrap_se` (resampling members with replacement);
* :func:`zscore`, :func:`agrees`, :func:`exceeds` — the pass rules, below.

Pass policy (used by ``Estimate.agrees``, ``experiments.checks`` and the tests via ``tests/conftest.py``)
------------------------------------------------------------------------------------------------------
* **Agreement** (a prediction against a measurement): z = (measured − theory)/stderr, pass when
  |z| < :data:`Z_MAX` = 5. The two-sided Gaussian tail beyond 5σ is 5.7·10⁻⁷, so a reproduction with
  ~10³ checks raises a false alarm with probability < 10⁻³, while a bias of a few standard errors
  accumulates to a failure when the sample is enlarged. A known systematic of the next order (e.g. the
  O(1/n²) remainder of a 1/n expansion) enters as an explicit ``allowance`` that the rule text states:
  |measured − theory| < Z_MAX·stderr + allowance. With stderr = 0 (a deterministic quantity) only
  |measured − theory| ≤ allowance passes.
* **A one-sided claim** (a measured A exceeds B, or a ratio exceeds a threshold): the difference must be
  significant, z ≥ :data:`Z_CLAIM` = 3 (one-sided tail 1.3·10⁻³); ratios are judged on the log scale,
  z = ln(r/threshold)/(stderr_r/r).
* **A rejection** (a printed coefficient that the data must refute): |z| ≥ Z_MAX.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import DeepEFTInputError

__all__ = [
    "Z_MAX",
    "Z_CLAIM",
    "Estimate",
    "agrees",
    "block_count",
    "bootstrap_se",
    "check_samples",
    "exceeds",
    "jackknife",
    "mean",
    "mean_se",
    "zscore",
]

Z_MAX = 5.0
"""Two-sided agreement bound on |z| (see the module docstring)."""

Z_CLAIM = 3.0
"""One-sided significance a claimed inequality (A > B, ratio ≥ threshold) must reach."""


def zscore(diff, stderr):
    """z = diff/stderr elementwise; where stderr = 0: 0 if diff = 0, else ±inf (sign of Re diff)."""
    d = np.asarray(diff)
    d = d.astype(np.complex128 if np.iscomplexobj(d) else np.float64)
    s = np.asarray(stderr, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(s > 0, d / np.where(s > 0, s, 1.0),
                       np.where(d == 0, 0.0, np.where(d.real < 0, -np.inf, np.inf)))
    return out.item() if out.ndim == 0 else out


def agrees(diff, stderr, *, max_z: float = Z_MAX, allowance=0.0):
    """The agreement rule: |diff| < max_z·stderr + allowance (≤ when stderr = 0: exact up to the allowance).

    Elementwise over arrays; NaN never agrees."""
    d = np.abs(np.asarray(diff))
    s = np.asarray(stderr, dtype=np.float64)
    a = np.asarray(allowance, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = np.where(s > 0, d < max_z * s + a, d <= a) & np.isfinite(d)
    return bool(out) if out.ndim == 0 else out


def exceeds(diff, stderr, *, min_z: float = Z_CLAIM) -> bool:
    """The one-sided claim rule: diff > 0 and diff/stderr ≥ min_z (stderr = 0: any diff > 0)."""
    diff, stderr = float(diff), float(stderr)
    if not math.isfinite(diff) or diff <= 0:
        return False
    return stderr == 0 or (math.isfinite(stderr) and diff / stderr >= min_z)


@dataclasses.dataclass(frozen=True, eq=False)
class Estimate:
    """A measured quantity: ``value`` ± ``stderr`` (floats, or float64 arrays of the same shape).

    ``value`` may be complex (complex128, e.g. Fourier modes); ``stderr`` is then the combined real
    standard error √(se_re² + se_im²) and ``z`` is complex.
    """

    value: Any  # a float, or a float64 (complex128) array
    stderr: Any  # a float, or a float64 array of value's shape

    def __post_init__(self):
        v = np.asarray(self.value)
        v = v.astype(np.complex128 if np.iscomplexobj(v) else np.float64)
        s = np.asarray(self.stderr, dtype=np.float64)
        if v.shape != s.shape:
            try:
                s = np.broadcast_to(s, v.shape).copy()
            except ValueError:
                raise DeepEFTInputError(
                    f"Estimate value and stderr must have the same shape, got {v.shape} and {s.shape}."
                ) from None
        if np.any(s < 0):
            raise DeepEFTInputError("Estimate stderr must be >= 0.")
        object.__setattr__(self, "value", v.item() if v.ndim == 0 else v)
        object.__setattr__(self, "stderr", float(s) if s.ndim == 0 else s)

    @property
    def shape(self) -> tuple[int, ...]:
        return np.shape(self.value)

    def z(self, theory) -> float | np.ndarray:
        """z-score (value − theory)/stderr (±inf where stderr = 0 and value ≠ theory, 0 where both agree)."""
        return zscore(np.asarray(self.value) - np.asarray(theory), self.stderr)

    def agrees(self, theory, nsigma: float = Z_MAX) -> bool:
        """True when every entry passes the agreement rule |z| < nsigma (default :data:`Z_MAX`)."""
        return bool(np.all(agrees(np.asarray(self.value) - np.asarray(theory), self.stderr, max_z=nsigma)))

    def __getitem__(self, item) -> Estimate:
        return Estimate(np.asarray(self.value)[item], np.asarray(self.stderr)[item])

    def __repr__(self):
        if np.ndim(self.value) == 0:
            return f"Estimate({self.value:.6g} ± {self.stderr:.2g})"
        return f"Estimate(value={self.value!r}, stderr={self.stderr!r})"

    __str__ = __repr__


def check_samples(samples, name: str = "samples", *, min_samples: int = 2) -> np.ndarray:
    """``samples`` as a finite float64 array with ≥ ``min_samples`` samples along axis 0 (else DeepEFTInputError)."""
    try:
        arr = np.asarray(samples, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"{name} must be a numeric array with samples along axis 0.") from None
    if arr.ndim == 0:
        raise DeepEFTInputError(f"{name} must be an array with samples along axis 0, got a scalar.")
    if arr.shape[0] < min_samples:
        raise DeepEFTInputError(
            f"{name} has {arr.shape[0]} sample(s); at least {min_samples} are needed to estimate a standard error."
        )
    if not np.all(np.isfinite(arr)):
        raise DeepEFTInputError(f"{name} contains NaN or inf; drop those samples first.")
    return arr


def block_count(n_samples: int, blocks: int) -> int:
    """Number of jackknife blocks actually used: min(blocks, n_samples), at least 2."""
    if isinstance(blocks, bool) or not isinstance(blocks, (int, np.integer)) or blocks < 2:
        raise DeepEFTInputError(f"blocks must be an integer >= 2, got {blocks!r}.")
    return int(min(blocks, n_samples))


def mean_se(a, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard error std/√S with ddof = 1) along ``axis``, as arrays; lenient: non-finite samples
    propagate, and the standard error is NaN with fewer than 2 samples. :func:`mean` is the validating form."""
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[axis]
    m = a.mean(axis)
    if n < 2:
        return m, np.full(np.shape(m), np.nan)[()]
    return m, a.std(axis, ddof=1) / np.sqrt(n)


def mean(samples, axis: int = 0) -> Estimate:
    """Sample mean along ``axis`` with standard error std/√S (ddof = 1); samples must be finite, S ≥ 2."""
    arr = check_samples(samples, min_samples=0)  # converts and validates first: strings, scalars, NaN
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -arr.ndim <= axis < arr.ndim:
        raise DeepEFTInputError(f"axis must be an integer in [{-arr.ndim}, {arr.ndim}) for samples of shape "
                                f"{arr.shape}, got {axis!r}.")
    return Estimate(*mean_se(check_samples(np.moveaxis(arr, axis, 0))))


def jackknife(statistic: Callable[..., object], *arrays, blocks: int = 32) -> Estimate:
    """Delete-one-block jackknife of ``statistic(*arrays)`` (samples along axis 0 of every array).

    The samples are split into ``blocks`` contiguous blocks; the statistic is recomputed with each
    block left out and SE² = (B−1)/B Σ_b (θ_{−b} − θ̄)². The value is the full-sample statistic.
    Costs B + 1 evaluations of ``statistic``; it may return a scalar or an array.
    """
    if not arrays:
        raise DeepEFTInputError("jackknife needs at least one array of samples.")
    arrs = [check_samples(a, f"arrays[{i}]") for i, a in enumerate(arrays)]
    S = arrs[0].shape[0]
    if any(a.shape[0] != S for a in arrs):
        raise DeepEFTInputError(
            f"all arrays must have the same number of samples along axis 0, got {[a.shape[0] for a in arrs]}."
        )
    B = block_count(S, blocks)
    edges = np.linspace(0, S, B + 1).astype(int)
    full = np.asarray(statistic(*arrs), dtype=np.float64)
    reps = []
    for b in range(B):
        keep = np.r_[0 : edges[b], edges[b + 1] : S]
        reps.append(np.asarray(statistic(*(a[keep] for a in arrs)), dtype=np.float64))
    rep = np.stack(reps)
    se = np.sqrt((B - 1) / B * np.sum((rep - rep.mean(axis=0)) ** 2, axis=0))
    return Estimate(full, se)


def bootstrap_se(stat: Callable[[np.ndarray], object], members: int, rng_seed: int = 0, n_boot: int = 200):
    """Standard error of ``stat(idx)`` (idx: member indices; stat may return an array) by resampling the
    members with replacement ``n_boot`` times; non-finite resamples are dropped (NaN when < 2 remain)."""
    rng = np.random.default_rng(rng_seed)
    boot = np.asarray([stat(rng.integers(0, members, members)) for _ in range(n_boot)], np.float64)
    finite = np.isfinite(boot)
    ok = finite.sum(0) > 1
    x = np.where(finite, boot, 0.0)
    n = np.maximum(finite.sum(0), 1)
    m = x.sum(0) / n
    se = np.sqrt((np.where(finite, boot - m, 0.0) ** 2).sum(0) / n)
    return np.where(ok, se, np.nan)[()]
