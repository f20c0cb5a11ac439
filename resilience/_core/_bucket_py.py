"""Token bucket, pure-Python twin of ``_bucket_c.pyx``."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from ._clock_py import read_now
from ._validate import clock as check_clock
from ._validate import non_negative, non_negative_finite, positive

# A grant may fall short of the asked tokens by what rounding can lose, so
# that waiting exactly ``wait_time()`` always succeeds: TOLERANCE tokens, plus
# the tokens of a few units in the last place of the clock reading (a
# caller's ``now + wait`` at t = 1e6 s is rounded to about 1e-10 s).
TOLERANCE = 1e-9
TIME_ROUNDING = 4 * 2.220446049250313e-16


class TokenBucket:
    """``rate`` tokens per second into a bucket of ``capacity`` tokens.

    Starts full unless ``tokens`` says otherwise. Time comes from ``now=`` or
    the clock; a reading earlier than one already seen counts as that one.
    """

    __slots__ = (
        "_capacity",
        "_clock",
        "_granted",
        "_last",
        "_lock",
        "_rate",
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
        self._capacity = positive("capacity", capacity)
        if tokens is None:
            self._tokens = self._capacity
        else:
            self._tokens = non_negative_finite("tokens", tokens)
            if self._tokens > self._capacity:
                raise ValueError(f"tokens must be <= capacity ({capacity!r}), got {tokens!r}")
        self._clock = check_clock(clock)
        self._last = read_now(self._clock, None)
        self._lock = threading.Lock()
        self._granted = 0
        self._rejected = 0

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
            self._last = now

    def _holds(self, n: float) -> bool:
        slack = TOLERANCE + self._rate * abs(self._last) * TIME_ROUNDING
        return self._tokens + slack >= n

    def try_acquire(self, tokens: float = 1.0, now: float | None = None) -> bool:
        """Take ``tokens`` if the bucket holds them; never waits."""
        n = non_negative_finite("tokens", tokens)
        t = read_now(self._clock, now)
        with self._lock:
            self._refill(t)
            if self._holds(n):
                self._tokens -= n
                self._granted += 1
                return True
            self._rejected += 1
            return False

    def wait_time(self, tokens: float = 1.0, now: float | None = None) -> float:
        """Seconds until ``tokens`` can be taken: 0 now, ``inf`` if over capacity."""
        n = non_negative_finite("tokens", tokens)
        t = read_now(self._clock, now)
        with self._lock:
            self._refill(t)
            return self._wait(n)

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
        n = non_negative_finite("tokens", tokens)
        limit = non_negative("max_wait", max_wait)
        t = read_now(self._clock, now)
        with self._lock:
            self._refill(t)
            wait = self._wait(n)
            if wait > limit or wait == math.inf:
                self._rejected += 1
                return -1.0
            self._tokens -= n
            self._granted += 1
            return wait

    def refund(self, tokens: float = 1.0, now: float | None = None) -> None:
        """Give back tokens taken by ``reserve`` or ``try_acquire`` and not used."""
        n = non_negative_finite("tokens", tokens)
        t = read_now(self._clock, now)
        with self._lock:
            self._refill(t)
            self._tokens = min(self._capacity, self._tokens + n)

    def set_rate(self, rate: float, now: float | None = None) -> None:
        """Change the refill rate; tokens accrued so far keep the old rate."""
        r = positive("rate", rate)
        t = read_now(self._clock, now)
        with self._lock:
            self._refill(t)
            self._rate = r

    def tokens_at(self, now: float | None = None) -> float:
        """The token count at ``now`` (negative while reservations are in debt)."""
        t = read_now(self._clock, now)
        with self._lock:
            self._refill(t)
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
        """How many acquisitions succeeded (try_acquire and reserve)."""
        return self._granted

    @property
    def rejected(self) -> int:
        """How many acquisitions were refused."""
        return self._rejected

    def __repr__(self) -> str:
        return (
            f"<TokenBucket rate={self._rate!r} capacity={self._capacity!r}"
            f" tokens={self._tokens!r}>"
        )
