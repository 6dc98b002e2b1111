"""``de.diagnose(model)``: one row per layer — empirical C_W, C_b, weight spectrum, criticality verdict.

Per layer ℓ: C_W^{(ℓ)} = n_{ℓ−1}Var(W), C_b^{(ℓ)} = Var(b) (2.19)–(2.20) of the imported weights; the
spectral fields of :func:`~deepeft.diagnostics.weight_spectrum`; and the susceptibilities of the step into
layer ℓ, χ_∥ and χ_⊥ (5.50)–(5.51), from the single-input recursion (4.118) of the network whose per-layer
C_W, C_b are the empirical ones (:func:`deepeft.phase`, input norm (1/n₀)Σx² = 1). Layer verdict: if every
layer had this layer's χ_⊥, the (L − 1) steps would multiply gradients by χ_⊥^{L−1}: "chaotic" when
(L − 1) log χ_⊥ > log 100, "ordered" when < −log 100, else "critical" — the threshold of
:func:`deepeft.phase`, whose network-level regime is the Dataset attribute ``regime``. The activation's
critical point (C_b*, C_W*) (:func:`deepeft.criticality`, §5.3) is an attribute; ``C_W_ratio`` = C_W/C_W*.

The first layer's χ depends on the data's kernel K^{(0)}, not on the network: its verdict is "input".
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

from ..activations import activation as _activation
from ..errors import DeepEFTInputError, DeepEFTWarning
from ..interop import ImportedModel, from_arrays, from_equinox, from_flax, from_torch
from ..interop.jax_trees import is_nnx
from .spectrum import WeightSpectrum, gram_eigenvalues_many, spectrum_of_eigenvalues

__all__ = ["diagnose", "diagnose_series", "as_imported", "layer_verdict", "VERDICT_THRESHOLD"]

VERDICT_THRESHOLD = math.log(100.0)  # |(L − 1) log χ_⊥| beyond which a layer is called ordered/chaotic (as de.phase)


def as_imported(model, activation=None) -> ImportedModel:
    """Any supported model → :class:`~deepeft.interop.ImportedModel` (torch module/state dict, Equinox, Flax tree,
    a list of weight matrices, or an ImportedModel)."""
    if isinstance(model, ImportedModel):
        return model
    mod = type(model).__module__ or ""
    if mod.startswith("torch") or hasattr(model, "state_dict") and hasattr(model, "named_children"):
        return from_torch(model, activation)
    if mod.startswith("equinox"):
        return from_equinox(model)
    if is_nnx(model):
        return from_flax(model, _need_activation(activation, "a Flax NNX model"))
    if isinstance(model, dict):
        first = next(iter(model.values()), None)
        if type(first).__module__.startswith("torch"):
            return from_torch(model, activation)
        return from_flax(model, _need_activation(activation, "a parameter tree"))
    if isinstance(model, (list, tuple)):
        return from_arrays(model, None, _need_activation(activation, "a list of weight matrices"))
    raise DeepEFTInputError(
        f"diagnose cannot read a {type(model).__name__}: pass a torch nn.Module or state dict, an Equinox MLP, a Flax "
        "parameter tree, a list of weight matrices, or de.from_arrays(...)."
    )


def _need_activation(activation, what: str):
    if activation is None:
        raise DeepEFTInputError(f"{what} holds no activation, and the criticality verdict depends on it: pass "
                                "activation=, e.g. activation='relu'.")
    return activation


def layer_verdict(chi_perp: float, L: int, threshold: float = VERDICT_THRESHOLD) -> str:
    """"ordered" / "critical" / "chaotic" from (L − 1) log χ_⊥ (:func:`deepeft.theory.criticality.efolds`, the
    e-folds of :func:`deepeft.phase`; see the module docstring)."""
    if not chi_perp > 0 or not math.isfinite(chi_perp):
        return "ordered" if chi_perp == 0 else "chaotic"
    from ..theory.criticality import efolds

    e = efolds(chi_perp, L)
    return "chaotic" if e > threshold else "ordered" if e < -threshold else "critical"


@functools.lru_cache(maxsize=32)
def _criticality_attrs(act) -> dict:
    """The activation's critical point (§5.3), cached: it depends on the activation only."""
    from ..theory.criticality import criticality

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeepEFTWarning)
            c = criticality(act, exponents=False)
    except DeepEFTInputError as exc:  # e.g. a custom activation the analysis cannot handle
        return {"universality_class": "unknown", "criticality_note": str(exc), "C_W_critical": np.nan, "C_b_critical": np.nan}
    p = c.critical
    return {"universality_class": c.universality_class, "criticality_note": c.reason,
            "C_W_critical": np.nan if p is None else p.C_W, "C_b_critical": np.nan if p is None else p.C_b}


