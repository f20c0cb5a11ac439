"""Bytes per object, measured with tracemalloc."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Callable


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
