"""Bytes per object, measured with tracemalloc."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Callable
from typing import Any


def bytes_per(make: Callable[[], object], count: int) -> float:
    """Bytes allocated per ``make()``, over ``count`` objects kept alive together."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        objects = [make() for _ in range(count)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # The list holding them is not part of an object.
    return (after - before - sys.getsizeof(objects)) / count


def keyed_bytes(make: Callable[[int], Any], max_keys: int, keys: int) -> tuple[float, int]:
    """``(bytes per kept key, keys kept)`` of a keyed limiter ``make(max_keys)`` after
    deciding for ``keys`` distinct keys (more than it may keep): what it holds then."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        limiter = make(max_keys)
        for key in range(keys):
            limiter.try_acquire(key)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    kept: int = limiter.stats.keys
    return (after - before) / kept, kept
