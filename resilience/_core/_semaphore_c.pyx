# cython: auto_pickle=False
"""Bulkhead counter, compiled twin of ``_semaphore_py.py``."""

cimport cython

from resilience._core._nocopy import refuse_copy
from resilience._core._validate import count


cdef class SemaphoreCore:
    """At most ``limit`` permits out at once; counts what it grants and refuses.

    It also counts the callers queued for a permit (``waiting``), so that a
    permit is never taken past them: while anyone waits, ``try_acquire``
    refuses and ``release_unless_queued`` leaves the permit for the caller to
    hand over. The queue itself and the waking belong to the ``Bulkhead``
    policy, which calls the queue methods under a lock of its own.
    """

    __reduce_ex__ = refuse_copy  # neither copied nor pickled

    def __init__(self, limit):
        self._limit = count("limit", limit)
        self._active = 0
        self._acquired = 0
        self._rejected = 0
        self._waiting = 0

    @cython.critical_section
    def try_acquire(self, bint count_rejection=True):
        """Take a free permit unless someone is queued; a refusal counts unless told not to."""
        if self.take_free():
            return True
        if count_rejection:
            self._rejected += 1
        return False

    cdef bint take_free(self) noexcept:
        if self._active < self._limit and self._waiting == 0:
            self._active += 1
            self._acquired += 1
            return True
        return False

    @cython.critical_section
    def release(self):
        """Return a permit; RuntimeError if none is out."""
        if self._active == 0:
            raise RuntimeError("release() called with no permit held")
        self._active -= 1

    @cython.critical_section
    def acquire_or_queue(self):
        """Take a free permit (True), or count the caller as queued (False)."""
        if self._active < self._limit and self._waiting == 0:
            self._active += 1
            self._acquired += 1
            return True
        self._waiting += 1
        return False

    @cython.critical_section
    def release_unless_queued(self):
        """Return a permit (True), unless someone is queued: then keep it for them (False)."""
        return self.give_back() == 1

    cdef int give_back(self) except -1:
        if self._waiting > 0:
            return 0
        if self._active == 0:
            raise RuntimeError("release() called with no permit held")
        self._active -= 1
        return 1

    @cython.critical_section
    def hand_over(self):
        """A queued caller gets the permit kept for it by ``release_unless_queued``."""
        self._leave()
        self._acquired += 1

    @cython.critical_section
    def leave_queue(self):
        """A queued caller gave up waiting."""
        self._leave()

    cdef int _leave(self) except -1:
        if self._waiting == 0:
            raise RuntimeError("nobody is queued")
        self._waiting -= 1
        return 0

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
    def waiting(self):
        """Callers queued for a permit."""
        return self._waiting

    @property
    def acquired(self):
        """Permits granted in all."""
        return self._acquired

    @property
    def rejected(self):
        """Refusals in all."""
        return self._rejected

    def __repr__(self):
        return (
            f"<SemaphoreCore active={self._active} limit={self._limit} waiting={self._waiting}>"
        )
