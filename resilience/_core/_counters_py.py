"""Event counters, pure-Python twin of ``_counters_c.pyx``."""

from __future__ import annotations

import sys

from . import _fork
from ._nocopy import NoCopy
from ._validate import count

UINT64 = (1 << 64) - 1
MAX_STEP = sys.maxsize
# Memory follows the size (8 bytes a counter); the policies keep a few dozen.
MAX_COUNTERS = 1024


class Counters(NoCopy):
    """``size`` lifetime counters, counted by index and read all at once.

    The policies keep their statistics here, so a compiled wrapper counts
    without calling into Python and a scrape reads a consistent snapshot.
    Counts are unsigned 64-bit and wrap, like the C counters.
    """

    __slots__ = ("_lock", "_size", "_values")

    def __init__(self, size: int) -> None:
        self._size = count("size", size, maximum=MAX_COUNTERS)
        self._values = [0] * self._size
        self._lock = _fork.lock()

    def add(self, index: int, n: int = 1) -> None:
        """Add ``n`` (>= 0) to counter ``index``."""
        if not (
            type(index) is int and type(n) is int and 0 <= index < self._size and 0 <= n <= MAX_STEP
        ):
            # Anything but the policies' per-call case: checked (and raised) as always.
            index = self._index(index)
            n = count("n", n, 0)
        values = self._values
        lock = self._lock
        lock.acquire()
        try:
            # Unsigned 64-bit, as the compiled twin's C counters wrap.
            values[index] = (values[index] + n) & UINT64
        finally:
            lock.release()

    def _index(self, index: int) -> int:
        i = count("index", index, 0)
        if i >= self._size:
            raise IndexError(f"index must be < {self._size}, got {index!r}")
        return i

    def snapshot(self) -> tuple[int, ...]:
        """Every counter, read at one moment."""
        with self._lock:
            return tuple(self._values)

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"<Counters {list(self.snapshot())}>"
