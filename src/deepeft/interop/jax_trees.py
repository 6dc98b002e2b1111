"""JAX → deepeft: Equinox MLPs, Flax (Linen) Dense parameter trees, and JAX activation callables.

* :func:`from_equinox` — an ``eqx.nn.MLP`` or an ``eqx.nn.Sequential`` of ``eqx.nn.Linear`` and
  ``eqx.nn.Lambda(activation)`` (weights (n_out, n_in), deepeft's layout).
* :func:`from_flax` — a Flax Linen parameter tree ``{"params": {"Dense_0": {"kernel", "bias"}, …}}``
  (kernels (n_in, n_out)), an NNX module or ``nnx.State`` (its ``nnx.Param`` leaves as a pure dict); a
  Linen tree is read as a plain nested dict, so Flax itself is not imported. Any nested mapping whose
  leaves are ``kernel``/``bias`` (or ``weight``/``bias``, ``w``/``b``) pairs works: this is the generic
  parameter-tree importer for hand-written JAX code. Layers are taken in the tree's order (Linen keeps
  definition order); integer keys (NNX lists) and one-prefix auto-names (``Dense_10`` after ``Dense_9``)
  are sorted numerically; NNX sorts named attributes alphabetically, so a shape chain that does not fit
  is refused with that explanation.
* :func:`match_activation` — a JAX callable → a named deepeft activation when it equals one on a
  probe grid to 1e-12 (so closed-form Gaussian integrals are used), else a custom activation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from ..activations import Activation
from ..activations import activation as _activation
from ..errors import DeepEFTInputError
from .model import ImportedModel, build_model

__all__ = ["from_equinox", "from_flax", "match_activation"]

_PROBE = np.linspace(-6.0, 6.0, 97)
_CANDIDATES: tuple[tuple[str, dict[str, float]], ...] = (
    ("linear", {}), ("relu", {}), ("tanh", {}), ("sigmoid", {}), ("swish", {}), ("gelu", {}), ("softplus", {}),
    ("elu", {}), ("leaky_relu", {"slope": 0.01}), ("erf", {}), ("sin", {}),
)
_MATCH_TOL = 1e-12  # float64 agreement on the probe grid that identifies a callable with a registry activation


def match_activation(fn) -> Activation:
    """The registry activation equal to ``fn`` on [−6, 6] to 1e-12 (e.g. ``jax.nn.relu`` → relu), else
    ``de.activation(fn)`` (a custom activation). ``jax.nn.gelu``'s default tanh approximation is NOT gelu."""
    if isinstance(fn, (str, Activation)):
        return _activation(fn)
    import jax.numpy as jnp

    from .._x64 import x64

    with x64():
        try:
            y = np.asarray(fn(jnp.asarray(_PROBE)), dtype=np.float64)
        except Exception as exc:  # noqa: BLE001
            raise DeepEFTInputError(f"the activation {fn!r} could not be evaluated on a JAX array: {exc}") from None
        for name, params in _CANDIDATES:  # eager evaluation: no compilation per candidate
            act = _activation(name, **params)
            ref = np.asarray(act.fn(jnp.asarray(_PROBE)), dtype=np.float64)
            if y.shape == _PROBE.shape and np.max(np.abs(ref - y)) < _MATCH_TOL:
                return act
    return _activation(fn, name=f"custom_{getattr(fn, '__name__', 'activation')}")


def from_equinox(model) -> ImportedModel:
    """Import an ``eqx.nn.MLP`` or an ``eqx.nn.Sequential`` of Linear layers and Lambda activations."""
    try:
        import equinox as eqx
    except ImportError:  # pragma: no cover
        raise DeepEFTInputError("from_equinox needs Equinox: pip install equinox.") from None
    if isinstance(model, eqx.nn.MLP):
        final = match_activation(model.final_activation)
        if final.name != "linear":
            raise DeepEFTInputError(
                f"the MLP's final_activation is {final.name}; deepeft's output layer is linear (book (2.5)): "
                "build it with final_activation=lambda x: x."
            )
        layers = [(f"layers[{i}]", lin.weight, lin.bias) for i, lin in enumerate(model.layers)]
        return build_model(layers, match_activation(model.activation), "equinox")
    if isinstance(model, eqx.nn.Sequential):
        layers, acts, pending = [], [], None
        for i, m in enumerate(model.layers):
            if isinstance(m, eqx.nn.Linear):
                if layers:
                    acts.append(pending or _activation("linear"))
                layers.append((f"layers[{i}]", m.weight, m.bias))
                pending = None
            elif isinstance(m, eqx.nn.Lambda):
                if not layers:
                    raise DeepEFTInputError(f"Lambda at index {i} comes before the first Linear layer.")
                if pending is not None:
                    raise DeepEFTInputError(f"two activations in a row at index {i}; deepeft applies one σ per layer.")
                pending = match_activation(m.fn)
            else:
                raise DeepEFTInputError(
                    f"{type(m).__name__} at index {i} is not supported: deepeft imports Linear + elementwise activations."
                )
        if pending is not None and pending.name != "linear":
            raise DeepEFTInputError("the Sequential ends with an activation; deepeft's output layer is linear.")
        if len(set(acts)) > 1:
            names = sorted({a.name for a in acts})
            raise DeepEFTInputError(f"deepeft's MLP uses one activation in every hidden layer; got {names}.")
        return build_model(layers, acts[0] if acts else _activation("linear"), "equinox")
    raise DeepEFTInputError(f"from_equinox takes an eqx.nn.MLP or eqx.nn.Sequential, got {type(model).__name__}.")


