"""Checks: one number from theory against the same number from simulation, with a stated rule."""

from __future__ import annotations

import dataclasses
import math

__all__ = ["Check", "zcheck", "close_check"]


def _num(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclasses.dataclass(frozen=True)
class Check:
    """A theory-vs-simulation comparison as written to ``summary.json``."""

    name: str
    theory: float
    simulation: float
    stderr: float | None
    z: float | None
    passed: bool
    rule: str

    def to_json(self) -> dict:
        """Fields ``name, theory, simulation, stderr, z, pass, rule`` (non-finite numbers → null)."""
        return {
            "name": self.name,
            "theory": _num(self.theory),
            "simulation": _num(self.simulation),
            "stderr": _num(self.stderr),
            "z": _num(self.z),
            "pass": bool(self.passed),
            "rule": self.rule,
        }

    @classmethod
    def from_json(cls, d: dict) -> Check:
        return cls(d["name"], d["theory"], d["simulation"], d["stderr"], d["z"], d["pass"], d["rule"])


def zcheck(name: str, theory, simulation, stderr, *, max_z: float = 5.0) -> Check:
    """Pass when |z| < max_z with z = (simulation − theory) / stderr (stderr: the Monte Carlo standard error)."""
    theory, simulation, stderr = float(theory), float(simulation), float(stderr)
    diff = simulation - theory
    if stderr > 0:
        z = diff / stderr
    else:
        z = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    ok = math.isfinite(z) and abs(z) < max_z
    return Check(name, theory, simulation, stderr, z, ok, f"|z| < {max_z:g}")


def close_check(name: str, theory, simulation, *, rtol: float = 1e-6, atol: float = 0.0) -> Check:
    """Deterministic comparison (no sampling noise): pass when |simulation − theory| ≤ atol + rtol·|theory|."""
    theory, simulation = float(theory), float(simulation)
    ok = math.isfinite(simulation) and abs(simulation - theory) <= atol + rtol * abs(theory)
    return Check(name, theory, simulation, None, None, ok, f"|sim − theory| ≤ {atol:g} + {rtol:g}·|theory|")