def _spectra_vars(spectra: list[WeightSpectrum]) -> dict:
    """Dataset variables of the per-layer spectra: the scalar fields and NaN-padded ``eigenvalues`` (layer, rank)."""
    rows = [s.as_dict() for s in spectra]
    data: dict[str, tuple] = {k: ("layer", np.array([r[k] for r in rows])) for k in rows[0]}
    eig = np.full((len(spectra), max(s.m for s in spectra)), np.nan)
    for i, s in enumerate(spectra):
        eig[i, : s.m] = s.eigenvalues
    data["eigenvalues"] = (("layer", "rank"), eig)
    return data


def diagnose_series(series, *, level: float = 0.01, activation=None):
    """:func:`diagnose` of the last checkpoint of a recorded series plus, per layer, the DBM analysis over the late
    half (:func:`~deepeft.diagnostics.series_dbm.series_dbm`): K_S, T·V_S, T·D_S, the two sides of (4.15) and its
    verdict. A spectra-only series (``mode="spectra"``) has no weights: C_W, C_b, χ and the criticality verdict are
    NaN / "n/a" (record with ``mode="weights"`` to get them)."""
    import xarray as xr

    from .series_dbm import MIN_INCREMENTS, series_dbm

    spectra = [spectrum_of_eigenvalues(e[-1], shape, level=level) for e, shape in zip(series.eigenvalues, series.shapes)]
    act = None
    try:
        act = _activation(activation if activation is not None else series.activation)
    except DeepEFTInputError:
        if activation is not None:
            raise
    unresolved = (f"the series stores its activation by name only ({series.activation!r}), and that name is not a "
                  "registered activation (a custom callable): pass activation=<the callable> to diagnose_series "
                  "(the CLI takes registered names only) to get χ and the critical point")
    if series.mode == "weights":
        if act is None:
            raise DeepEFTInputError(f"cannot diagnose the last checkpoint: {unresolved}.")
        ds = diagnose(series.model_at(-1, act), level=level, spectra=spectra)
    else:
        L = len(spectra)
        data = _spectra_vars(spectra)
        for k in ("C_W", "C_b", "W_mean", "C_W_ratio", "chi_parallel", "chi_perp"):
            data[k] = ("layer", np.full(L, np.nan))
        data["verdict"] = ("layer", np.array(["n/a"] * L, dtype=object))
        ds = xr.Dataset(data, coords={"layer": np.arange(1, L + 1), "name": ("layer", np.array(series.names, dtype=object))})
        ds.attrs.update({"activation": series.activation, "regime": "n/a (spectra-only series)", "source": "series",
                         "tw_level": level})
        if act is not None:
            ds.attrs.update(_criticality_attrs(act))
        else:
            ds.attrs.update({"universality_class": "unknown", "criticality_note": unresolved + ".",
                             "C_W_critical": np.nan, "C_b_critical": np.nan})
    ds.attrs["series_records"] = int(series.steps.size)
    ds.attrs["series_steps"] = [int(series.steps[0]), int(series.steps[-1])]
    cols: dict[str, list] = {k: [] for k in ("K_S", "TV_S", "TD_S", "dbm_lhs", "dbm_rhs", "dbm_verdict")}
    for l in range(len(spectra)):
        if series.steps.size // 2 < MIN_INCREMENTS + 1 or min(series.shapes[l]) < 2:
            vals: list = [np.nan] * 5 + ["n/a"]
        else:
            r = series_dbm(series, l)
            vals = [r.spacing.K_S, r.spacing.TV_S, r.spacing.TD_S, r.lhs, r.rhs, r.verdict]
        for k, val in zip(cols, vals):
            cols[k].append(val)
    for k, val in cols.items():
        ds[k] = ("layer", np.array(val, dtype=object if k == "dbm_verdict" else np.float64))
    return ds


