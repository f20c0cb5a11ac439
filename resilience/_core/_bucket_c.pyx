# cython: auto_pickle=False
"""Token bucket, compiled twin of ``_bucket_py.py`` (same behaviour, same floats)."""

cimport cython
from libc.math cimport INFINITY, fabs

from resilience._core._clock_c cimport (
    NON_NEGATIVE,
    NON_NEGATIVE_FINITE,
    as_number,
    read_now,
)

from resilience._core._bucket_py import TIME_ROUNDING as _TIME_ROUNDING
from resilience._core._bucket_py import TOLERANCE as _TOLERANCE
from resilience._core._nocopy import refuse_copy
from resilience._core._validate import capacity as check_capacity
from resilience._core._validate import clock as check_clock
from resilience._core._validate import non_negative_finite, positive

cdef double TOLERANCE = _TOLERANCE
cdef double TIME_ROUNDING = _TIME_ROUNDING


cdef class TokenBucket:
    """``rate`` tokens per second into a bucket of ``capacity`` tokens (at least 1).

    Starts full unless ``tokens`` says otherwise. Time comes from ``now=`` or
    the clock. When the clock steps back, refilling resumes from the earlier
    reading: the tokens already there stay, none are added twice.
    """

    __reduce_ex__ = refuse_copy  # neither copied nor pickled

    def __init__(self, rate, capacity, *, tokens=None, clock=None):
        self._rate = positive("rate", rate)
        self._capacity = check_capacity("capacity", capacity)
        if tokens is None:
            self._tokens = self._capacity
        else:
            self._tokens = non_negative_finite("tokens", tokens)
            if self._tokens > self._capacity:
                raise ValueError(f"tokens must be <= capacity ({capacity!r}), got {tokens!r}")
        self._clock = check_clock(clock)
        self._last = read_now(self._clock, None)
        self._readings = 0
        self._granted = 0
        self._refunded = 0
        self._rejected = 0

    cdef void _refill(self, double now, unsigned long long seen) noexcept:
        # See _refill in _bucket_py.py.
        if now > self._last:
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
            self._last = now
        elif now < self._last and seen == self._readings:
            self._last = now
        self._readings += 1

    cdef inline bint _holds(self, double n) noexcept:
        # See TIME_ROUNDING in _bucket_py.py.
        cdef double slack = TOLERANCE + self._rate * fabs(self._last) * TIME_ROUNDING
        return self._tokens + slack >= n

    cdef double _wait(self, double n) noexcept:
        if n > self._capacity:
            return INFINITY
        if self._holds(n):
            return 0.0
        return (n - self._tokens) / self._rate

    def try_acquire(self, tokens=1.0, now=None):
        """Take ``tokens`` if the bucket holds them; never waits."""
        cdef double n = as_number(tokens, "tokens", NON_NEGATIVE_FINITE)
        cdef unsigned long long seen = self._readings
        cdef double t = read_now(self._clock, now)
        with cython.critical_section(self):
            self._refill(t, seen)
            if self._holds(n):
                self._tokens -= n
                self._granted += 1
                return True
            self._rejected += 1
            return False

    def wait_time(self, tokens=1.0, now=None):
        """Seconds until ``tokens`` can be taken: 0 now, ``inf`` if over capacity."""
        return self.wait_for(as_number(tokens, "tokens", NON_NEGATIVE_FINITE), now)

    cdef double wait_for(self, double n, object now) except? -1.0:
        """``wait_time`` for compiled callers, argument checked."""
        cdef unsigned long long seen = self._readings
        cdef double t = read_now(self._clock, now)
        with cython.critical_section(self):
            self._refill(t, seen)
            return self._wait(n)

    def reserve(self, tokens=1.0, max_wait=INFINITY, now=None):
        """Take ``tokens`` now, possibly into debt, and return the wait before using them.

        Returns -1.0 and takes nothing when the wait would exceed ``max_wait``
        (or the tokens exceed the capacity). Waiters that reserve are served in
        the order they reserved; one that gives up hands its tokens back with
        ``refund``.
        """
        cdef double n = as_number(tokens, "tokens", NON_NEGATIVE_FINITE)
        return self.take(n, as_number(max_wait, "max_wait", NON_NEGATIVE), now)

    cdef double take(self, double n, double limit, object now) except? -2.0:
        """``reserve`` for compiled callers, arguments checked."""
        cdef unsigned long long seen = self._readings
        cdef double t = read_now(self._clock, now)
        cdef double wait
        with cython.critical_section(self):
            self._refill(t, seen)
            wait = self._wait(n)
            if wait > limit or wait == INFINITY:
                self._rejected += 1
                return -1.0
            self._tokens -= n
            self._granted += 1
            return wait

    def refund(self, tokens=1.0, now=None):
        """Give back tokens taken by ``reserve`` or ``try_acquire`` and not used.

        Counted in ``refunded`` (at most as many refunds as grants are
        counted); ``granted`` never goes down, so exported counts stay
        monotonic.
        """
        cdef double n = as_number(tokens, "tokens", NON_NEGATIVE_FINITE)
        cdef unsigned long long seen = self._readings
        cdef double t = read_now(self._clock, now)
        with cython.critical_section(self):
            self._refill(t, seen)
            self._tokens = min(self._capacity, self._tokens + n)
            if self._refunded < self._granted:
                self._refunded += 1

    def set_rate(self, rate, now=None):
        """Change the refill rate; tokens accrued so far keep the old rate."""
        cdef double r = positive("rate", rate)
        cdef unsigned long long seen = self._readings
        cdef double t = read_now(self._clock, now)
        with cython.critical_section(self):
            self._refill(t, seen)
            self._rate = r

    def tokens_at(self, now=None):
        """The token count at ``now`` (negative while reservations are in debt)."""
        cdef unsigned long long seen = self._readings
        cdef double t = read_now(self._clock, now)
        with cython.critical_section(self):
            self._refill(t, seen)
            return self._tokens

    @property
    def available(self):
        """The current, fractional token count."""
        return self.tokens_at()

    @property
    def rate(self):
        return self._rate

    @property
    def capacity(self):
        return self._capacity

    @property
    def granted(self):
        """How many acquisitions succeeded (try_acquire and reserve), refunded ones included."""
        return self._granted

    @property
    def refunded(self):
        """How many granted acquisitions were handed back with ``refund``."""
        return self._refunded

    @property
    def rejected(self):
        """How many acquisitions were refused."""
        return self._rejected

    def __repr__(self):
        return (
            f"<TokenBucket rate={self._rate!r} capacity={self._capacity!r}"
            f" tokens={self._tokens!r}>"
        )
