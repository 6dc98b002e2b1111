"""Checks: one number from theory against the same number from simulation, with a stated rule.

Every check has a ``kind`` that says what kind of evidence it is:

* ``"prediction"`` — a value computed from theory (a closed form, a recursion, an exact moment) against the
  same value measured by simulation or by an independent implementation path. Only these count in the
  headline pass rate (:func:`headline`).
* ``"resolution"`` — the result is only known to the resolution of a grid (e.g. a transition temperature
  located within one step of a 2×-spaced T grid); the bound is a property of the grid, not a theory value.
* ``"finding"`` — an observed property of the ensembles that no formula predicts (e.g. the sign of the
  DBM drift being thermal noise, P(K_S < 0) = ½), or a qualitative ordering claimed by a paper's figures
  (loss ratio between phases ≥ 100); it can fail, but it tests the data, not a formula.
* ``"regression"`` — the code against a stored number (a constant printed in the book or a paper,
  a closed form evaluated at quoted parameters); a pinned value, not an experiment.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..statistics import Z_CLAIM, Z_MAX, exceeds, zscore

__all__ = ["Check", "KINDS", "HEADLINE_KIND", "zcheck", "close_check", "ratio_check", "greater_check", "headline",
           "headline_text"]

KINDS = ("prediction", "resolution", "finding", "regression")
HEADLINE_KIND = "prediction"


def _num(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclasses.dataclass(frozen=True)
class Check:
    """A theory-vs-simulation comparison as written to ``summary.json`` (``kind``: one of :data:`KINDS`)."""

    name: str
    theory: float | None  # None: a finding or a window, no predicted value
    simulation: float
    stderr: float | None
    z: float | None
    passed: bool
    rule: str
    kind: str = "prediction"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Check {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")

    def as_kind(self, kind: str) -> Check:
        """The same check labelled ``kind``."""
        return dataclasses.replace(self, kind=kind)

    def to_json(self) -> dict:
        """Fields ``name, kind, theory, simulation, stderr, z, pass, rule`` (non-finite numbers → null)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "theory": _num(self.theory),
            "simulation": _num(self.simulation),
            "stderr": _num(self.stderr),
            "z": _num(self.z),
            "pass": bool(self.passed),
            "rule": self.rule,
        }

    @classmethod
    def from_json(cls, d: dict) -> Check:
        """Inverse of :meth:`to_json`; stores written before kinds existed read as ``"prediction"``."""
        return cls(d["name"], d["theory"], d["simulation"], d["stderr"], d["z"], d["pass"], d["rule"],
                   d.get("kind", "prediction"))


def headline(checks: Iterable[Check | Mapping[str, Any]]) -> dict[str, Any]:
    """The headline counts of a list of checks (``Check`` objects or their JSON dicts).

    ``n_checks`` / ``n_failed`` count predictions only (the headline pass rate); ``kinds`` gives
    ``{kind: {"n_checks", "n_failed"}}`` for every kind; ``n_checks_all`` / ``n_failed_all`` count every check;
    ``passed`` is True when there is at least one check and no check of any kind failed.
    """
    kinds = {k: {"n_checks": 0, "n_failed": 0} for k in KINDS}
    for c in checks:
        d = c.to_json() if isinstance(c, Check) else c
        k = d.get("kind", "prediction")
        if k not in kinds:
            raise ValueError(f"check {d.get('name')!r} has unknown kind {k!r}; kinds are {KINDS}")
        kinds[k]["n_checks"] += 1
        kinds[k]["n_failed"] += not d["pass"]
    n_all = sum(v["n_checks"] for v in kinds.values())
    f_all = sum(v["n_failed"] for v in kinds.values())
    return {
        "n_checks": kinds[HEADLINE_KIND]["n_checks"],
        "n_failed": kinds[HEADLINE_KIND]["n_failed"],
        "n_checks_all": n_all,
        "n_failed_all": f_all,
        "kinds": kinds,
        "passed": n_all > 0 and f_all == 0,
    }


def headline_text(h: Mapping[str, Any]) -> str:
    """One line such as ``"41/42 predictions pass (also: resolution 2/2, finding 1/1)"`` from :func:`headline`'s
    dict (or a summary.json holding the same keys; older summaries without ``kinds`` count all as predictions)."""
    n, f = h["n_checks"], h["n_failed"]
    kinds = h.get("kinds") or {}
    others = [f"{k} {v['n_checks'] - v['n_failed']}/{v['n_checks']}" for k, v in kinds.items()
              if k != HEADLINE_KIND and v["n_checks"]]
    return f"{n - f}/{n} predictions pass" + (f" (also: {', '.join(others)})" if others else "")