PRECISIONS = {"float64": np.float64, "float32": np.float32}


def diagnose(model, *, activation=None, level: float = 0.01, spectra: list[WeightSpectrum] | None = None,
             precision: str = "float64"):
    """Per-layer diagnostics of a network as an ``xarray.Dataset`` with dimension ``layer`` (ℓ = 1..L).

    ``model``: anything :func:`as_imported` reads (``activation`` is needed for a torch state dict or a Flax tree).
    ``level``: false-alarm probability of the Tracy–Widom outlier test. ``spectra``: precomputed spectra (one per
    layer; the checkpoint recorder passes its own). ``precision``: "float64" (default) or "float32" Gram matrices and
    eigendecompositions (≈ 1.5× cheaper; absolute error ~1e-6 λ_max, see :func:`gram_eigenvalues`). Variables: n_out,
    n_in, C_W, C_b, W_mean, C_W_ratio, chi_parallel, chi_perp, verdict, the scalar fields of :class:`WeightSpectrum`,
    and ``eigenvalues`` (layer, rank), NaN-padded.
    Attributes: activation, regime (network, :func:`deepeft.phase`), universality_class, C_W_critical, C_b_critical.
    """
    import xarray as xr

    from ..theory.criticality import phase

    im = as_imported(model, activation)
    net = im.net
    spectra_given = spectra is not None
    if spectra is None:
        if precision not in PRECISIONS:
            raise DeepEFTInputError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}.")
        eigs = gram_eigenvalues_many([W for W, _ in im.params], PRECISIONS[precision])
        spectra = [spectrum_of_eigenvalues(e, W.shape, level=level) for e, (W, _) in zip(eigs, im.params)]
    elif len(spectra) != net.L:
        raise DeepEFTInputError(f"got {len(spectra)} spectra for a network of L = {net.L} layers.")
    L = net.L
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepEFTWarning)
        rep = phase(net)
    chi_perp = np.concatenate([[np.nan], np.asarray(rep.recursion.chi_perp, np.float64)[: L - 1]])
    chi_par = np.concatenate([[np.nan], np.asarray(rep.recursion.chi_parallel, np.float64)[: L - 1]])
    verdict = ["input"] + [layer_verdict(float(c), L) for c in chi_perp[1:]]
    crit = dict(_criticality_attrs(net.activation))
    data = _spectra_vars(spectra)
    data.update({
        "C_W": ("layer", im.C_W), "C_b": ("layer", im.C_b), "W_mean": ("layer", im.W_mean),
        "C_W_ratio": ("layer", im.C_W / crit["C_W_critical"]),
        "chi_parallel": ("layer", chi_par), "chi_perp": ("layer", chi_perp),
        "verdict": ("layer", np.array(verdict, dtype=object)),
    })
    ds = xr.Dataset(data, coords={"layer": np.arange(1, L + 1), "name": ("layer", np.array(im.names, dtype=object))})
    ds.attrs.update({"activation": net.activation.name, "regime": rep.regime, "source": im.source,
                     "tw_level": level, "precision": "given" if spectra_given else precision, "widths": list(net.n),
                     **crit})
    return ds
