"""The one error type deepeft raises for bad input.

Every public function validates its inputs at the boundary and raises
:class:`DeepEFTInputError` (a :class:`ValueError`) with a message that says what to change.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DeepEFTInputError(ValueError):
    """Bad input to a deepeft function: the message says what to change."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' hint for a misspelt ``name`` ('' when nothing is close)."""
    close = difflib.get_close_matches(name.lower(), [c.lower() for c in choices], n=3, cutoff=0.5)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


class DeepEFTWarning(UserWarning):
    """A result is computed but physically suspect (e.g. an exponentially exploding or vanishing phase,
    finite-width corrections of order one, or an under-resolved quadrature); the message says why."""
