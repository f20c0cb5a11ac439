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
import itertools
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any

from . import _core
from ._core import _fork
from ._core._bucket_py import TOLERANCE
from ._core._clock_py import reader
from ._core._nocopy import NoCopy
from ._core._validate import capacity as check_capacity
from ._core._validate import clock as check_clock
from ._core._validate import count, non_negative, number, positive
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

__all__ = [
    "AdaptiveRateLimiter",
    "KeyedRateLimiter",
    "KeyedRateLimiterStats",
    "RateDecision",
    "RateLimiter",
    "RateLimiterStats",
]


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


def decide_on(bucket: Any, tokens: float) -> RateDecision:
    """Take ``tokens`` from a core ``TokenBucket`` if they are there now, and
    say what is left (see ``RateLimiter.decide``)."""
    allowed = bool(bucket.try_acquire(tokens))
    retry_after = 0.0 if allowed else float(bucket.wait_time(tokens))
    return decision(allowed, bucket.capacity, bucket.tokens_at(), retry_after, bucket.rate)


class RateLimiter(Block, Policy):
    """``rate`` operations per ``per`` seconds, in bursts of up to ``burst`` (default ``rate``).

    ``rate`` may be a string that says both: ``"100/minute"``, ``"10/s"``,
    ``"5 per second"`` (``per`` is then not given; it defaults to 1 second).

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
        rate: float | str,
        *,
        per: float | None = None,
        burst: float | None = None,
        max_wait: float = 0.0,
        name: str | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        # Kept as given: the bucket's per-second rate is derived from it, and
        # rate / per * per need not give back the same float.
        self._rate, self._per = rate_and_per(rate, per)
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
        return decide_on(self._bucket, tokens)

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
        rate: float | str,
        *,
        per: float | None = None,
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
        if not self._min_rate <= self._rate <= self._max_rate:
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



@dataclass(frozen=True)
class KeyedRateLimiterStats:
    """A snapshot of a keyed limiter: its settings, its keys now, its lifetime counts.

    ``evicted``: buckets dropped to stay within ``max_keys``; ``lossy``: those
    of them that were not full (a key whose bucket was dropped starts full
    again, so it may get up to a burst more than the limit).
    """

    name: str | None
    rate: float
    per: float
    burst: float
    keys: int
    max_keys: int
    allowed: int
    rejected: int
    evicted: int
    lossy: int


class KeyedRateLimiter(NoCopy):
    """A bucket of its own for each key — client, tenant, route: ``rate``
    per ``per`` seconds, bursting to ``burst`` (default ``rate``), each.

    ``rate`` may be a rate string (``"100/minute"``). Memory is bounded by
    ``max_keys``: to make room for a new key, a full bucket among the 8
    least recently used is dropped (dropping it loses nothing: a new one
    starts full); if none is full, the least recently used one (counted in
    ``stats.lossy``). Each bucket is the core's compiled ``TokenBucket``.
    Decisions never wait: ``try_acquire(key)`` and ``decide(key)``.
    """

    __slots__ = (
        "__weakref__",
        "_buckets",
        "_capacity",
        "_clock",
        "_counts",
        "_evicted",
        "_impl",
        "_lock",
        "_lossy",
        "_max_keys",
        "_name",
        "_per",
        "_per_second",
        "_rate",
    )

    # How many of the least recently used buckets are looked at for a full one.
    IDLE_SCAN = 8

    def __init__(
        self,
        rate: float | str,
        *,
        per: float | None = None,
        burst: float | None = None,
        max_keys: int = 100_000,
        name: str | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._rate, self._per = rate_and_per(rate, per)
        self._capacity = check_burst(burst, self._rate)
        self._per_second = tokens_per_second("rate", self._rate, self._per)
        self._max_keys = count("max_keys", max_keys, maximum=MAX_KEYS)
        self._name = check_name(name)
        self._clock = check_clock(clock)
        self._impl = _core.SELECTED
        self._lock = _fork.lock()
        self._buckets: OrderedDict[Hashable, Any] = OrderedDict()  # least recently used first
        self._counts = self._impl.Counters(2)  # allowed, rejected: counted without the lock
        self._evicted = self._lossy = 0

    def _bucket(self, key: Hashable) -> Any:
        """The bucket of ``key``, made if it has none, now the most recently used."""
        with self._lock:
            buckets = self._buckets
            bucket = buckets.get(key)
            if bucket is not None:
                buckets.move_to_end(key)
                return bucket
            if len(buckets) >= self._max_keys:
                self._drop_one()
            bucket = self._impl.TokenBucket(self._per_second, self._capacity, clock=self._clock)
            buckets[key] = bucket
            return bucket

    def _drop_one(self) -> None:
        """Under the lock: make room for one key."""
        buckets = self._buckets
        for key, bucket in itertools.islice(buckets.items(), self.IDLE_SCAN):
            if bucket.tokens_at() >= self._capacity:
                del buckets[key]
                break
        else:
            buckets.popitem(last=False)
            self._lossy += 1
        self._evicted += 1

    def _count(self, allowed: bool) -> None:
        self._counts.add(0 if allowed else 1)

    def try_acquire(self, key: Hashable, tokens: float = 1) -> bool:
        """Take ``tokens`` from ``key``'s bucket if they are there; never waits."""
        allowed = bool(self._bucket(key).try_acquire(tokens))
        self._count(allowed)
        return allowed

    def decide(self, key: Hashable, tokens: float = 1) -> RateDecision:
        """``try_acquire`` on ``key``'s bucket, and what is left there (``RateDecision``)."""
        result = decide_on(self._bucket(key), tokens)
        self._count(result.allowed)
        return result

    async def adecide(self, key: Hashable, tokens: float = 1) -> RateDecision:
        """``decide`` for async code (a local decision never waits, so it never blocks)."""
        return self.decide(key, tokens)

    def forget(self, key: Hashable) -> None:
        """Drop ``key``'s bucket (none: nothing); the key starts full again."""
        with self._lock:
            self._buckets.pop(key, None)

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def stats(self) -> KeyedRateLimiterStats:
        allowed, rejected = self._counts.snapshot()
        with self._lock:
            return KeyedRateLimiterStats(
                name=self._name,
                rate=self._rate,
                per=self._per,
                burst=self._capacity,
                keys=len(self._buckets),
                max_keys=self._max_keys,
                allowed=allowed,
                rejected=rejected,
                evicted=self._evicted,
                lossy=self._lossy,
            )

    def __repr__(self) -> str:
        return (
            f"<KeyedRateLimiter name={self._name!r} rate={self._rate!r} per={self._per!r}"
            f" burst={self._capacity!r} max_keys={self._max_keys}>"
        )


