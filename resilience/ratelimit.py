"""RateLimiter and AdaptiveRateLimiter: so many operations per period.

Both stand on the core ``TokenBucket``: ``rate`` operations per ``per``
seconds, bursting to ``burst``. By default a call that finds no token fails
at once with ``RateLimitExceeded`` (``max_wait=0``); with a wait allowed,
tokens are reserved in arrival order and the caller sleeps for its turn —
never when its turn would come after its limit or the current deadline, and
handing its tokens back if it is cancelled or interrupted while asleep.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from . import _core
from ._core import _fork
from ._core._bucket_py import TOLERANCE
from ._core._clock_py import reader
from ._core._validate import capacity as check_capacity
from ._core._validate import clock as check_clock
from ._core._validate import non_negative, number, positive
from ._policy import (
    NEVER_FAILURES,
    Acquiring,
    Block,
    Policy,
    Sleep,
    Wait,
    check_callable,
    check_name,
    coroutine_function,
    finish_async,
    finish_sync,
    keeps,
)
from .errors import RateLimitExceeded
from .timeout import remaining

__all__ = ["AdaptiveRateLimiter", "RateDecision", "RateLimiter", "RateLimiterStats"]


@dataclass(frozen=True)
class RateLimiterStats:
    """A snapshot of a limiter: its settings now and its lifetime counts."""

    name: str | None
    rate: float
    per: float
    burst: float
    available: float
    #: Calls let through (a reservation handed back unused, as by a waiter
    #: that gave up, is not one of them).
    allowed: int
    rejected: int
    #: Reservations handed back unused: let through at first, then given up.
    refunded: int = 0


@dataclass(frozen=True, slots=True)
class RateDecision:
    """What a limiter decided about one request, with what a client should be told.

    ``allowed``: the tokens were taken. ``limit``: the bucket's capacity (the
    burst). ``remaining``: the whole tokens left after the decision.
    ``retry_after``: seconds until the tokens asked for would be there — 0.0
    when allowed, ``math.inf`` when more were asked than the bucket holds.
    ``reset_after``: seconds until the bucket is full again. The figures of
    an HTTP ``RateLimit`` header, in one object.
    """

    allowed: bool
    limit: float
    remaining: int
    retry_after: float
    reset_after: float


def decision(
    allowed: bool, capacity: float, level: float, retry_after: float, rate: float
) -> RateDecision:
    """A ``RateDecision`` from a bucket's state after deciding: ``level`` tokens
    there (negative while reservations are in debt), refilling at ``rate`` a second."""
    # The bucket grants what rounding leaves a hair short (TOLERANCE): a
    # level of 2.9999999999 holds 3 whole tokens for it, so for us too.
    remaining = max(0, math.floor(level + TOLERANCE))
    return RateDecision(
        allowed, capacity, remaining, retry_after, max(0.0, (capacity - level) / rate)
    )


class RateLimiter(Block, Policy):
    """``rate`` operations per ``per`` seconds, in bursts of up to ``burst`` (default ``rate``).

    ``try_acquire`` never waits. ``acquire`` / ``aacquire`` wait up to
    ``timeout`` (default ``max_wait``) and the current deadline, or raise
    ``RateLimitExceeded`` at once. Each decorated call or ``with`` block takes
    one token. ``sleep`` replaces ``time.sleep`` (and, when it is a coroutine
    function such as ``FakeClock.asleep``, ``asyncio.sleep``) for tests.
    """

    __slots__ = (
        "__weakref__",
        "_bucket",
        "_impl",
        "_max_wait",
        "_name",
        "_per",
        "_plain",
        "_rate",
        "_sleep",
    )

    def __init__(
        self,
        rate: float,
        *,
        per: float = 1.0,
        burst: float | None = None,
        max_wait: float = 0.0,
        name: str | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        # Kept as given: the bucket's per-second rate is derived from it, and
        # rate / per * per need not give back the same float.
        self._rate = positive("rate", rate)
        self._per = positive("per", per)
        capacity = check_burst(burst, self._rate)
        per_second = tokens_per_second("rate", self._rate, self._per)
        self._max_wait = non_negative("max_wait", max_wait)
        self._name = check_name(name)
        self._sleep = check_callable("sleep", sleep)
        self._impl = _core.SELECTED  # the twin this limiter and its wrappers run on
        self._bucket = self._impl.TokenBucket(per_second, capacity, clock=check_clock(clock))
        # Fast paths stand in for acquire only where a subclass kept it.
        self._plain = keeps(self, RateLimiter, "acquire", "aacquire")

    # -- acquiring -------------------------------------------------------------

    def try_acquire(self, tokens: float = 1) -> bool:
        """Take ``tokens`` if they are there now; never waits."""
        return bool(self._bucket.try_acquire(tokens))

    def decide(self, tokens: float = 1) -> RateDecision:
        """Take ``tokens`` if they are there now (as ``try_acquire``) and say what is left.

        Never waits. Each figure is the bucket's as it is asked (one clock
        reading each, microseconds apart: a reading handed from one call to
        the next could be older than another thread's, which the bucket
        would take for the clock stepping back).
        """
        bucket = self._bucket
        allowed = bool(bucket.try_acquire(tokens))
        retry_after = 0.0 if allowed else float(bucket.wait_time(tokens))
        return decision(allowed, bucket.capacity, bucket.tokens_at(), retry_after, bucket.rate)

    async def adecide(self, tokens: float = 1) -> RateDecision:
        """``decide`` for async code (a local decision never waits, so it never blocks)."""
        return self.decide(tokens)

    def _wait_limit(self) -> float:
        """The longest wait a call may make now: ``max_wait``, within the deadline."""
        return min(self._max_wait, remaining())

    def _begin(self, tokens: float, timeout: float | None) -> Sleep | None:
        """Reserve ``tokens``: None when they are there, else the sleep until they are.

        Raises RateLimitExceeded when they would come too late. An
        interrupted sleep gives the tokens back.
        """
        wait = self._max_wait if timeout is None else non_negative("timeout", timeout)
        bucket = self._bucket
        reserved: float = bucket.reserve(tokens, min(wait, remaining()) if wait > 0.0 else 0.0)
        if reserved < 0.0:
            raise RateLimitExceeded(self._name, bucket.wait_time(tokens))
        if reserved == 0.0:
            return None
        return Sleep(reserved, self._sleep, on_abandon=functools.partial(bucket.refund, tokens))

    def acquire(self, tokens: float = 1, timeout: float | None = None) -> None:
        """Take ``tokens``, sleeping for them up to ``timeout`` (default ``max_wait``)."""
        finish_sync(self._begin(tokens, timeout))

    async def aacquire(self, tokens: float = 1, timeout: float | None = None) -> None:
        """Take ``tokens``, awaiting them up to ``timeout`` (default ``max_wait``)."""
        await finish_async(self._begin(tokens, timeout))

    def _reserved(self, wait: float) -> Sleep:
        """The sleep for a reservation of one token that a fast path made."""
        return Sleep(wait, self._sleep, on_abandon=functools.partial(self._bucket.refund, 1))

    def _pause(self, wait: float) -> None:
        finish_sync(self._reserved(wait))

    async def _pause_then(self, wait: float, coro: Coroutine[Any, Any, Any]) -> Any:
        """Await the reservation's sleep, then ``coro`` (closed unawaited if the sleep fails)."""
        try:
            await finish_async(self._reserved(wait))
        except BaseException:
            coro.close()
            raise
        return await coro

    # -- the protocol ------------------------------------------------------------

    def _enter(self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None) -> Any:
        return self._begin(1, None) if self._plain else Acquiring(self)

    def _fast_sync(self, fn: Callable[..., Any]) -> Any:
        if not self._plain:
            return None
        return self._impl.LimiterCall(
            fn, self._bucket, self._name, self._max_wait > 0.0, self._wait_limit, self._pause
        )

    def _fast_async(self, fn: Callable[..., Any]) -> Any:
        if not self._plain:
            return None
        return coroutine_function(
            self._impl.AsyncLimiterCall(
                fn, self._bucket, self._name, self._max_wait > 0.0, self._wait_limit,
                self._pause_then,
            )
        )

    # -- reading -----------------------------------------------------------------

    @property
    def rate(self) -> float:
        """Operations per ``per`` seconds, now."""
        return self._rate

    @property
    def available(self) -> float:
        """Tokens there now (fractional; negative while waiters hold reservations)."""
        return float(self._bucket.available)

    @property
    def stats(self) -> RateLimiterStats:
        bucket = self._bucket
        return RateLimiterStats(
            name=self._name,
            rate=self.rate,
            per=self._per,
            burst=bucket.capacity,
            available=bucket.available,
            allowed=bucket.granted - bucket.refunded,
            rejected=bucket.rejected,
            refunded=bucket.refunded,
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} name={self._name!r} rate={self.rate!r}"
            f" per={self._per!r} burst={self._bucket.capacity!r}>"
        )


