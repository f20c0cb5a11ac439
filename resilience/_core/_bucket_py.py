"""Token bucket, pure-Python twin of ``_bucket_c.pyx``."""

from __future__ import annotations

import math
from collections.abc import Callable
from time import monotonic

from . import _fork
from ._clock_py import read_now
from ._nocopy import NoCopy
from ._validate import capacity as check_capacity
from ._validate import clock as check_clock
from ._validate import non_negative, non_negative_finite, positive

# A grant may fall short of the asked tokens by what rounding can lose, so
# that waiting exactly ``wait_time()`` always succeeds: TOLERANCE tokens, plus
# the tokens of a few units in the last place of the clock reading (a
# caller's ``now + wait`` at t = 1e6 s is rounded to about 1e-10 s).
TOLERANCE = 1e-9
TIME_ROUNDING = 4 * 2.220446049250313e-16

INF = math.inf
EXACT_INT = 2**53  # ints up to this are floats exactly (what the check would return)


class TokenBucket(NoCopy):
    """``rate`` tokens per second into a bucket of ``capacity`` tokens (at least 1).

    Starts full unless ``tokens`` says otherwise. Time comes from ``now=`` or
    the clock. When the clock steps back, refilling resumes from the earlier
    reading: the tokens already there stay, none are added twice.
    """

    __slots__ = (
        "_capacity",
        "_clock",
        "_granted",
        "_last",
        "_lock",
        "_rate",
        "_readings",
        "_refunded",
        "_rejected",
        "_tokens",
    )

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        tokens: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
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
        self._lock = _fork.lock()
        self._granted = 0
        self._refunded = 0
        self._rejected = 0

    def _refill(self, now: float, seen: int) -> None:
        # A step back of the clock moves the last refill back with it (the
        # bucket's one stored time: see Timeline in _clock_py.py), so
        # refilling resumes from there instead of waiting for the clock to
        # come back. A reading that another operation's reading overtook
        # (``seen`` is no longer the count of readings) is stale, not a step
        # back: moving the refill time back for it would refill the gap twice.
        if now > self._last:
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
            self._last = now
        elif now < self._last and seen == self._readings:
            self._last = now
        self._readings += 1

    # _holds and _wait are the reference form of what the hot methods below
    # inline (the compiled twin keeps them as C helpers).

    def _holds(self, n: float) -> bool:
        slack = TOLERANCE + self._rate * abs(self._last) * TIME_ROUNDING
        return self._tokens + slack >= n

    # The hot methods below inline _refill and _holds, with the same
    # arithmetic in the same order (the twins compute the same floats), check
    # their arguments inline when they are plain finite floats (or small
    # ints), leaving anything else to the shared checks, read the
    # monotonic clock directly when neither ``now`` nor a clock is given, and
    # take the lock without ``with`` (cheaper on CPython). Holding ``n`` when
    # the count alone covers it needs no slack: ``tokens + slack >= tokens``.

    def try_acquire(self, tokens: float = 1.0, now: float | None = None) -> bool:
        """Take ``tokens`` if the bucket holds them; never waits."""
        if type(tokens) is float and 0.0 <= tokens < INF:
            n = tokens
        elif type(tokens) is int and 0 <= tokens <= EXACT_INT:
            n = float(tokens)
        else:
            n = non_negative_finite("tokens", tokens)
        seen = self._readings
        t = monotonic() if now is None and self._clock is None else read_now(self._clock, now)
        lock = self._lock
        lock.acquire()
        try:
            last = self._last
            if t > last:
                level = self._tokens + (t - last) * self._rate
                capacity = self._capacity
                if not level < capacity:  # min(capacity, level), NaN included
                    level = capacity
                self._last = last = t
            else:
                level = self._tokens
                if t < last and seen == self._readings:  # a step back, not a stale reading
                    self._last = last = t
            self._readings += 1
            if level >= n or level + (TOLERANCE + self._rate * abs(last) * TIME_ROUNDING) >= n:
                self._tokens = level - n
                self._granted += 1
                return True
            self._tokens = level
            self._rejected += 1
            return False
        finally:
            lock.release()

    def wait_time(self, tokens: float = 1.0, now: float | None = None) -> float:
        """Seconds until ``tokens`` can be taken: 0 now, ``inf`` if over capacity."""
        if type(tokens) is float and 0.0 <= tokens < INF:
            n = tokens
        elif type(tokens) is int and 0 <= tokens <= EXACT_INT:
            n = float(tokens)
        else:
            n = non_negative_finite("tokens", tokens)
        seen = self._readings
        t = monotonic() if now is None and self._clock is None else read_now(self._clock, now)
        lock = self._lock
        lock.acquire()
        try:
            last = self._last
            if t > last:
                level = self._tokens + (t - last) * self._rate
                capacity = self._capacity
                if not level < capacity:  # min(capacity, level), NaN included
                    level = capacity
                self._tokens = level
                self._last = last = t
            else:
                level = self._tokens
                if t < last and seen == self._readings:  # a step back, not a stale reading
                    self._last = last = t
            self._readings += 1
            # _wait, inlined
            if n > self._capacity:
                return INF
            if level >= n or level + (TOLERANCE + self._rate * abs(last) * TIME_ROUNDING) >= n:
                return 0.0
            return (n - level) / self._rate
        finally:
            lock.release()

    def _wait(self, n: float) -> float:
        if n > self._capacity:
            return math.inf
        if self._holds(n):
            return 0.0
        return (n - self._tokens) / self._rate

    def reserve(
        self, tokens: float = 1.0, max_wait: float = math.inf, now: float | None = None
    ) -> float:
        """Take ``tokens`` now, possibly into debt, and return the wait before using them.

        Returns -1.0 and takes nothing when the wait would exceed ``max_wait``
        (or the tokens exceed the capacity). Waiters that reserve are served in
        the order they reserved; one that gives up hands its tokens back with
        ``refund``.
        """
        if type(tokens) is float and 0.0 <= tokens < INF:
            n = tokens
        elif type(tokens) is int and 0 <= tokens <= EXACT_INT:
            n = float(tokens)
        else:
            n = non_negative_finite("tokens", tokens)
        if type(max_wait) is float and max_wait >= 0.0:  # NaN fails this
            limit = max_wait
        else:
            limit = non_negative("max_wait", max_wait)
        seen = self._readings
        t = monotonic() if now is None and self._clock is None else read_now(self._clock, now)
        lock = self._lock
        lock.acquire()
        try:
            last = self._last
            if t > last:
                level = self._tokens + (t - last) * self._rate
                capacity = self._capacity
                if not level < capacity:  # min(capacity, level), NaN included
                    level = capacity
                self._tokens = level
                self._last = last = t
            else:
                level = self._tokens
                if t < last and seen == self._readings:  # a step back, not a stale reading
                    self._last = last = t
            self._readings += 1
            # _wait, inlined
            if n > self._capacity:
                self._rejected += 1
                return -1.0
            if level >= n or level + (TOLERANCE + self._rate * abs(last) * TIME_ROUNDING) >= n:
                wait = 0.0
            else:
                wait = (n - level) / self._rate
                if wait > limit or wait == INF:
                    self._rejected += 1
                    return -1.0
            self._tokens = level - n
            self._granted += 1
            return wait
        finally:
            lock.release()

    def refund(self, tokens: float = 1.0, now: float | None = None) -> None:
        """Give back tokens taken by ``reserve`` or ``try_acquire`` and not used.

        Counted in ``refunded`` (at most as many refunds as grants are
        counted); ``granted`` never goes down, so exported counts stay
        monotonic.
        """
        if type(tokens) is float and 0.0 <= tokens < INF:
            n = tokens
        elif type(tokens) is int and 0 <= tokens <= EXACT_INT:
            n = float(tokens)
        else:
            n = non_negative_finite("tokens", tokens)
        seen = self._readings
        t = monotonic() if now is None and self._clock is None else read_now(self._clock, now)
        lock = self._lock
        lock.acquire()
        try:
            last = self._last
            level = self._tokens
            capacity = self._capacity
            if t > last:
                level = level + (t - last) * self._rate
                if not level < capacity:  # min(capacity, level), NaN included
                    level = capacity
                self._last = t
            elif t < last and seen == self._readings:  # a step back, not a stale reading
                self._last = t
            self._readings += 1
            level = level + n
            self._tokens = level if level < capacity else capacity
            if self._refunded < self._granted:
                self._refunded += 1
        finally:
            lock.release()

    def set_rate(self, rate: float, now: float | None = None) -> None:
        """Change the refill rate; tokens accrued so far keep the old rate."""
        r = positive("rate", rate)
        seen = self._readings
        t = read_now(self._clock, now)
        with self._lock:
            self._refill(t, seen)
            self._rate = r

    def tokens_at(self, now: float | None = None) -> float:
        """The token count at ``now`` (negative while reservations are in debt)."""
        seen = self._readings
        t = read_now(self._clock, now)
        with self._lock:
            self._refill(t, seen)
            return self._tokens

    @property
    def available(self) -> float:
        """The current, fractional token count."""
        return self.tokens_at()

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def capacity(self) -> float:
        return self._capacity

    @property
    def granted(self) -> int:
        """How many acquisitions succeeded (try_acquire and reserve), refunded ones included."""
        return self._granted

    @property
    def refunded(self) -> int:
        """How many granted acquisitions were handed back with ``refund``."""
        return self._refunded

    @property
    def rejected(self) -> int:
        """How many acquisitions were refused."""
        return self._rejected

    def __repr__(self) -> str:
        return (
            f"<TokenBucket rate={self._rate!r} capacity={self._capacity!r}"
            f" tokens={self._tokens!r}>"
        )