def is_nnx(obj) -> bool:
    """Whether ``obj`` is a Flax NNX module or ``nnx.State`` (checked without importing Flax)."""
    import sys

    nnx = sys.modules.get("flax.nnx")
    return nnx is not None and isinstance(obj, (nnx.Module, nnx.State))


def _nnx_params(obj):
    """An NNX module or ``nnx.State`` → its parameters as a plain nested dict (other inputs unchanged)."""
    if not is_nnx(obj):
        return obj
    from flax import nnx

    if isinstance(obj, nnx.Module):
        obj = nnx.state(obj, nnx.Param)
    return nnx.to_pure_dict(obj) if hasattr(nnx, "to_pure_dict") else obj.to_pure_dict()


_LEAF_PAIRS = (("kernel", "bias", "in_out"), ("weight", "bias", "out_in"), ("w", "b", "in_out"))


def _natural_key(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


_AUTO_NAME = re.compile(r"^(.*?)_?(\d+)$")


def _ordered_keys(tree: Mapping) -> list:
    """Sibling keys in forward order. Integer keys (NNX lists, ``nnx.Sequential``) and Linen auto-names with one
    prefix (``Dense_0`` … ``Dense_11``) are sorted numerically — a restored checkpoint may have them in string order
    (``Dense_10`` before ``Dense_2``); any other names keep the mapping's order (Flax Linen: definition order)."""
    keys = list(tree)
    if all(isinstance(k, (int, np.integer)) for k in keys):
        return sorted(keys)
    m = [_AUTO_NAME.match(str(k)) for k in keys]
    if all(m) and len({x.group(1) for x in m if x}) == 1:
        return sorted(keys, key=lambda k: _natural_key(str(k)))
    return keys


def _dense_leaves(tree, path: str):
    """[(path, W, b, layout)] of every dense layer in a nested mapping, in (natural-sorted) key order."""
    for kw, kb, layout in _LEAF_PAIRS:
        if kw in tree and all(not isinstance(v, Mapping) for v in tree.values()):
            extra = sorted(set(tree) - {kw, kb})
            if extra:
                raise DeepEFTInputError(f"'{path}' holds {extra} besides {kw}/{kb}: not a Dense layer; "
                                        "deepeft imports dense layers + elementwise activations.")
            return [(path, tree[kw], tree.get(kb), layout)]
    out = []
    for key in _ordered_keys(tree):
        sub = tree[key]
        p = f"{path}/{key}" if path else str(key)
        if not isinstance(sub, Mapping):
            raise DeepEFTInputError(f"'{p}' is a bare array, not a dense layer's kernel/bias pair; deepeft imports "
                                    "trees whose leaves are {'kernel', 'bias'} (Flax) or {'weight', 'bias'} dicts.")
        out.extend(_dense_leaves(sub, p))
    return out


def from_flax(params, activation: str | Activation | object = "relu") -> ImportedModel:
    """Import a Flax Linen MLP's parameter tree (``variables`` or ``variables["params"]``), a Flax NNX MLP (module or
    ``nnx.State``), or any nested dict of ``{"kernel": (n_in, n_out), "bias": (n_out,)}`` (also
    ``{"weight": (n_out, n_in), "bias"}``) layers.

    ``activation``: the σ your ``__call__`` applies between layers (a name or a JAX callable); the output is linear.
    """
    params = _nnx_params(params)
    if not isinstance(params, Mapping):
        raise DeepEFTInputError(f"from_flax takes a (nested) dict of parameters, got {type(params).__name__}.")
    tree = params["params"] if "params" in params and isinstance(params["params"], Mapping) else params
    leaves = _dense_leaves(tree, "")
    layouts = {lay for *_, lay in leaves}
    if len(layouts) > 1:
        raise DeepEFTInputError("the tree mixes 'kernel' (n_in, n_out) and 'weight' (n_out, n_in) layers; use one convention.")
    layout = layouts.pop() if layouts else "in_out"
    io = (0, 1) if layout == "in_out" else (1, 0)  # (axis of n_in, axis of n_out)
    for (p0, W0, *_), (p1, W1, *_) in zip(leaves, leaves[1:]):
        s0, s1 = np.shape(W0), np.shape(W1)
        if len(s0) == 2 and len(s1) == 2 and s0[io[1]] != s1[io[0]]:
            raise DeepEFTInputError(
                f"layer '{p1}' takes {s1[io[0]]} inputs but the layer before it in the tree, '{p0}', has {s0[io[1]]} "
                "outputs. deepeft takes the layers in the tree's order: Flax Linen keeps definition order, but NNX states "
                "sort attributes by name — keep the layers in an nnx.List / nnx.Sequential, or pass a dict in forward order.")
    return build_model([(p, W, b) for p, W, b, _ in leaves], match_activation(activation), "flax", layout=layout)