class AdaptiveRateLimiter(RateLimiter):
    """A RateLimiter that finds the rate the downstream can take (AIMD).

    After a success the rate grows by ``increase``; after a failure — an
    exception, or with ``latency_target`` a call that took longer — it is
    multiplied by ``decrease``. Each kind of change happens at most once per
    ``per`` seconds, and the rate stays within ``[min_rate, max_rate]``.
    Cancellation and interrupts change nothing. Outcomes come from calls made
    through the limiter, or are reported with ``record_success`` /
    ``record_failure``.
    """

    __slots__ = (
        "_clock",
        "_decrease",
        "_increase",
        "_last_decrease",
        "_last_increase",
        "_latency_target",
        "_lock",
        "_max_rate",
        "_min_rate",
    )

    def __init__(
        self,
        rate: float,
        *,
        per: float = 1.0,
        min_rate: float,
        max_rate: float,
        increase: float = 1.0,
        decrease: float = 0.5,
        latency_target: float | None = None,
        burst: float | None = None,
        max_wait: float = 0.0,
        name: str | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        super().__init__(
            rate, per=per, burst=burst, max_wait=max_wait, name=name, clock=clock, sleep=sleep
        )
        self._min_rate = positive("min_rate", min_rate)
        self._max_rate = positive("max_rate", max_rate)
        if self._min_rate > self._max_rate:
            raise ValueError(f"min_rate must be <= max_rate ({max_rate!r}), got {min_rate!r}")
        # The rate moves between these two: the bucket must take either.
        tokens_per_second("min_rate", self._min_rate, self._per)
        tokens_per_second("max_rate", self._max_rate, self._per)
        if not self._min_rate <= self.rate <= self._max_rate:
            raise ValueError(
                f"rate must be within [min_rate, max_rate] = [{min_rate!r}, {max_rate!r}],"
                f" got {rate!r}"
            )
        self._increase = positive("increase", increase)
        self._decrease = number("decrease", decrease)
        if not 0.0 < self._decrease < 1.0:
            raise ValueError(f"decrease must be in (0, 1), got {decrease!r}")
        self._latency_target = (
            None if latency_target is None else positive("latency_target", latency_target)
        )
        self._clock: Callable[[], float] = reader(clock)  # readings checked
        self._lock = _fork.lock()
        self._last_increase = -float("inf")
        self._last_decrease = -float("inf")

    def record_success(self, duration: float = 0.0) -> None:
        """Report a call that succeeded (a failure if slower than ``latency_target``)."""
        target = self._latency_target
        if target is not None and non_negative("duration", duration) > target:
            self._adjust(failed=True)
        else:
            self._adjust(failed=False)

    def record_failure(self) -> None:
        """Report a call that failed."""
        self._adjust(failed=True)

    def _adjust(self, failed: bool) -> None:
        now = self._clock()
        with self._lock:
            if failed:
                if now - self._last_decrease < self._per:
                    return
                self._last_decrease = now
                new = max(self._min_rate, self.rate * self._decrease)
            else:
                if now - self._last_increase < self._per:
                    return
                self._last_increase = now
                new = min(self._max_rate, self.rate + self._increase)
            self._rate = new
            self._bucket.set_rate(new / self._per)

    # -- the protocol: every call's outcome adjusts the rate -----------------------

    def _enter(self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None) -> Any:
        wait = super()._enter(args, kwargs)
        return self._clock() if wait is None else _StartsAfter(wait, self._clock)

    def _exit(self, token: Any, error: BaseException | None, result: Any) -> None:
        if error is None:
            self.record_success(self._clock() - token)
        elif not isinstance(error, NEVER_FAILURES):
            self.record_failure()

    def _fast_sync(self, fn: Callable[..., Any]) -> Any:
        return None  # outcomes are observed in Python: the protocol's own path

    def _fast_async(self, fn: Callable[..., Any]) -> Any:
        return None


def check_burst(burst: float | None, rate: float) -> float:
    """The bucket's capacity: ``burst``, else the rate; at least one token either way."""
    if burst is not None:
        return check_capacity("burst", burst)
    if rate < 1.0:
        raise ValueError(
            f"rate must be >= 1 when burst is not given (the burst defaults to the rate, and"
            f" a bucket that cannot hold one token never grants a call), got {rate!r};"
            f" give burst=1 or more"
        )
    return rate


def tokens_per_second(name: str, rate: float, per: float) -> float:
    """``rate / per``, the bucket's refill rate: finite and > 0, or a ValueError naming both."""
    result = rate / per
    if not 0.0 < result < math.inf:
        raise ValueError(
            f"{name} / per (tokens a second) must be a finite number > 0,"
            f" got {name}={rate!r}, per={per!r}"
        )
    return result


class _StartsAfter(Wait):
    """A wait, then the clock's reading as it ends: when the call starts."""

    __slots__ = ("_clock", "_wait")

    def __init__(self, wait: Wait, clock: Callable[[], float]) -> None:
        self._wait = wait
        self._clock = clock

    def wait_sync(self) -> None:
        self._wait.wait_sync()

    async def wait_async(self) -> None:
        await self._wait.wait_async()

    def done(self) -> float:
        self._wait.done()
        return self._clock()

    def abandon(self) -> None:
        self._wait.abandon()
