"""The hot primitives, compiled when the extension loads, pure Python otherwise.

This is the one place that chooses. ``RESILIENCE_NO_EXTENSIONS`` (see
``_env``) or a failed import of any compiled module selects the pure twins
for all of them, so the two never mix. Both stay loadable side by side with
``load("cython")`` and ``load("python")`` for tests and benchmarks.
"""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace
from typing import TYPE_CHECKING

from ._breaker_py import CLOSED, DISABLED, FORCED_OPEN, HALF_OPEN, OPEN, STATE_NAMES
from ._env import no_extensions

# module stem -> the classes it defines, the same in both twins
CLASSES = {
    "_breaker": ("BreakerCore",),
    "_bucket": ("TokenBucket",),
    "_calls": (
        "AsyncBreakerCall",
        "AsyncLimiterCall",
        "AsyncRetryCall",
        "BreakerCall",
        "BulkheadCall",
        "BulkheadGate",
        "LimiterCall",
        "RetryCall",
    ),
    "_counters": ("Counters",),
    "_semaphore": ("SemaphoreCore",),
    "_sketch": ("LatencySketch", "LatencyWindow"),
    "_window": ("CountWindow", "TimeWindow"),
}
SUFFIXES = {"cython": "_c", "python": "_py"}


def load(implementation: str) -> SimpleNamespace:
    """The classes of one twin (``"cython"`` or ``"python"``), by name.

    Raises ImportError when the compiled twin was not built.
    """
    suffix = SUFFIXES[implementation]
    namespace = SimpleNamespace(IMPLEMENTATION=implementation)
    for stem, names in CLASSES.items():
        module = import_module(f"{__name__}.{stem}{suffix}")
        for name in names:
            setattr(namespace, name, getattr(module, name))
    return namespace


def _select() -> SimpleNamespace:
    if not no_extensions():
        try:
            return load("cython")
        except ImportError:
            pass
    return load("python")


# The twin in use. The policies read their core classes from here when they
# are constructed, so a test can run them on either twin by replacing it.
SELECTED = _select()

if TYPE_CHECKING:
    from ._breaker_py import BreakerCore
    from ._bucket_py import TokenBucket
    from ._semaphore_py import SemaphoreCore
    from ._sketch_py import LatencySketch, LatencyWindow
    from ._window_py import CountWindow, TimeWindow

    IMPLEMENTATION: str
else:
    IMPLEMENTATION = SELECTED.IMPLEMENTATION
    BreakerCore = SELECTED.BreakerCore
    TokenBucket = SELECTED.TokenBucket
    SemaphoreCore = SELECTED.SemaphoreCore
    LatencySketch = SELECTED.LatencySketch
    LatencyWindow = SELECTED.LatencyWindow
    CountWindow = SELECTED.CountWindow
    TimeWindow = SELECTED.TimeWindow

__all__ = [
    "CLASSES",
    "CLOSED",
    "DISABLED",
    "FORCED_OPEN",
    "HALF_OPEN",
    "IMPLEMENTATION",
    "OPEN",
    "SELECTED",
    "STATE_NAMES",
    "BreakerCore",
    "CountWindow",
    "LatencySketch",
    "LatencyWindow",
    "SemaphoreCore",
    "TimeWindow",
    "TokenBucket",
    "load",
]