def zcheck(name: str, theory, simulation, stderr, *, max_z: float = Z_MAX, kind: str = "prediction") -> Check:
    """Pass when |z| < max_z with z = (simulation − theory) / stderr (stderr: the Monte Carlo standard error)."""
    theory, simulation, stderr = float(theory), float(simulation), float(stderr)
    z = zscore(simulation - theory, stderr)
    ok = math.isfinite(z) and abs(z) < max_z
    return Check(name, theory, simulation, stderr, z, ok, f"|z| < {max_z:g}", kind)


def close_check(name: str, theory, simulation, *, rtol: float = 1e-6, atol: float = 0.0,
                kind: str = "prediction") -> Check:
    """Deterministic comparison (no sampling noise): pass when |simulation − theory| ≤ atol + rtol·|theory|."""
    theory, simulation = float(theory), float(simulation)
    ok = math.isfinite(simulation) and abs(simulation - theory) <= atol + rtol * abs(theory)
    return Check(name, theory, simulation, None, None, ok,
                 f"|sim − theory| ≤ {atol:g} + {rtol:g}·|theory|", kind)


def ratio_check(name: str, num, num_se, den, den_se, threshold: float, what: str, *, min_z: float = Z_CLAIM,
                kind: str = "finding") -> Check:
    """One-sided claim num/den ≥ threshold, significant (policy in :mod:`deepeft.statistics`): z ≥ min_z.

    When num and den are both resolved (value ≥ 2·stderr) the ratio is judged on the log scale,
    z = ln(r/threshold)/(stderr_r/r), stderr_r/r = √((se_num/num)² + (se_den/den)²) (delta method); otherwise
    (a denominator consistent with zero has no meaningful ratio error) on the linear form
    z = (num − threshold·den)/√(se_num² + threshold²·se_den²). The reported stderr is that of r (delta method)."""
    num, num_se, den, den_se = (float(x) for x in (num, num_se, den, den_se))
    r = num / den if den != 0 else math.inf
    rel = math.hypot(num_se / num if num else math.inf, den_se / den if den else math.inf)
    resolved = num > 2 * num_se and den > 2 * den_se
    if resolved:
        z = math.log(r / threshold) / rel if rel > 0 else math.copysign(math.inf, r - threshold)
        form = f"z = ln(ratio/{threshold:g})/(stderr/ratio)"
    else:
        z = zscore(num - threshold * den, math.hypot(num_se, threshold * den_se))
        form = f"z = (num − {threshold:g}·den)/√(se_num² + {threshold:g}²·se_den²) (denominator or numerator unresolved)"
    ok = bool(num > 0 and math.isfinite(z) and z >= min_z) or (num > 0 and z == math.inf)
    # The threshold is part of the rule, not a theory value, and this z is not (measurement − theory)/stderr:
    # both go in the rule text so that the report's theory and z columns keep one meaning everywhere.
    zt = f"{z:.2f}" if math.isfinite(z) else ("inf" if z > 0 else "-inf")
    return Check(name, None, r, abs(r) * rel if math.isfinite(r) and math.isfinite(rel) else None, None, ok,
                 f"{what} ≥ {threshold:g} with {form} ≥ {min_z:g} (ratio of ensemble means; here z = {zt})", kind)


def greater_check(name: str, a, a_se, b, b_se, *, min_z: float = Z_CLAIM, what: str, kind: str = "finding") -> Check:
    """One-sided claim a > b, significant: z = (a − b)/√(se_a² + se_b²) ≥ min_z (independent errors)."""
    a, a_se, b, b_se = (float(x) for x in (a, a_se, b, b_se))
    d = a - b
    se = math.hypot(a_se, b_se)
    z = zscore(d, se)
    zt = f"{z:.2f}" if math.isfinite(z) else ("inf" if z > 0 else "-inf")
    # the bound 0 is part of the rule, not a theory value: theory and z stay empty (one meaning per report column)
    return Check(name, None, d, se, None, exceeds(d, se, min_z=min_z),
                 f"{what} > 0 with z = diff/stderr ≥ {min_z:g} (here z = {zt})", kind)
