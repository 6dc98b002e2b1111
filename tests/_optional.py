"""Optional packages in tests: skipped when absent, unless CI sets DEEPEFT_REQUIRE_<PKG>=1 (then a failure)."""

from __future__ import annotations

import importlib
import os

import pytest


def require(module: str):
    """``import module`` or skip; with DEEPEFT_REQUIRE_<MODULE>=1 a missing package fails instead."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get(f"DEEPEFT_REQUIRE_{module.upper()}") == "1":
            pytest.fail(f"DEEPEFT_REQUIRE_{module.upper()}=1 but {module} is not installed")
        pytest.skip(f"{module} not installed")
