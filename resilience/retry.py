"""Retry: call again after a failure, waiting longer each time.

Correct by default: only exceptions (``on=Exception``) are retried, never
cancellation or interrupts; the original exception is re-raised unchanged
when retries run out; waits follow ``exponential()`` backoff with full
jitter, honour a server's ``retry_after``, and never start a retry that the
``deadline``, the current ``deadline()`` or the ``RetryBudget`` rules out.
With ``sleep=FakeClock.sleep`` (or ``.asleep``) retries are instant in tests.
"""

from __future__ import annotations

import math
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from . import _core
from ._core import _fork
from ._core._clock_py import reader
from ._core._layout import (
    RETRY_ATTEMPTS,
    RETRY_CALLS,
    RETRY_COUNTERS,
    RETRY_FAILURES,
    RETRY_RETRIES,
    RETRY_SUCCESSES,
)
from ._core._nocopy import NoCopy
from ._core._validate import clock as check_clock
from ._core._validate import count, non_negative, number, optional, positive, slice_width
from ._core._window_py import default_buckets
from ._policy import (
    NEVER_FAILURES,
    Policy,
    Wait,
    check_callable,
    check_name,
    check_on,
    coroutine_function,
    finish_async,
    finish_sync,
    notify,
    resume_async,
    resume_sync,
    sleep_async,
    sleep_sync,
)
from .backoff import Backoff, exponential
from .errors import RetryError
from .timeout import remaining

__all__ = ["Attempt", "Retry", "RetryBudget", "RetryState", "RetryStats"]

# How the note added to an exception given up on begins (the attempts follow).
GAVE_UP = "resilience: gave up after "

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


