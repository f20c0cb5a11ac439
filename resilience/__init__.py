"""resilience: fast, correct fault-tolerance primitives.

The hot paths are compiled Cython classes with pure-Python twins;
``IMPLEMENTATION`` says which one this process loaded (``"cython"`` or
``"python"``).
"""

from __future__ import annotations

from ._core import (
    IMPLEMENTATION,
    BreakerCore,
    CountWindow,
    SemaphoreCore,
    TimeWindow,
    TokenBucket,
)

__version__ = "0.1.0"

__all__ = [
    "IMPLEMENTATION",
    "BreakerCore",
    "CountWindow",
    "SemaphoreCore",
    "TimeWindow",
    "TokenBucket",
    "__version__",
]
