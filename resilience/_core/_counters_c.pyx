# cython: auto_pickle=False
"""Event counters, compiled twin of ``_counters_py.py``."""

cimport cython
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.pyport cimport PY_SSIZE_T_MAX

from resilience._core._counters_py import MAX_COUNTERS
from resilience._core._nocopy import refuse_copy
from resilience._core._validate import count

cdef object MAX_STEP = PY_SSIZE_T_MAX


cdef class Counters:
    """``size`` lifetime counters, counted by index and read all at once.

    The policies keep their statistics here, so a compiled wrapper counts
    without calling into Python and a scrape reads a consistent snapshot.
    Counts are unsigned 64-bit and wrap.
    """

    __reduce_ex__ = refuse_copy  # neither copied nor pickled

    def __cinit__(self, *args, **kwargs):
        self._values = NULL

    def __init__(self, size):
        cdef Py_ssize_t n = count("size", size, maximum=MAX_COUNTERS)
        PyMem_Free(self._values)
        self._values = <unsigned long long*>PyMem_Calloc(n, sizeof(unsigned long long))
        if self._values is NULL:
            raise MemoryError()
        self._size = n

    def __dealloc__(self):
        PyMem_Free(self._values)

    @cython.critical_section
    cdef void inc(self, Py_ssize_t index) noexcept:
        self._values[index] += 1

    def add(self, index, n=1):
        """Add ``n`` (>= 0) to counter ``index``."""
        cdef Py_ssize_t i, step
        if type(index) is int and type(n) is int and 0 <= index < self._size and 0 <= n <= MAX_STEP:
            # The policies' per-call case, without the Python checks.
            i = index
            step = n
        else:
            i = count("index", index, 0)
            if i >= self._size:
                raise IndexError(f"index must be < {self._size}, got {index!r}")
            step = count("n", n, 0)
        with cython.critical_section(self):
            self._values[i] += step

    def snapshot(self):
        """Every counter, read at one moment."""
        cdef Py_ssize_t i
        with cython.critical_section(self):
            return tuple([self._values[i] for i in range(self._size)])

    def __len__(self):
        return self._size

    def __sizeof__(self):
        return object.__sizeof__(self) + self._size * sizeof(unsigned long long)

    def __repr__(self):
        return f"<Counters {list(self.snapshot())}>"
