"""Bulkhead counter, compiled twin of ``_semaphore_py.py``."""

cimport cython

from resilience._core._validate import count


cdef class SemaphoreCore:
    """At most ``limit`` permits out at once; counts what it grants and refuses.

    Queueing and waking waiters belong to the ``Bulkhead`` policy; this is the
    counter it serialises on.
    """

    def __init__(self, limit):
        self._limit = count("limit", limit)
        self._active = 0
        self._acquired = 0
        self._rejected = 0

    @cython.critical_section
    def try_acquire(self, bint count_rejection=True):
        """Take a permit if one is free; a refusal is counted unless told not to."""
        if self._active < self._limit:
            self._active += 1
            self._acquired += 1
            return True
        if count_rejection:
            self._rejected += 1
        return False

    @cython.critical_section
    def release(self):
        """Return a permit; RuntimeError if none is out."""
        if self._active == 0:
            raise RuntimeError("release() called with no permit held")
        self._active -= 1

    @cython.critical_section
    def reject(self):
        """Count a refusal decided by the caller (a full queue, a timed-out wait)."""
        self._rejected += 1

    def set_limit(self, limit):
        """Change the limit; holders above a lowered limit keep their permits."""
        cdef Py_ssize_t new = count("limit", limit)
        with cython.critical_section(self):
            self._limit = new

    @property
    def limit(self):
        return self._limit

    @property
    def active(self):
        """Permits currently out."""
        return self._active

    @property
    def available(self):
        """Permits that could be taken now."""
        return max(0, self._limit - self._active)

    @property
    def acquired(self):
        """Permits granted in all."""
        return self._acquired

    @property
    def rejected(self):
        """Refusals in all."""
        return self._rejected

    def __repr__(self):
        return f"<SemaphoreCore active={self._active} limit={self._limit}>"
