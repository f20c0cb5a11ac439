"""The one parser of the boolean switches read from the environment.

setup.py loads this file by path (the package is not importable while it is
being built) and the runtime selector imports it, so the build and the
import agree on what ``RESILIENCE_NO_EXTENSIONS=yes`` means.
"""

from __future__ import annotations

import os

TRUE_VALUES = frozenset({"1", "true", "yes", "on"})

NO_EXTENSIONS_VAR = "RESILIENCE_NO_EXTENSIONS"


def env_flag(name: str) -> bool:
    """Return True when the variable is set to 1, true, yes or on (any case)."""
    return os.environ.get(name, "").strip().lower() in TRUE_VALUES


def no_extensions() -> bool:
    """True when the compiled extensions are switched off for build or import."""
    return env_flag(NO_EXTENSIONS_VAR)
