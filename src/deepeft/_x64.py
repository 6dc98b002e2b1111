"""Float64 for theory, whatever the user's JAX settings (DESIGN: theory in float64 always).

We never flip JAX's global x64 flag: theory code runs inside :func:`x64`, a context manager
around ``jax.enable_x64(True)``, so the user's own JAX arrays keep their dtype.
"""

from __future__ import annotations

import contextlib
import functools

import jax


@contextlib.contextmanager
def x64():
    with jax.enable_x64(True):
        yield


def in_x64(fn):
    """Decorator: run ``fn`` with float64 enabled."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper
