"""PyTorch → deepeft: ``from_torch(module_or_state_dict)`` (optional dependency ``torch``, extra ``deepeft[torch]``).

Accepted: a live ``nn.Module`` that is a chain of ``nn.Linear`` layers and elementwise activations —
``nn.Sequential`` (nested ones are flattened), a bare ``nn.Linear``, or any module whose ``forward``
``torch.fx`` traces to such a chain (e.g. ``self.fc2(torch.relu(self.fc1(x)))``) — or a state dict
(``{"0.weight": …, "0.bias": …, "2.weight": …}``; a state dict has no activations, so pass ``activation=``).

Activations map to deepeft's registry: ReLU → relu, Tanh → tanh, GELU(approximate="none") → gelu,
SiLU → swish, Sigmoid → sigmoid, Identity → linear, LeakyReLU(s) → leaky_relu(slope=s),
ELU(α) → elu(alpha=α), Softplus(β=1) → softplus. ``nn.Dropout`` (identity at inference) and a
leading ``nn.Flatten`` are skipped. Anything else raises a :class:`~deepeft.DeepEFTInputError` naming
the layer. deepeft's MLP has ONE activation between every pair of Linear layers and a linear output.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..activations import Activation
from ..activations import activation as _activation
from ..errors import DeepEFTInputError
from .model import ImportedModel, build_model

__all__ = ["from_torch", "SUPPORTED_TORCH_ACTIVATIONS"]

SUPPORTED_TORCH_ACTIVATIONS = ("ReLU", "Tanh", "GELU", "SiLU", "Sigmoid", "Identity", "LeakyReLU", "ELU", "Softplus")
_SUPPORTED_MSG = (
    "deepeft imports Linear + elementwise activations (" + ", ".join(SUPPORTED_TORCH_ACTIVATIONS) + "); "
    "Dropout and a leading Flatten are skipped"
)


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - exercised only without torch
        raise DeepEFTInputError(
            "from_torch needs PyTorch: pip install 'deepeft[torch]' (CPU: pip install torch==2.13.0)."
        ) from None
    return torch


def _module_activation(m, where: str) -> Activation | None:
    """deepeft Activation for an activation module (None: not an activation)."""
    nn = _torch().nn
    simple = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.SiLU: "swish", nn.Sigmoid: "sigmoid", nn.Identity: "linear"}
    for cls, name in simple.items():
        if type(m) is cls:
            return _activation(name)
    if type(m) is nn.GELU:
        if m.approximate != "none":
            raise DeepEFTInputError(
                f"GELU(approximate={m.approximate!r}) {where} is not supported: deepeft's gelu is the exact "
                "(erf) form; use nn.GELU() (approximate='none')."
            )
        return _activation("gelu")
    if type(m) is nn.LeakyReLU:
        return _activation("leaky_relu", slope=float(m.negative_slope))
    if type(m) is nn.ELU:
        return _activation("elu", alpha=float(m.alpha))
    if type(m) is nn.Softplus:
        if float(m.beta) != 1.0:
            raise DeepEFTInputError(f"Softplus(beta={m.beta}) {where} is not supported: only beta = 1 (log(1 + e^z)).")
        return _activation("softplus")
    return None


def _functional_activation(fn, args, kwargs, where: str) -> Activation | None:
    """deepeft Activation for torch.relu / F.gelu / … met in an fx graph (None: not an activation)."""
    torch = _torch()
    F = torch.nn.functional
    names = {torch.relu: "relu", F.relu: "relu", torch.tanh: "tanh", F.tanh: "tanh", torch.sigmoid: "sigmoid",
             F.sigmoid: "sigmoid", F.silu: "swish", F.softplus: "softplus", F.elu: "elu"}
    if fn is F.gelu:
        if kwargs.get("approximate", "none") != "none":
            raise DeepEFTInputError(f"gelu(approximate={kwargs['approximate']!r}) {where} is not supported: use the exact form.")
        return _activation("gelu")
    if fn is F.leaky_relu:
        slope = args[1] if len(args) > 1 else kwargs.get("negative_slope", 0.01)
        return _activation("leaky_relu", slope=float(slope))
    if fn in names:
        if fn is F.elu:
            return _activation("elu", alpha=float(args[1] if len(args) > 1 else kwargs.get("alpha", 1.0)))
        if fn is F.softplus and float(kwargs.get("beta", args[1] if len(args) > 1 else 1.0)) != 1.0:
            raise DeepEFTInputError(f"softplus with beta != 1 {where} is not supported.")
        return _activation(names[fn])
    return None


def _tensor(t) -> np.ndarray:
    return t.detach().cpu().to(_torch().float64).numpy()


def _flatten_sequential(module, prefix: str = ""):
    """(path, module) leaves of nested nn.Sequential, in forward order."""
    nn = _torch().nn
    out = []
    for name, child in module.named_children():
        path = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            out.extend(_flatten_sequential(child, path + "."))
        else:
            out.append((path, child))
    return out


def _chain_from_modules(items):
    """[(path, module)] → chain entries ("linear", path, W, b) | ("act", path, Activation) | ("skip", path)."""
    nn = _torch().nn
    chain = []
    for i, (path, m) in enumerate(items):
        where = f"at index {i} ('{path}')"
        if isinstance(m, nn.Linear):
            chain.append(("linear", path, _tensor(m.weight), None if m.bias is None else _tensor(m.bias)))
        elif isinstance(m, nn.Dropout) or (isinstance(m, nn.Flatten) and not any(c[0] == "linear" for c in chain)):
            chain.append(("skip", path))
        else:
            act = _module_activation(m, where)
            if act is None:
                raise DeepEFTInputError(f"{type(m).__name__} {where} is not supported: {_SUPPORTED_MSG}.")
            chain.append(("act", path, act))
    return chain


def _chain_from_fx(module):
    """Trace a custom module with torch.fx and read it as a chain (each node consumes the previous one)."""
    torch = _torch()
    try:
        gm = torch.fx.symbolic_trace(module)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means "not a plain chain"
        raise DeepEFTInputError(
            f"{type(module).__name__} is not an nn.Sequential and torch.fx could not trace it ({exc}); "
            "rebuild it as nn.Sequential(Linear, activation, …, Linear) or pass its state_dict() with activation=."
        ) from None
    chain, prev = [], None
    for i, node in enumerate(gm.graph.nodes):
        if node.op == "placeholder":
            if prev is not None:
                raise DeepEFTInputError(f"{type(module).__name__}.forward takes more than one input; deepeft imports x ↦ f(x).")
            prev = node
            continue
        if node.op == "output":
            if node.args[0] is not prev:
                raise DeepEFTInputError(f"{type(module).__name__}.forward does not return the last layer's output.")
            break
        tensor_args = [a for a in node.args if isinstance(a, torch.fx.Node)]
        if tensor_args != [prev]:
            raise DeepEFTInputError(
                f"node {i} ('{node.name}', {node.op} {node.target}) of {type(module).__name__}.forward is not part of a "
                f"single chain (skip connection or several inputs); {_SUPPORTED_MSG}."
            )
        where = f"at node {i} ('{node.name}')"
        if node.op == "call_module":
            chain.extend(_chain_from_modules([(str(node.target), gm.get_submodule(node.target))]))
        elif node.op == "call_function":
            act = _functional_activation(node.target, node.args, node.kwargs, where)
            if act is None:
                raise DeepEFTInputError(f"function {getattr(node.target, '__name__', node.target)} {where} is not supported: "
                                        f"{_SUPPORTED_MSG}.")
            chain.append(("act", node.name, act))
        elif node.op == "call_method" and node.target in ("relu", "tanh", "sigmoid"):
            chain.append(("act", node.name, _activation(str(node.target))))
        else:
            raise DeepEFTInputError(f"{node.op} {node.target} {where} is not supported: {_SUPPORTED_MSG}.")
        prev = node
    return chain


def _layers_and_activation(chain, given: Activation | None):
    """Check the chain is Linear (act Linear)* with one activation everywhere; → (layers, activation)."""
    layers, gaps, current = [], [], []
    for entry in chain:
        if entry[0] == "skip":
            continue
        if entry[0] == "act":
            if not layers:
                raise DeepEFTInputError(f"activation '{entry[1]}' comes before the first Linear layer; deepeft's "
                                        "network starts with a Linear layer on the raw input.")
            current.append(entry)
            continue
        if layers:
            gaps.append(current)
        current = []
        layers.append((entry[1], entry[2], entry[3]))
    if current:
        raise DeepEFTInputError(
            f"the network ends with an activation ('{current[-1][1]}'); deepeft's output layer is linear "
            "(z^(L), book (2.5)): drop the final activation (apply it to deepeft's output yourself)."
        )
    acts = []
    for gap in gaps:
        nonlinear = [g for g in gap if g[2].name != "linear"]
        if len(nonlinear) > 1:
            raise DeepEFTInputError(f"two activations in a row ('{nonlinear[0][1]}', '{nonlinear[1][1]}'); deepeft "
                                    "applies one elementwise σ between Linear layers.")
        if nonlinear:
            acts.append((nonlinear[0][1], nonlinear[0][2]))
        else:  # Linear directly after Linear (or through nn.Identity): σ(z) = z
            acts.append((gap[0][1] if gap else "no activation", _activation("linear")))
    if len({a for _, a in acts}) > 1:
        first, other = acts[0], next(a for a in acts if a[1] != acts[0][1])
        raise DeepEFTInputError(
            f"deepeft's MLP uses one activation in every hidden layer; this network has {first[1].name} ('{first[0]}') "
            f"and {other[1].name} ('{other[0]}')."
        )
    found = acts[0][1] if acts else None
    if given is not None and found is not None and given != found:
        raise DeepEFTInputError(f"activation={given.name!r} was passed but the module applies {found.name}.")
    return layers, given or found or _activation("linear")


def _chain_from_state_dict(sd: Mapping):
    groups: dict[str, dict[str, object]] = {}
    for key, value in sd.items():
        prefix, _, leaf = str(key).rpartition(".")
        if leaf not in ("weight", "bias"):
            raise DeepEFTInputError(
                f"state-dict entry '{key}' is not a Linear weight or bias (a buffer such as BatchNorm's running "
                f"statistics?); {_SUPPORTED_MSG}."
            )
        groups.setdefault(prefix, {})[leaf] = value
    chain = []
    for prefix, g in groups.items():
        if "weight" not in g:
            raise DeepEFTInputError(f"state-dict layer '{prefix}' has a bias but no weight.")
        W = g["weight"]
        if getattr(W, "ndim", 2) != 2:
            raise DeepEFTInputError(
                f"state-dict layer '{prefix}' has a {W.ndim}-D weight of shape {tuple(W.shape)} (a convolution or a "  # type: ignore[attr-defined]
                f"normalisation layer?); {_SUPPORTED_MSG}."
            )
        b = g.get("bias")
        chain.append(("linear", prefix, _tensor(W), None if b is None else _tensor(b)))
    return chain


def from_torch(model, activation: str | Activation | object | None = None) -> ImportedModel:
    """Import a PyTorch MLP: a live ``nn.Module`` or a state dict (then ``activation`` is required).

    Returns an :class:`~deepeft.interop.ImportedModel` (spec with the empirical C_W, C_b per layer
    (2.19)–(2.20), float64 weights in deepeft's layout). For a live module ``activation`` is read
    from the module (passing a different one is an error).
    """
    torch = _torch()
    given = None if activation is None else _activation(activation)
    if isinstance(model, torch.nn.Module):
        if isinstance(model, torch.nn.Sequential):
            chain = _chain_from_modules(_flatten_sequential(model))
        elif isinstance(model, torch.nn.Linear):
            chain = _chain_from_modules([("", model)])
        else:
            chain = _chain_from_fx(model)
    elif isinstance(model, Mapping):
        if given is None:
            raise DeepEFTInputError(
                "a state dict holds no activations: pass activation=, e.g. de.from_torch(sd, activation='relu')."
            )
        return build_model([(c[1], c[2], c[3]) for c in _chain_from_state_dict(model)], given, "torch")
    else:
        raise DeepEFTInputError(
            f"from_torch takes an nn.Module or a state dict, got {type(model).__name__}."
        )
    layers, act = _layers_and_activation(chain, given)
    return build_model(layers, act, "torch")
