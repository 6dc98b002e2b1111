"""Read a model file for ``deepeft diagnose``: a PyTorch checkpoint (.pt/.pth/.ckpt/.bin) or a recorded Zarr series."""

from __future__ import annotations

from pathlib import Path

from ..errors import DeepEFTInputError
from ..interop import ImportedModel, from_torch

__all__ = ["load_model", "STATE_DICT_KEYS"]

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")  # where training scripts nest the weights


def _is_tensor_dict(d) -> bool:
    return isinstance(d, dict) and bool(d) and all(type(v).__module__.startswith("torch") for v in d.values())


def _torch_checkpoint(path: Path, activation, trust_pickle: bool) -> ImportedModel:
    try:
        import torch
    except ImportError:
        raise DeepEFTInputError(f"{path} is a PyTorch file: install torch (pip install 'deepeft[torch]').") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except FileNotFoundError:
        raise DeepEFTInputError(f"no such file: {path}.") from None
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, … for non-weights content
        if not trust_pickle and "weights_only" in str(exc):
            raise DeepEFTInputError(
                f"{path} holds a pickled Python object (a whole nn.Module?), which is not loaded by default because "
                "unpickling runs code. Save model.state_dict() instead, or pass --trust-pickle if you trust the file."
            ) from None
        raise DeepEFTInputError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc}).") from None
    if isinstance(obj, torch.nn.Module):
        return from_torch(obj, activation)
    if _is_tensor_dict(obj):
        return from_torch(obj, activation)
    if isinstance(obj, dict):
        for key in STATE_DICT_KEYS:
            inner = obj.get(key)
            if isinstance(inner, torch.nn.Module) or _is_tensor_dict(inner):
                return from_torch(inner, activation)
    raise DeepEFTInputError(
        f"{path} holds a {type(obj).__name__} without a state dict (looked at the top level and keys {STATE_DICT_KEYS})."
    )


def load_model(path, activation=None, *, trust_pickle: bool = False) -> ImportedModel:
    """The model stored at ``path``: a PyTorch checkpoint (``activation`` needed for a state dict), or the last
    checkpoint of a Zarr series written by :class:`~deepeft.diagnostics.series.SpectrumRecorder`."""
    p = Path(path)
    if p.is_dir():
        from .series import load_series

        return load_series(p).model_at(-1, activation)  # type: ignore[return-value]
    if not p.exists():
        raise DeepEFTInputError(f"no such file or folder: {p}.")
    if p.suffix.lower() in (".pt", ".pth", ".ckpt", ".bin", ".tar"):
        return _torch_checkpoint(p, activation, trust_pickle)
    raise DeepEFTInputError(f"{p}: unknown model format {p.suffix!r}; deepeft reads PyTorch checkpoints (.pt, .pth, .ckpt) "
                            "and Zarr checkpoint folders written by deepeft's recorder.")
