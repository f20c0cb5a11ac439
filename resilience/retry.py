"""Retry: call again after a failure, waiting longer each time.

Correct by default: only exceptions (``on=Exception``) are retried, never
cancellation or interrupts; the original exception is re-raised unchanged
when retries run out; waits follow ``exponential()`` backoff with full
jitter, honour a server's ``retry_after``, and never start a retry that the
``deadline``, the current ``deadline()`` or the ``RetryBudget`` rules out.
With ``sleep=FakeClock.sleep`` (or ``.asleep``) retries are instant in tests.
"""

from __future__ import annotations

import functools
import math
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from . import _core
from ._core._validate import clock as check_clock
from ._core._validate import count, non_negative, number, optional, positive
from ._policy import (
    NEVER_FAILURES,
    P,
    Policy,
    R,
    asleep_with,
    check_callable,
    check_name,
    check_on,
    notify,
    sleep_with,
)
from .backoff import Backoff, exponential
from .errors import RetryError
from .timeout import remaining

__all__ = ["Attempt", "Retry", "RetryBudget", "RetryState", "RetryStats"]

@dataclass(frozen=True)
class RetryState:
    """What ``on_retry`` is told before each wait."""

    name: str | None
    attempt: int  # the attempt that just failed, from 1
    delay: float  # the wait before the next one
    exception: BaseException | None  # what it raised, or None if its result was retried
    result: Any  # what it returned, when ``retry_if_result`` asked for a retry
    elapsed: float  # seconds since the first attempt started


@dataclass(frozen=True)
class RetryStats:
    """Lifetime counts of a Retry."""

    name: str | None
    calls: int  # calls made through it
    attempts: int  # attempts in all, first ones included
    retries: int  # attempts after the first
    successes: int  # calls that ended in a value
    failures: int  # calls that gave up (the error or RetryError raised)


class RetryBudget:
    """Retries may add at most ``ratio`` of the calls of the last ``ttl`` seconds.

    Plus a floor of ``min_per_second`` retries a second, so a quiet service
    can still retry. One budget can be shared by many ``Retry`` policies (as
    Finagle's and gRPC's retry budgets are): when a downstream is failing
    everywhere, retries cannot multiply the load on it.
    """

    __slots__ = ("_floor", "_lock", "_ratio", "_window", "min_per_second", "ttl")

    def __init__(
        self,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        ttl: float = 10.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._ratio = number("ratio", ratio)
        if not 0.0 <= self._ratio < math.inf:
            raise ValueError(f"ratio must be a finite number >= 0, got {ratio!r}")
        self.min_per_second = non_negative("min_per_second", min_per_second)
        if math.isinf(self.min_per_second):
            raise ValueError(f"min_per_second must be finite, got {min_per_second!r}")
        self.ttl = positive("ttl", ttl)
        self._floor = self.min_per_second * self.ttl
        # The compiled time window counts first calls as successes and
        # retries as failures over the last ``ttl`` seconds.
        self._window = _core.SELECTED.TimeWindow(self.ttl, clock=check_clock(clock))
        self._lock = threading.Lock()  # a check and its withdrawal are one step

    @property
    def ratio(self) -> float:
        return self._ratio

    def deposit(self) -> None:
        """A call was made (its first attempt)."""
        self._window.record(False)

    def try_withdraw(self) -> bool:
        """Ask for one retry: True (and counted) if the budget allows it now."""
        with self._lock:
            calls, retries, _ = self._window.totals()
            if retries + 1 > self._ratio * (calls - retries) + self._floor:
                return False
            self._window.record(True)
            return True

    @property
    def available(self) -> float:
        """Retries the budget would allow now."""
        calls, retries, _ = self._window.totals()
        return max(0.0, float(self._ratio * (calls - retries) + self._floor - retries))

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self._ratio!r}, min_per_second={self.min_per_second!r},"
            f" ttl={self.ttl!r})"
        )


# Indexes of Retry's counters, in RetryStats' order.
CALLS, ATTEMPTS, RETRIES, SUCCESSES, FAILURES = range(5)