# A bound on the keys a KeyedRateLimiter keeps: memory follows it (a bucket
# and its entry are about 200 bytes, so this is about 2 GB).
MAX_KEYS = 10_000_000


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


# The units a rate string may name, in seconds.
RATE_UNITS = {
    **dict.fromkeys(("s", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
}
RATE_STRING = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/|\s+per\s+)\s*([a-zA-Z]+)\s*")


def rate_and_per(rate: float | str, per: float | None) -> tuple[float, float]:
    """``(rate, per)``: from a rate string such as ``"100/minute"``, or the
    numbers given (``per`` 1 second when not given)."""
    if not isinstance(rate, str):
        return positive("rate", rate), 1.0 if per is None else positive("per", per)
    if per is not None:
        raise TypeError(f"per must not be given with a rate string ({rate!r}), got per={per!r}")
    match = RATE_STRING.fullmatch(rate)
    if match is None or match.group(2).lower() not in RATE_UNITS:
        raise ValueError(
            "rate must be a number or a string such as '100/minute', '10/s' or"
            f" '5 per second' (units: second, minute, hour, day; s, m, h, d), got {rate!r}"
        )
    count = float(match.group(1))
    if not 0.0 < count < math.inf:
        raise ValueError(f"rate must be a finite number > 0 of tokens, got {rate!r}")
    return count, RATE_UNITS[match.group(2).lower()]


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
