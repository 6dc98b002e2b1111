"""The optimal aspect ratio r* = [4/(20 + 3m₁ + 3m₂)]/ν (book App. A (A.72)–(A.73), App. B (B.36)): the one formula
behind :func:`deepeft.optimal_aspect_ratio` (:mod:`.information`) and :func:`deepeft.residual_aspect_ratio`,
:func:`deepeft.residual_gamma_for_aspect_ratio` (:mod:`.residual`), which differ only in where ν comes from.

m₁ + m₂ is the size of the two output groups whose mutual information (A.71) r* maximises (n_L for the book's
split m₁ = m₂ = n_L/2, (A.73)); ν is the vertex coefficient of V^{(L)}/(nG²) = ν r (A.68), ν(γ) with a skip (B.22).

References: Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory*, App. A, App. B (arXiv:2106.10165).
"""

from __future__ import annotations

__all__ = ["aspect_ratio_prefactor", "nu_for_aspect_ratio", "optimal_aspect_ratio_from_nu"]


def aspect_ratio_prefactor(m_sum: float) -> float:
    """4/(20 + 3(m₁ + m₂)) (A.72): r*·ν."""
    return 4.0 / (20.0 + 3.0 * float(m_sum))


def optimal_aspect_ratio_from_nu(nu: float, m_sum: float) -> float:
    """r* = [4/(20 + 3(m₁ + m₂))]/ν (A.72), (A.73), (B.36)."""
    return aspect_ratio_prefactor(m_sum) / float(nu)


def nu_for_aspect_ratio(r: float, m_sum: float) -> float:
    """The ν for which r* = r: the inverse of :func:`optimal_aspect_ratio_from_nu` in ν (γ*(r), §B.3)."""
    return aspect_ratio_prefactor(m_sum) / float(r)