def _retry_after(exc: BaseException) -> float | None:
    """A numeric ``retry_after`` on the exception (CircuitOpenError, RateLimitExceeded...)."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


class Retry(Policy):
    """Call up to ``attempts`` times (or until ``deadline`` seconds when ``attempts=None``).

    ``on``: exception types, or a predicate on the exception, that are worth
    a retry. ``retry_if_result(result)``: retry on returned values too (when
    they keep asking for a retry, ``RetryError`` is raised at the end).
    ``on_retry(state)`` is told of each retry before its wait. Forms: the
    decorator, ``call`` / ``acall``, and ``for attempt in retry: with
    attempt: ...`` (``async for`` likewise) for retrying a block.
    """

    __slots__ = (
        "__weakref__",
        "_attempts",
        "_backoff",
        "_budget",
        "_call_clock",
        "_cap",
        "_clock",
        "_counts",
        "_deadline",
        "_impl",
        "_matches",
        "_name",
        "_on_retry",
        "_retry_if_result",
        "_sleep",
    )

    def __init__(
        self,
        attempts: int | None = 3,
        *,
        backoff: Backoff | None = None,
        on: type[BaseException]
        | tuple[type[BaseException], ...]
        | Callable[[BaseException], bool] = Exception,
        retry_if_result: Callable[[Any], bool] | None = None,
        deadline: float | None = None,
        budget: RetryBudget | None = None,
        on_retry: Callable[[RetryState], object] | None = None,
        name: str | None = None,
        sleep: Callable[[float], Any] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._attempts = None if attempts is None else count("attempts", attempts)
        self._deadline = optional(positive, "deadline", deadline)
        if self._attempts is None and self._deadline is None:
            raise ValueError("attempts=None retries until the deadline: give a deadline")
        if backoff is not None and not callable(backoff):
            raise TypeError(f"backoff must be callable as backoff(n, previous), got {backoff!r}")
        self._backoff: Backoff = exponential() if backoff is None else backoff
        # A server's retry_after is capped by the backoff's max, when it has one.
        cap = getattr(self._backoff, "max", None)
        self._cap = math.inf if cap is None else float(cap)
        self._matches = check_on(on)
        self._retry_if_result = check_callable("retry_if_result", retry_if_result)
        if budget is not None and not isinstance(budget, RetryBudget):
            raise TypeError(f"budget must be a RetryBudget or None, got {budget!r}")
        self._budget = budget
        self._on_retry = [] if on_retry is None else [check_callable("on_retry", on_retry)]
        self._name = check_name(name)
        self._sleep = check_callable("sleep", sleep)
        self._call_clock = check_clock(clock)  # None: compiled wrappers read the C clock
        self._clock: Callable[[], float] = self._call_clock or time.monotonic
        self._impl = _core.SELECTED  # the twin its counters and wrappers run on
        self._counts = self._impl.Counters(len(RetryStats.__dataclass_fields__) - 1)

    # -- deciding ------------------------------------------------------------

    def _next_delay(
        self, attempt: int, previous: float | None, exc: BaseException | None, started: float
    ) -> float | None:
        """The wait before the next attempt, or None when no further attempt may start."""
        if self._attempts is not None and attempt >= self._attempts:
            return None
        delay: float = float(self._backoff(attempt, previous))
        told = None if exc is None else _retry_after(exc)
        if told is not None:
            delay = min(told, self._cap)
        left = remaining()
        if self._deadline is not None:
            left = min(left, self._deadline - (self._clock() - started))
        if not delay < left:  # the retry could not start before the deadline
            return None
        if self._budget is not None and not self._budget.try_withdraw():
            return None
        return delay

    def _count(self, index: int) -> None:
        self._counts.add(index)

    # -- call forms ------------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)``, retried."""
        return self._attempts_from(_Run(self), None, fn, args, kwargs)

    def _wrap_sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        if self._budget is not None or self._retry_if_result is not None:
            return super()._wrap_sync(fn)  # every attempt needs Python: no fast path
        # The compiled twin makes the first attempt in C.
        wrapper = self._impl.RetryCall(self, fn)
        functools.update_wrapper(wrapper, fn)
        return wrapper  # type: ignore[no-any-return]

    def _resume(
        self,
        failure: BaseException,
        started: float,
        fn: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        """Go on after a first attempt that the compiled wrapper made, counted and saw fail."""
        return self._attempts_from(_Run(self, started), failure, fn, args, kwargs)

    def _attempts_from(
        self,
        run: _Run,
        failure: BaseException | None,
        fn: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        if failure is not None:
            delay = run.after_exception(failure)
            if delay is None:
                raise failure
            sleep_with(self._sleep, delay)
        while True:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                delay = run.after_exception(exc)
                if delay is None:
                    raise
            else:
                delay = run.after_result(result)
                if delay is None:
                    return result
            sleep_with(self._sleep, delay)

    async def acall(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """``await fn(*args, **kwargs)``, retried."""
        if self._budget is not None or self._retry_if_result is not None:
            return await self._aattempts_from(_Run(self), None, fn, args, kwargs)
        # The first attempt, counted inline: most calls need no more.
        counts = self._counts
        started = self._clock()
        counts.add(CALLS)
        counts.add(ATTEMPTS)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            return await self._aattempts_from(_Run(self, started), exc, fn, args, kwargs)
        counts.add(SUCCESSES)
        return result

    async def _aattempts_from(
        self,
        run: _Run,
        failure: BaseException | None,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        if failure is not None:
            delay = run.after_exception(failure)
            if delay is None:
                raise failure
            await asleep_with(self._sleep, delay)
        while True:
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                delay = run.after_exception(exc)
                if delay is None:
                    raise
            else:
                delay = run.after_result(result)
                if delay is None:
                    return result
            await asleep_with(self._sleep, delay)

    def __iter__(self) -> Iterator[Attempt]:
        """``for attempt in retry: with attempt: ...`` retries the block on exceptions."""
        run = _Run(self)
        while True:
            attempt = Attempt(run)
            yield attempt
            if attempt.delay is None:  # the block succeeded (or was never run)
                return
            sleep_with(self._sleep, attempt.delay)

    async def __aiter__(self) -> AsyncIterator[Attempt]:
        """``async for attempt in retry: with attempt: ...``."""
        run = _Run(self)
        while True:
            attempt = Attempt(run)
            yield attempt
            if attempt.delay is None:  # the block succeeded (or was never run)
                return
            await asleep_with(self._sleep, attempt.delay)

    # -- reading -----------------------------------------------------------------

    def on_retry(self, callback: Callable[[RetryState], object]) -> Callable[[RetryState], object]:
        """Also call ``callback(state)`` before each wait (usable as a decorator)."""
        self._on_retry.append(check_callable("callback", callback))
        return callback

    @property
    def stats(self) -> RetryStats:
        return RetryStats(self._name, *self._counts.snapshot())

    def __repr__(self) -> str:
        return f"<Retry name={self._name!r} attempts={self._attempts!r} backoff={self._backoff!r}>"


class _Run:
    """One call through a Retry: counts its attempts and decides after each.

    The call forms differ only in how they call and sleep; every decision is
    made here, once.
    """

    __slots__ = ("_retry", "attempt", "previous", "started")

    def __init__(self, retry: Retry, started: float | None = None) -> None:
        """A new call; or, with ``started``, one whose first attempt was already counted."""
        self._retry = retry
        if started is None:
            if retry._budget is not None:
                retry._budget.deposit()
            retry._count(CALLS)
            retry._count(ATTEMPTS)
            started = retry._clock()
        self.started = started
        self.attempt = 1
        self.previous: float | None = None

    def after_exception(self, exc: BaseException) -> float | None:
        """The wait before retrying, or None: re-raise ``exc`` (a note says why)."""
        if isinstance(exc, NEVER_FAILURES):
            return None  # neither retried nor counted as a failure
        if not self._retry._matches(exc):
            self._retry._count(FAILURES)
            return None
        delay = self._next(exc, None)
        if delay is None and sys.version_info >= (3, 11):
            exc.add_note(f"resilience: gave up after {self.attempt} attempt(s)")
        return delay

    def after_result(self, result: Any) -> float | None:
        """The wait before retrying, or None: return ``result``. RetryError when giving up."""
        judge = self._retry._retry_if_result
        if judge is None or not judge(result):
            self.succeeded()
            return None
        delay = self._next(None, result)
        if delay is None:
            raise RetryError(self.attempt, last_result=result)
        return delay

    def succeeded(self) -> None:
        self._retry._count(SUCCESSES)

    def _next(self, exc: BaseException | None, result: Any) -> float | None:
        retry = self._retry
        delay = retry._next_delay(self.attempt, self.previous, exc, self.started)
        if delay is None:
            retry._count(FAILURES)
            return None
        if retry._on_retry:
            elapsed = retry._clock() - self.started
            state = RetryState(retry._name, self.attempt, delay, exc, result, elapsed)
            notify(retry._on_retry, state)
        retry._count(RETRIES)
        retry._count(ATTEMPTS)
        self.attempt += 1
        self.previous = delay
        return delay


class Attempt:
    """One try of a ``for attempt in retry`` loop: ``with attempt:`` runs it.

    The decision is made as the block ends: an exception that will be retried
    is swallowed and the loop waits ``delay``; any other — or the last one,
    when retrying stops — leaves the ``with`` block unchanged.
    """

    __slots__ = ("_run", "delay", "number")

    def __init__(self, run: _Run) -> None:
        self._run = run
        self.number = run.attempt
        self.delay: float | None = None  # set when the block failed and is retried

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            self._run.succeeded()  # a block has no result for retry_if_result to judge
            return False
        self.delay = self._run.after_exception(exc)
        return self.delay is not None

    def __repr__(self) -> str:
        return f"<Attempt {self.number}>"
