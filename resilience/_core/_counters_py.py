"""Event counters, pure-Python twin of ``_counters_c.pyx``."""

from __future__ import annotations

import threading

from ._validate import count

UINT64 = (1 << 64) - 1


class Counters:
    """``size`` lifetime counters, counted by index and read all at once.

    The policies keep their statistics here, so a compiled wrapper counts
    without calling into Python and a scrape reads a consistent snapshot.
    Counts are unsigned 64-bit and wrap, like the C counters.
    """

    __slots__ = ("_lock", "_values")

    def __init__(self, size: int) -> None:
        self._values = [0] * count("size", size)
        self._lock = threading.Lock()

    def add(self, index: int, n: int = 1) -> None:
        """Add ``n`` (>= 0) to counter ``index``."""
        i = self._index(index)
        step = count("n", n, 0)
        with self._lock:
            # Unsigned 64-bit, as the compiled twin's C counters wrap.
            self._values[i] = (self._values[i] + step) & UINT64

    def _index(self, index: int) -> int:
        i = count("index", index, 0)
        if i >= len(self._values):
            raise IndexError(f"index must be < {len(self._values)}, got {index!r}")
        return i

    def snapshot(self) -> tuple[int, ...]:
        """Every counter, read at one moment."""
        with self._lock:
            return tuple(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<Counters {list(self.snapshot())}>"