class RetryBudget(NoCopy):
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
        slice_width("ttl", self.ttl, default_buckets(self.ttl))  # the window's, checked here
        self._floor = self.min_per_second * self.ttl
        # The compiled time window counts first calls as successes and
        # retries as failures over the last ``ttl`` seconds.
        self._window = _core.SELECTED.TimeWindow(self.ttl, clock=check_clock(clock))
        self._lock = _fork.lock()  # a check and its withdrawal are one step

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
        "_wrapper_clock",
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
        self._clock: Callable[[], float] = reader(check_clock(clock))  # readings checked
        # What the call wrappers read their start time from: the same reader
        # (its time is shifted when the clock steps back), or None when the
        # compiled wrappers may read the C clock.
        self._wrapper_clock = None if clock is None else self._clock
        self._impl = _core.SELECTED  # the twin its counters and wrappers run on
        self._counts = self._impl.Counters(RETRY_COUNTERS)

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

    # -- the protocol: each attempt's outcome decides whether to run again -------------

    def _enter(self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None) -> _Run:
        return _Run(self)

    def _exit(self, token: _Run, error: BaseException | None, result: Any) -> _Backoff | None:
        """The wait before the next attempt; None when the call is done."""
        # after_result raises RetryError when it gives up on results.
        again = token.after_exception(error) if error is not None else token.after_result(result)
        return _Backoff(token) if again else None

    def _fast_sync(self, fn: Callable[..., Any]) -> Any:
        if self._budget is not None or self._retry_if_result is not None:
            return None  # every attempt needs Python: no fast path
        # The compiled twin makes the first attempt in C.
        return self._impl.RetryCall(fn, self._counts, self._resume, self._wrapper_clock)

    def _fast_async(self, fn: Callable[..., Any]) -> Any:
        if self._budget is not None or self._retry_if_result is not None:
            return None
        return coroutine_function(
            self._impl.AsyncRetryCall(fn, self._counts, self._aresume, self._wrapper_clock)
        )

    def _resume(
        self,
        failure: BaseException,
        started: float,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Go on after a first attempt that a fast path made, counted and saw fail."""
        return resume_sync(self, _Run(self, started), failure, fn, args, kwargs)

    def _aresume(
        self,
        failure: BaseException,
        started: float,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Awaitable[Any]:
        """``_resume``'s coroutine, for the async fast path."""
        return resume_async(self, _Run(self, started), failure, fn, args, kwargs)

    # -- retrying a block --------------------------------------------------------

    def __iter__(self) -> Iterator[Attempt]:
        """``for attempt in retry: with attempt: ...`` retries the block on exceptions."""
        run = _Run(self)
        while True:
            attempt = Attempt(run)
            yield attempt
            if not attempt.retried:  # the block succeeded, gave up (or was never run)
                return
            finish_sync(_Backoff(run))

    async def __aiter__(self) -> AsyncIterator[Attempt]:
        """``async for attempt in retry: with attempt: ...``."""
        run = _Run(self)
        while True:
            attempt = Attempt(run)
            yield attempt
            if not attempt.retried:
                return
            await finish_async(_Backoff(run))

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
    """One call through a Retry: decides after each attempt.

    Every form of a call makes its decisions here, once. An attempt is
    counted as it starts (at the end of its ``_Backoff``): a call abandoned
    during its backoff (cancelled, interrupted) counts no attempt it never
    made, and counts as a call that failed.
    """

    __slots__ = ("_retry", "attempt", "delay", "previous", "started")

    def __init__(self, retry: Retry, started: float | None = None) -> None:
        """A new call; or, with ``started``, one whose first attempt was already counted."""
        self._retry = retry
        if started is None:
            started = retry._clock()  # first: a bad clock raises with nothing counted
            if retry._budget is not None:
                retry._budget.deposit()
            counts = retry._counts
            counts.add(RETRY_CALLS)
            counts.add(RETRY_ATTEMPTS)
        self.started = started
        self.attempt = 1
        self.delay = 0.0
        self.previous: float | None = None

    def after_exception(self, exc: BaseException) -> bool:
        """Whether to retry after ``exc`` (waiting ``delay``); if not, a note says why."""
        if isinstance(exc, NEVER_FAILURES):
            return False  # neither retried nor counted as a failure
        if not self._retry._matches(exc):
            self._retry._counts.add(RETRY_FAILURES)
            return False
        if self._decide(exc, None):
            return True
        # One note per exception: an exception shared by many callers (one
        # failed future awaited by many tasks, a module-level error) is given
        # up on once per caller, and its notes must not grow with them.
        if sys.version_info >= (3, 11) and not any(
            isinstance(note, str) and note.startswith(GAVE_UP)
            for note in getattr(exc, "__notes__", ())
        ):
            exc.add_note(f"{GAVE_UP}{self.attempt} attempt(s)")
        return False

    def after_result(self, result: Any) -> bool:
        """Whether to retry after ``result``; RetryError when it asks for one that cannot be."""
        judge = self._retry._retry_if_result
        if judge is None or not judge(result):
            self.succeeded()
            return False
        if self._decide(None, result):
            return True
        raise RetryError(self.attempt, last_result=result)

    def succeeded(self) -> None:
        self._retry._counts.add(RETRY_SUCCESSES)

    def _decide(self, exc: BaseException | None, result: Any) -> bool:
        retry = self._retry
        delay = retry._next_delay(self.attempt, self.previous, exc, self.started)
        if delay is None:
            retry._counts.add(RETRY_FAILURES)
            return False
        if retry._on_retry:
            elapsed = retry._clock() - self.started
            state = RetryState(retry._name, self.attempt, delay, exc, result, elapsed)
            notify(retry._on_retry, state)
        self.delay = delay
        return True

    def next_attempt(self) -> _Run:
        """The backoff is over: the next attempt starts."""
        counts = self._retry._counts
        counts.add(RETRY_RETRIES)
        counts.add(RETRY_ATTEMPTS)
        self.attempt += 1
        self.previous = self.delay
        return self


class _Backoff(Wait):
    """The wait before a run's next attempt; then the run goes on."""

    __slots__ = ("_run",)

    def __init__(self, run: _Run) -> None:
        self._run = run

    def wait_sync(self) -> None:
        sleep_sync(self._run.delay, self._run._retry._sleep)

    async def wait_async(self) -> None:
        await sleep_async(self._run.delay, self._run._retry._sleep)

    def done(self) -> _Run:
        return self._run.next_attempt()

    def abandon(self) -> None:
        self._run._retry._counts.add(RETRY_FAILURES)


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

    @property
    def retried(self) -> bool:
        """Whether the block failed and another attempt follows."""
        return self.delay is not None

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
        if not self._run.after_exception(exc):
            return False
        self.delay = self._run.delay
        return True

    def __repr__(self) -> str:
        return f"<Attempt {self.number}>"
