"""Retry and RetryBudget: every form, timed on a FakeClock.

The contract is docs/architecture.md ("Public API", "Errors", "Retry and backoff",
"Timeout and deadline") and the docstrings of resilience/retry.py (the
fields of RetryState and RetryStats, RetryBudget's rule). Every wait, count
and time below is worked out by hand from it. The tests use the public API
only; those that build a RetryBudget (which keeps its calls in the core
TimeWindow) ask for ``policy_impl``, so they run on both twins.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import sys
import threading
from typing import Any

import pytest
from realsleep import Woken, asleep_then_cancelled, woken_from_the_sleep_hook

import resilience
from resilience import (
    CircuitOpenError,
    RateLimitExceeded,
    Retry,
    RetryBudget,
    RetryError,
    RetryState,
    RetryStats,
    deadline,
)
from resilience.backoff import constant, exponential, linear
from resilience.testing import FakeClock

START = 100.0
GUARD = 10.0  # seconds: a hang guard for waits on events and joins, never an assertion on time


class Boom(Exception):
    """The failure the scripted functions raise."""


class Other(Exception):
    """An exception that the tests' ``on=Boom`` does not match."""


class Throttled(Exception):
    """A user exception carrying a server's ``retry_after``."""

    def __init__(self, retry_after: Any) -> None:
        super().__init__(f"throttled, retry after {retry_after!r}")
        self.retry_after = retry_after


class Script:
    """A function that raises or returns as scripted, recording each call.

    ``outcomes`` are used one per call: an exception instance is raised,
    anything else returned; past the end each call raises a fresh ``Boom``.
    With a ``clock``, each call notes the time it started and lasts
    ``duration`` seconds on it.
    """

    def __init__(
        self, *outcomes: Any, clock: FakeClock | None = None, duration: float = 0.0
    ) -> None:
        self.outcomes = list(outcomes)
        self.clock = clock
        self.duration = duration
        self.calls = 0
        self.times: list[float] = []
        self.args: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.raised: list[BaseException] = []

    def _next(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.calls += 1
        self.args.append((args, kwargs))
        if self.clock is not None:
            self.times.append(self.clock())
            self.clock.advance(self.duration)
        if self.calls <= len(self.outcomes):
            outcome = self.outcomes[self.calls - 1]
        else:
            outcome = Boom(f"failure {self.calls}")
        if isinstance(outcome, BaseException):
            self.raised.append(outcome)
            raise outcome
        return outcome

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        return self._next(args, kwargs)

    async def coro(self, /, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return self._next(args, kwargs)


def make(attempts: int | None = 3, **kwargs: Any) -> tuple[Retry, FakeClock]:
    """A Retry on a FakeClock whose sync sleep advances that clock."""
    clock = FakeClock(START)
    return Retry(attempts, sleep=clock.sleep, clock=clock, **kwargs), clock


def amake(attempts: int | None = 3, **kwargs: Any) -> tuple[Retry, FakeClock]:
    """A Retry on a FakeClock whose async sleep advances that clock."""
    clock = FakeClock(START)
    return Retry(attempts, sleep=clock.asleep, clock=clock, **kwargs), clock


def assert_gave_up_note(exc: BaseException, attempts: int) -> None:
    """On 3.11+ the re-raised exception carries a note saying how many attempts were made."""
    if sys.version_info >= (3, 11):
        notes = getattr(exc, "__notes__", [])
        assert any(f"gave up after {attempts} attempt(s)" in note for note in notes), notes


@pytest.fixture(autouse=True)
def twin(policy_impl: Any) -> Any:
    """Every test runs on both twins: Retry keeps its counts (and its compiled
    wrapper) in the core, RetryBudget its calls in the core TimeWindow."""
    return policy_impl


SYNC_FORMS = ["call", "decorator", "loop"]
ASYNC_FORMS = ["acall", "decorator", "loop"]


def run(retry: Retry, form: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` through ``retry`` in one of its sync forms."""
    if form == "call":
        return retry.call(fn, *args, **kwargs)
    if form == "decorator":

        @retry
        def decorated(*a: Any, **kw: Any) -> Any:
            return fn(*a, **kw)

        return decorated(*args, **kwargs)
    assert form == "loop"
    for attempt in retry:
        with attempt:
            result = fn(*args, **kwargs)
    return result


async def arun(retry: Retry, form: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``await fn(*args, **kwargs)`` through ``retry`` in one of its async forms."""
    if form == "acall":
        return await retry.acall(fn, *args, **kwargs)
    if form == "decorator":

        @retry
        async def decorated(*a: Any, **kw: Any) -> Any:
            return await fn(*a, **kw)

        return await decorated(*args, **kwargs)
    assert form == "loop"
    async for attempt in retry:
        with attempt:
            result = await fn(*args, **kwargs)
    return result


def test_names_are_importable_from_the_package():
    assert resilience.Retry is Retry
    assert resilience.RetryBudget is RetryBudget
    assert resilience.RetryState is RetryState
    assert resilience.RetryStats is RetryStats
    assert resilience.RetryError is RetryError


# -- attempts and backoff waits -------------------------------------------------


@pytest.mark.parametrize("form", SYNC_FORMS)
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_success_on_the_kth_attempt_makes_k_calls_and_waits_between_them(k, form):
    retry, clock = make(4, backoff=constant(0.5))
    fn = Script(*[Boom(f"#{i}") for i in range(1, k)], "value", clock=clock)
    assert run(retry, form, fn) == "value"
    assert fn.calls == k
    assert fn.times == [START + 0.5 * i for i in range(k)]
    assert clock() == START + 0.5 * (k - 1)


def test_linear_waits_grow_by_step_up_to_max():
    # waits before retries 1..4: min(4, 1 + 2*(n-1)) = 1, 3, 4, 4
    retry, clock = make(5, backoff=linear(1.0, 2.0, 4.0))
    fn = Script(Boom(), Boom(), Boom(), Boom(), "ok", clock=clock)
    assert retry.call(fn) == "ok"
    assert fn.calls == 5
    assert fn.times == [100.0, 101.0, 104.0, 108.0, 112.0]
    assert clock() == 112.0


def test_exponential_without_jitter_waits_initial_times_multiplier_powers():
    # waits: 0.5, 0.5*3 = 1.5, 0.5*9 = 4.5
    retry, clock = make(4, backoff=exponential(initial=0.5, multiplier=3.0, max=10.0, jitter=None))
    fn = Script(Boom(), Boom(), Boom(), "ok", clock=clock)
    assert retry.call(fn) == "ok"
    assert fn.times == [100.0, 100.5, 102.0, 106.5]
    assert clock() == 106.5


def test_exponential_without_jitter_is_capped_by_max():
    # waits: 1, 2, 4 -> min(3, 4) = 3
    retry, clock = make(4, backoff=exponential(initial=1.0, multiplier=2.0, max=3.0, jitter=None))
    fn = Script(Boom(), Boom(), Boom(), "ok", clock=clock)
    assert retry.call(fn) == "ok"
    assert fn.times == [100.0, 101.0, 103.0, 106.0]


def test_retry_passes_the_previous_wait_to_the_backoff():
    asked: list[tuple[int, float | None]] = []

    def backoff(n: int, previous: float | None = None) -> float:
        asked.append((n, previous))
        return 0.25 * n

    retry, clock = make(4, backoff=backoff)
    fn = Script(Boom(), Boom(), Boom(), "ok", clock=clock)
    assert retry.call(fn) == "ok"
    assert asked == [(1, None), (2, 0.25), (3, 0.5)]
    assert clock() == START + 0.25 + 0.5 + 0.75


def test_default_backoff_is_exponential_with_full_jitter():
    # exponential(): d = min(30, 0.1 * 2**(n-1)); full jitter draws each wait in [0, d]
    waits: list[float] = []
    told: list[float] = []
    retry = Retry(
        4, sleep=waits.append, clock=FakeClock(START), on_retry=lambda s: told.append(s.delay)
    )
    for _ in range(25):
        with pytest.raises(Boom):
            retry.call(Script())
    assert len(waits) == 25 * 3
    assert told == waits
    for i, wait in enumerate(waits):
        n = i % 3 + 1
        assert 0.0 <= wait <= 0.1 * 2 ** (n - 1)
    assert len(set(waits[0::3])) > 1  # jittered, not the fixed d


@pytest.mark.parametrize("form", ASYNC_FORMS)
def test_async_call_succeeds_on_the_third_attempt_with_async_sleep(form):
    retry, clock = amake(3, backoff=constant(2.0))
    fn = Script(Boom(), Boom(), "ok", clock=clock)
    assert asyncio.run(arun(retry, form, fn.coro)) == "ok"
    assert fn.calls == 3
    assert fn.times == [100.0, 102.0, 104.0]


# -- giving up --------------------------------------------------------------------


@pytest.mark.parametrize("form", SYNC_FORMS)
@pytest.mark.parametrize("attempts", [1, 2, 5])
def test_out_of_attempts_reraises_the_last_exception_itself(attempts, form):
    retry, clock = make(attempts, backoff=constant(1.0))
    fn = Script(clock=clock)
    with pytest.raises(Boom) as info:
        run(retry, form, fn)
    assert fn.calls == attempts
    assert type(info.value) is Boom
    assert info.value is fn.raised[-1]
    assert clock() == START + (attempts - 1)
    assert_gave_up_note(info.value, attempts)


@pytest.mark.parametrize("form", ASYNC_FORMS)
def test_async_out_of_attempts_reraises_the_last_exception_itself(form):
    retry, clock = amake(3, backoff=constant(1.0))
    fn = Script(clock=clock)
    with pytest.raises(Boom) as info:
        asyncio.run(arun(retry, form, fn.coro))
    assert fn.calls == 3
    assert info.value is fn.raised[-1]
    assert clock() == 102.0
    assert_gave_up_note(info.value, 3)


@pytest.mark.parametrize(
    "on",
    [ValueError, (KeyError, ValueError), lambda exc: isinstance(exc, ValueError)],
    ids=["type", "tuple", "predicate"],
)
@pytest.mark.parametrize("form", SYNC_FORMS)
def test_an_exception_not_matching_on_propagates_after_one_call(on, form):
    retry, clock = make(5, backoff=constant(1.0), on=on)
    error = TypeError("not this one")
    fn = Script(error, "never", clock=clock)
    with pytest.raises(TypeError) as info:
        run(retry, form, fn)
    assert info.value is error
    assert fn.calls == 1
    assert clock() == START


@pytest.mark.parametrize(
    ("on", "error"),
    [
        (ValueError, ValueError("v")),
        ((KeyError, ValueError), KeyError("k")),
        (LookupError, KeyError("subclass")),
        (lambda exc: isinstance(exc, ValueError), ValueError("p")),
    ],
    ids=["type", "tuple", "subclass", "predicate"],
)
def test_an_exception_matching_on_is_retried(on, error):
    retry, clock = make(5, backoff=constant(1.0), on=on)
    fn = Script(error, "ok", clock=clock)
    assert retry.call(fn) == "ok"
    assert fn.calls == 2


def test_the_predicate_is_given_the_exception():
    seen: list[BaseException] = []

    def worth_it(exc: BaseException) -> bool:
        seen.append(exc)
        return exc.args == ("again",)

    retry, clock = make(5, backoff=constant(1.0), on=worth_it)
    first, second = Boom("again"), Boom("stop")
    fn = Script(first, second, "never", clock=clock)
    with pytest.raises(Boom) as info:
        retry.call(fn)
    assert info.value is second
    assert fn.calls == 2
    assert seen == [first, second]


@pytest.mark.parametrize("error_type", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize(
    "on",
    [BaseException, (Exception, BaseException), lambda exc: True],
    ids=["base", "tuple", "yes"],
)
@pytest.mark.parametrize("form", SYNC_FORMS)
def test_interrupts_are_never_retried(error_type, on, form):
    retry, clock = make(5, backoff=constant(1.0), on=on)
    error = error_type()
    fn = Script(error, "never", clock=clock)
    with pytest.raises(error_type) as info:
        run(retry, form, fn)
    assert info.value is error
    assert fn.calls == 1
    assert clock() == START


def test_a_task_cancelled_during_an_attempt_is_not_retried():
    clock = FakeClock(START)
    retry = Retry(5, backoff=constant(1.0), on=BaseException, sleep=clock.asleep, clock=clock)
    calls = 0

    async def main() -> None:
        nonlocal calls
        started = asyncio.Event()

        async def hang() -> None:
            nonlocal calls
            calls += 1
            started.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(retry.acall(hang))
        await asyncio.wait_for(started.wait(), GUARD)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, GUARD)
        assert task.cancelled()

    asyncio.run(main())
    assert calls == 1
    assert clock() == START


def test_a_task_cancelled_during_the_wait_is_not_retried():
    fn = Script()
    waits: list[float] = []

    async def main() -> None:
        sleeping = asyncio.Event()

        async def sleep(seconds: float) -> None:
            waits.append(seconds)
            sleeping.set()
            await asyncio.Event().wait()

        retry = Retry(5, backoff=constant(1.0), on=BaseException, sleep=sleep, clock=FakeClock())
        task = asyncio.create_task(retry.acall(fn.coro))
        await asyncio.wait_for(sleeping.wait(), GUARD)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, GUARD)
        assert task.cancelled()

    asyncio.run(main())
    assert fn.calls == 1
    assert waits == [1.0]


# -- retry_if_result -----------------------------------------------------------------


def test_retry_if_result_retries_on_values():
    retry, clock = make(4, backoff=constant(1.0), retry_if_result=lambda value: value is None)
    fn = Script(None, None, 42, clock=clock)
    assert retry.call(fn) == 42
    assert fn.calls == 3
    assert clock() == 102.0


def test_retry_if_result_mixes_with_exceptions():
    retry, clock = make(4, backoff=constant(1.0), retry_if_result=lambda value: value is None)
    fn = Script(Boom(), None, 7, clock=clock)
    assert retry.call(fn) == 7
    assert fn.calls == 3


def test_retry_if_result_that_keeps_failing_raises_retry_error():
    results = [["a"], ["b"], ["c"]]
    retry, clock = make(3, backoff=constant(1.0), retry_if_result=lambda value: True)
    fn = Script(*results, clock=clock)
    with pytest.raises(RetryError) as info:
        retry.call(fn)
    assert info.value.attempts == 3
    assert info.value.last_result is results[2]
    assert info.value.last_exception is None
    assert fn.calls == 3
    assert clock() == 102.0


def test_async_retry_if_result_that_keeps_failing_raises_retry_error():
    retry, clock = amake(2, backoff=constant(1.0), retry_if_result=lambda value: value < 0)
    fn = Script(-1, -2, clock=clock)
    with pytest.raises(RetryError) as info:
        asyncio.run(retry.acall(fn.coro))
    assert info.value.attempts == 2
    assert info.value.last_result == -2
    assert fn.calls == 2


# -- retry_after -------------------------------------------------------------------


def _plain_backoff(n: int, previous: float | None = None) -> float:
    return 1.0


@pytest.mark.parametrize(
    ("backoff", "error", "wait"),
    [
        (exponential(initial=0.1, max=30.0, jitter=None), CircuitOpenError("svc", 2.0), 2.0),
        (exponential(initial=0.1, max=1.0, jitter=None), CircuitOpenError("svc", 2.0), 1.0),
        (None, CircuitOpenError("svc", 5.0), 5.0),
        (None, CircuitOpenError("svc", 45.0), 30.0),
        (constant(0.1), CircuitOpenError("svc", 50.0), 50.0),
        (constant(5.0), RateLimitExceeded(None, 0.25), 0.25),
        (linear(1.0, 1.0, 2.0), RateLimitExceeded("api", 10.0), 2.0),
        (constant(1.0), Throttled(3), 3.0),
        (constant(1.0), Throttled(2.5), 2.5),
        (_plain_backoff, Throttled(40.0), 40.0),
        (constant(1.0), Throttled("soon"), 1.0),
        (constant(1.0), Throttled(None), 1.0),
    ],
    ids=[
        "exponential",
        "capped-by-max",
        "default-backoff-no-jitter",
        "default-max-30",
        "constant-has-no-max",
        "shorter-than-backoff",
        "linear-max",
        "custom-int",
        "custom-float",
        "function-backoff-no-max",
        "not-numeric",
        "none",
    ],
)
def test_retry_after_sets_the_next_wait(backoff, error, wait):
    retry, clock = make(2, backoff=backoff)
    fn = Script(error, "ok", clock=clock)
    assert retry.call(fn) == "ok"
    assert fn.times == [START, START + wait]


def test_retry_after_sets_only_the_next_wait():
    # retry 1 waits the 5.0 the server asked for; retry 2 is back on the backoff: 1*2 = 2
    retry, clock = make(3, backoff=exponential(initial=1.0, max=30.0, jitter=None))
    fn = Script(CircuitOpenError("svc", 5.0), Boom(), "ok", clock=clock)
    assert retry.call(fn) == "ok"
    assert fn.times == [100.0, 105.0, 107.0]


def test_retry_after_is_told_to_on_retry():
    delays: list[float] = []
    retry, _ = make(2, backoff=constant(1.0), on_retry=lambda s: delays.append(s.delay))
    assert retry.call(Script(RateLimitExceeded("api", 4.0), "ok")) == "ok"
    assert delays == [4.0]


def test_retry_after_past_the_deadline_gives_up_at_once():
    retry, clock = make(5, backoff=constant(0.1), deadline=3.0)
    error = CircuitOpenError("svc", 5.0)
    fn = Script(error, "never", clock=clock)
    with pytest.raises(CircuitOpenError) as info:
        retry.call(fn)
    assert info.value is error
    assert fn.calls == 1
    assert clock() == START
    assert_gave_up_note(error, 1)


# -- deadlines ----------------------------------------------------------------------


def test_deadline_no_retry_starts_whose_wait_ends_at_or_past_it():
    # deadline 2.5: failures at t=0 (wait to 1), t=1 (wait to 2), t=2 (a wait to 3 > 2.5: stop)
    retry, clock = make(10, backoff=constant(1.0), deadline=2.5)
    fn = Script(clock=clock)
    with pytest.raises(Boom) as info:
        retry.call(fn)
    assert fn.times == [100.0, 101.0, 102.0]
    assert info.value is fn.raised[-1]
    assert clock() == 102.0
    assert_gave_up_note(info.value, 3)


def test_deadline_a_wait_that_would_end_exactly_at_it_does_not_start():
    # deadline 2.0: at t=1 the next attempt could only start at t=2, the deadline itself
    retry, clock = make(10, backoff=constant(1.0), deadline=2.0)
    fn = Script(clock=clock)
    with pytest.raises(Boom):
        retry.call(fn)
    assert fn.times == [100.0, 101.0]


@pytest.mark.parametrize("form", SYNC_FORMS)
def test_deadline_counts_the_time_spent_in_the_calls(form):
    # each call lasts 0.5, waits 1.0, deadline 5.0:
    # fail at 100.5 (elapsed 0.5, wait to 101.5), 102.0 (2.0, to 103.0),
    # 103.5 (3.5, to 104.5), 105.0 (5.0: nothing left) -> 4 calls
    retry, clock = make(None, backoff=constant(1.0), deadline=5.0)
    fn = Script(clock=clock, duration=0.5)
    with pytest.raises(Boom):
        run(retry, form, fn)
    assert fn.times == [100.0, 101.5, 103.0, 104.5]
    assert clock() == 105.0


def test_attempts_none_retries_until_the_deadline():
    # constant 1.0, deadline 5.5: attempts at 0..5, then a wait to 6 > 5.5
    retry, clock = make(None, backoff=constant(1.0), deadline=5.5)
    fn = Script(clock=clock)
    with pytest.raises(Boom) as info:
        retry.call(fn)
    assert fn.calls == 6
    assert fn.times == [100.0 + i for i in range(6)]
    assert info.value is fn.raised[-1]
    assert_gave_up_note(info.value, 6)


def test_attempts_none_until_the_deadline_can_succeed():
    retry, clock = make(None, backoff=constant(1.0), deadline=60.0)
    fn = Script(*[Boom() for _ in range(9)], "done", clock=clock)
    assert retry.call(fn) == "done"
    assert fn.calls == 10
    assert clock() == 109.0


def test_attempts_stop_before_the_deadline_when_fewer():
    retry, clock = make(2, backoff=constant(1.0), deadline=60.0)
    fn = Script(clock=clock)
    with pytest.raises(Boom):
        retry.call(fn)
    assert fn.calls == 2


def test_attempts_none_without_a_deadline_is_refused():
    clock = FakeClock()
    with pytest.raises(ValueError, match="deadline"):
        Retry(None, clock=clock)
    with pytest.raises(ValueError, match="deadline"):
        Retry(attempts=None, deadline=None, clock=clock)


def test_deadline_with_retry_if_result_raises_retry_error():
    retry, clock = make(
        None, backoff=constant(1.0), deadline=2.5, retry_if_result=lambda value: value is None
    )
    fn = Script(None, None, None, None, clock=clock)
    with pytest.raises(RetryError) as info:
        retry.call(fn)
    assert info.value.attempts == 3
    assert fn.calls == 3


def test_the_current_deadline_limits_the_waits():
    retry, clock = make(10, backoff=constant(1.0))
    fn = Script(clock=clock)
    with deadline(2.5, clock=clock), pytest.raises(Boom) as info:
        retry.call(fn)
    assert fn.times == [100.0, 101.0, 102.0]
    assert_gave_up_note(info.value, 3)


def test_the_current_deadline_is_what_remains_of_it():
    # entered at 100 with 2.5 s; the call starts at 101: attempts at 101 and 102 only
    retry, clock = make(10, backoff=constant(1.0))
    fn = Script(clock=clock)
    with deadline(2.5, clock=clock):
        clock.advance(1.0)
        with pytest.raises(Boom):
            retry.call(fn)
    assert fn.times == [101.0, 102.0]


@pytest.mark.parametrize(
    ("own", "current", "times"),
    [(10.0, 2.5, [100.0, 101.0, 102.0]), (1.5, 10.0, [100.0, 101.0])],
    ids=["current-is-earlier", "own-is-earlier"],
)
def test_the_earlier_of_the_own_and_the_current_deadline_wins(own, current, times):
    retry, clock = make(10, backoff=constant(1.0), deadline=own)
    fn = Script(clock=clock)
    with deadline(current, clock=clock), pytest.raises(Boom):
        retry.call(fn)
    assert fn.times == times


def test_the_current_deadline_limits_async_waits():
    retry, clock = amake(10, backoff=constant(1.0))
    fn = Script(clock=clock)

    async def main() -> None:
        async with deadline(2.5, clock=clock):
            await retry.acall(fn.coro)

    with pytest.raises(Boom) as info:
        asyncio.run(main())
    assert fn.times == [100.0, 101.0, 102.0]
    assert info.value is fn.raised[-1]


def test_after_the_current_deadline_no_retry():
    retry, clock = make(10, backoff=constant(1.0))
    fn = Script(clock=clock)
    with deadline(0.0, clock=clock), pytest.raises(Boom):
        retry.call(fn)
    assert fn.calls == 1


# -- on_retry ------------------------------------------------------------------------


@pytest.mark.parametrize("form", SYNC_FORMS)
def test_on_retry_is_told_the_state_before_each_wait(form):
    clock = FakeClock(START)
    seen: list[tuple[RetryState, float]] = []
    retry = Retry(
        3,
        backoff=linear(1.0, 1.0, 10.0),
        name="fetch",
        on_retry=lambda state: seen.append((state, clock())),
        sleep=clock.sleep,
        clock=clock,
    )
    # each call lasts 0.5: fails at 100.5 (wait 1), fails at 102.0 (wait 2), succeeds at 104.5
    fn = Script(Boom("a"), Boom("b"), "ok", clock=clock, duration=0.5)
    assert run(retry, form, fn) == "ok"
    first, second = fn.raised
    assert seen == [
        (RetryState("fetch", 1, 1.0, first, None, 0.5), 100.5),
        (RetryState("fetch", 2, 2.0, second, None, 2.0), 102.0),
    ]
    assert seen[0][0].exception is first
    assert seen[1][0].exception is second
    assert clock() == 104.5


def test_on_retry_is_told_the_result_that_was_retried():
    states: list[RetryState] = []
    retry, clock = make(
        3,
        backoff=constant(0.25),
        retry_if_result=lambda value: value < 0,
        on_retry=states.append,
    )
    assert retry.call(Script(-1, -2, 3, clock=clock)) == 3
    assert states == [
        RetryState(None, 1, 0.25, None, -1, 0.0),
        RetryState(None, 2, 0.25, None, -2, 0.25),
    ]


def test_on_retry_is_not_called_when_giving_up():
    states: list[RetryState] = []
    retry, clock = make(2, backoff=constant(1.0), on_retry=states.append)
    with pytest.raises(Boom):
        retry.call(Script(clock=clock))
    assert [s.attempt for s in states] == [1]


def test_on_retry_method_adds_a_callback():
    first: list[int] = []
    second: list[int] = []
    retry, _ = make(3, backoff=constant(1.0), on_retry=lambda s: first.append(s.attempt))
    retry.on_retry(lambda s: second.append(s.attempt))
    assert retry.call(Script(Boom(), Boom(), "ok")) == "ok"
    assert first == [1, 2]
    assert second == [1, 2]


def test_on_retry_method_works_without_a_constructor_callback():
    seen: list[int] = []
    retry, _ = make(3, backoff=constant(1.0))
    retry.on_retry(lambda s: seen.append(s.attempt))
    assert retry.call(Script(Boom(), "ok")) == "ok"
    assert seen == [1]


def test_a_raising_on_retry_callback_is_logged_and_retrying_goes_on(caplog):
    caplog.set_level(logging.DEBUG, logger="resilience")

    def broken(state: RetryState) -> None:
        raise RuntimeError("listener bug")

    seen: list[int] = []
    retry, clock = make(3, backoff=constant(1.0), on_retry=broken)
    retry.on_retry(lambda s: seen.append(s.attempt))
    fn = Script(Boom(), Boom(), "ok", clock=clock)
    assert retry.call(fn) == "ok"
    assert fn.calls == 3
    assert clock() == 102.0
    assert seen == [1, 2]
    logged = [r for r in caplog.records if r.name == "resilience"]
    assert len(logged) == 2
    for record in logged:
        assert record.levelno >= logging.WARNING
        text = record.getMessage()
        if record.exc_info:
            text += repr(record.exc_info[1])
        assert "listener bug" in text


# -- RetryBudget -------------------------------------------------------------------


def budgeted(budget: RetryBudget, clock: FakeClock, attempts: int = 10, **kwargs: Any) -> Retry:
    return Retry(
        attempts, backoff=constant(0.0), budget=budget, sleep=clock.sleep, clock=clock, **kwargs
    )


def test_budget_allows_retries_up_to_the_ratio_of_calls(policy_impl):
    clock = FakeClock(START)
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, ttl=10.0, clock=clock)
    retry = budgeted(budget, clock)
    for _ in range(3):
        assert retry.call(Script("ok")) == "ok"
    fn = Script()
    with pytest.raises(Boom) as info:
        retry.call(fn)  # the 4th call: 0.5 * 4 = 2 retries
    assert fn.calls == 3
    assert info.value is fn.raised[-1]
    assert_gave_up_note(info.value, 3)
    assert budget.available == 0.0
    fn = Script()
    with pytest.raises(Boom):
        retry.call(fn)  # 5 calls allow 2.5 retries; 2 are spent, a 3rd would go past
    assert fn.calls == 1


def test_budget_counts_calls_that_fail_too(policy_impl):
    # every call fails; retries allowed so far = 0.5 * calls:
    # call 1: 0.5 -> none; call 2: 1.0 -> one; call 3: 1.5 -> none more; call 4: 2.0 -> one more
    clock = FakeClock(START)
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, ttl=10.0, clock=clock)
    retry = budgeted(budget, clock)
    made = []
    for _ in range(4):
        fn = Script()
        with pytest.raises(Boom):
            retry.call(fn)
        made.append(fn.calls)
    assert made == [1, 2, 1, 2]
    assert retry.stats.retries == 2


def test_budget_available(policy_impl):
    # floor: min_per_second * ttl = 0.5 * 4 = 2 retries; plus 0.5 of the calls
    clock = FakeClock(START)
    budget = RetryBudget(ratio=0.5, min_per_second=0.5, ttl=4.0, clock=clock)
    assert budget.available == 2.0
    retry = budgeted(budget, clock)
    for _ in range(4):
        retry.call(Script("ok"))
    assert budget.available == 4.0  # 2 + 0.5 * 4
    for _ in range(2):
        assert retry.call(Script(Boom(), "ok")) == "ok"
    assert budget.available == 3.0  # 2 + 0.5 * 6 - 2 retries
    clock.advance(5.0)  # everything is older than ttl now
    assert budget.available == 2.0


def test_budget_settings_are_readable(policy_impl):
    budget = RetryBudget(ratio=0.3, min_per_second=2.0, ttl=5.0, clock=FakeClock())
    assert budget.ratio == 0.3
    assert budget.min_per_second == 2.0
    assert budget.ttl == 5.0
    assert budget.available == 10.0


def test_budget_defaults(policy_impl):
    budget = RetryBudget(clock=FakeClock())
    assert (budget.ratio, budget.min_per_second, budget.ttl) == (0.2, 10.0, 10.0)
    assert budget.available == 100.0  # 10 a second over 10 s


def test_budget_shared_by_two_retries(policy_impl):
    # no ratio, a floor of 0.5 * 4 = 2 retries in any 4 s, shared
    clock = FakeClock(START)
    budget = RetryBudget(ratio=0.0, min_per_second=0.5, ttl=4.0, clock=clock)
    first = budgeted(budget, clock)
    second = budgeted(budget, clock)
    fn = Script()
    with pytest.raises(Boom):
        first.call(fn)
    assert fn.calls == 3
    fn = Script()
    with pytest.raises(Boom) as info:
        second.call(fn)
    assert fn.calls == 1
    assert info.value is fn.raised[0]
    assert budget.available == 0.0
    clock.advance(5.0)  # the two retries are older than ttl
    assert budget.available == 2.0
    fn = Script()
    with pytest.raises(Boom):
        second.call(fn)
    assert fn.calls == 3


def test_budget_calls_age_out_after_ttl(policy_impl):
    clock = FakeClock(START)
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, ttl=10.0, clock=clock)
    retry = budgeted(budget, clock)
    for _ in range(4):
        retry.call(Script("ok"))
    assert budget.available == 2.0
    clock.advance(5.0)  # within ttl: still counted
    assert budget.available == 2.0
    clock.advance(6.0)  # 11 s after the calls: gone
    assert budget.available == 0.0
    fn = Script()
    with pytest.raises(Boom):
        retry.call(fn)  # the only call of the last ttl: 0.5 retries, so none
    assert fn.calls == 1


def test_a_refusing_budget_gives_up_with_the_original_exception(policy_impl):
    clock = FakeClock(START)
    budget = RetryBudget(ratio=0.0, min_per_second=0.0, ttl=10.0, clock=clock)
    retry = budgeted(budget, clock, attempts=5)
    error = Boom("only once")
    fn = Script(error, "never", clock=clock)
    with pytest.raises(Boom) as info:
        retry.call(fn)
    assert info.value is error
    assert type(info.value) is Boom
    assert fn.calls == 1
    assert_gave_up_note(error, 1)


def test_a_refusing_budget_on_results_raises_retry_error(policy_impl):
    clock = FakeClock(START)
    budget = RetryBudget(ratio=0.0, min_per_second=0.0, ttl=10.0, clock=clock)
    retry = budgeted(budget, clock, attempts=5, retry_if_result=lambda value: value is None)
    fn = Script(None, "never")
    with pytest.raises(RetryError) as info:
        retry.call(fn)
    assert info.value.attempts == 1
    assert fn.calls == 1


def test_a_refusing_budget_stops_the_attempt_loops(policy_impl):
    clock = FakeClock(START)
    budget = RetryBudget(ratio=0.0, min_per_second=0.0, ttl=10.0, clock=clock)
    retry = Retry(5, backoff=constant(0.0), budget=budget, sleep=clock.asleep, clock=clock)
    numbers: list[int] = []
    error = Boom("sync")
    with pytest.raises(Boom) as info:
        for attempt in retry:
            numbers.append(attempt.number)
            with attempt:
                raise error
    assert info.value is error
    assert numbers == [1]

    async def main() -> None:
        async for attempt in retry:
            numbers.append(attempt.number)
            with attempt:
                raise Boom("async")

    with pytest.raises(Boom, match="async"):
        asyncio.run(main())
    assert numbers == [1, 1]


def test_async_calls_draw_on_the_budget_too(policy_impl):
    clock = FakeClock(START)
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, ttl=10.0, clock=clock)  # 1 retry
    retry = Retry(5, backoff=constant(0.0), budget=budget, sleep=clock.asleep, clock=clock)
    fn = Script()
    with pytest.raises(Boom):
        asyncio.run(retry.acall(fn.coro))
    assert fn.calls == 2
    assert budget.available == 0.0


def test_budget_check_and_spend_are_one_step_across_threads(policy_impl):
    """Two threads asking for the last retry of a shared budget: only one gets it.

    Thread A is held inside any reading of the budget's clock after its
    second one (by then it has made its call and may be deciding on its
    retry); thread B then makes its whole call. Whatever the order of the
    steps inside the budget, the floor of one retry allows one retry in all.
    """
    a_reads = 0
    a_thread: list[threading.Thread] = []
    a_held = threading.Event()
    release_a = threading.Event()

    def gate() -> float:
        nonlocal a_reads
        if a_thread and threading.current_thread() is a_thread[0]:
            a_reads += 1
            if a_reads >= 3 and not release_a.is_set():
                a_held.set()
                release_a.wait(GUARD)
        return START

    budget = RetryBudget(ratio=0.0, min_per_second=0.1, ttl=10.0, clock=gate)  # a floor of 1
    clock = FakeClock(START)  # the policies' own clock: only the budget reads the gate
    retry_a = Retry(2, backoff=constant(0.0), budget=budget, sleep=clock.sleep, clock=clock)
    retry_b = Retry(2, backoff=constant(0.0), budget=budget, sleep=clock.sleep, clock=clock)
    fn_a, fn_b = Script(), Script()
    outcomes: list[BaseException] = []

    def run(retry: Retry, fn: Script) -> None:
        try:
            retry.call(fn)
        except BaseException as exc:
            outcomes.append(exc)
        finally:
            a_held.set()  # A done without being held: let B go

    thread_a = threading.Thread(target=run, args=(retry_a, fn_a))
    a_thread.append(thread_a)
    thread_a.start()
    assert a_held.wait(GUARD)
    thread_b = threading.Thread(target=run, args=(retry_b, fn_b))
    thread_b.start()
    # B finishes, or blocks behind A: a second is plenty for its whole call
    # when nothing holds it, and waiting GUARD when A does would be wasted.
    thread_b.join(1.0)
    release_a.set()
    thread_a.join(GUARD)
    thread_b.join(GUARD)
    assert not thread_a.is_alive() and not thread_b.is_alive()
    assert len(outcomes) == 2 and all(isinstance(e, Boom) for e in outcomes)
    assert retry_a.stats.retries + retry_b.stats.retries == 1
    assert fn_a.calls + fn_b.calls == 3


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"ratio": -0.1}, "ratio"),
        ({"ratio": math.nan}, "ratio"),
        ({"ratio": "0.2"}, "ratio"),
        ({"ratio": None}, "ratio"),
        ({"min_per_second": -1.0}, "min_per_second"),
        ({"min_per_second": math.nan}, "min_per_second"),
        ({"min_per_second": "10"}, "min_per_second"),
        ({"ttl": 0.0}, "ttl"),
        ({"ttl": -1.0}, "ttl"),
        ({"ttl": math.nan}, "ttl"),
        ({"ttl": math.inf}, "ttl"),
        ({"ttl": "10"}, "ttl"),
        ({"clock": 5}, "clock"),
    ],
    ids=lambda v: repr(v) if not isinstance(v, str) else v,
)
def test_budget_bad_arguments_are_refused(policy_impl, kwargs, argument):
    with pytest.raises((TypeError, ValueError)) as info:
        RetryBudget(**kwargs)
    assert argument in str(info.value)


# -- stats -----------------------------------------------------------------------------


def test_stats_after_a_scripted_sequence():
    # waits of 0: the sync and the async forms both run here without a real sleep
    retry, _ = make(
        3, backoff=constant(0.0), on=Boom, retry_if_result=lambda value: value is None, name="s"
    )
    assert retry.stats == RetryStats("s", 0, 0, 0, 0, 0)
    assert retry.call(Script("a")) == "a"  # 1 attempt, success
    assert retry.stats == RetryStats("s", 1, 1, 0, 1, 0)
    assert retry.call(Script(Boom(), Boom(), "b")) == "b"  # 3 attempts, success
    assert retry.stats == RetryStats("s", 2, 4, 2, 2, 0)
    with pytest.raises(Boom):
        retry.call(Script())  # 3 attempts, gives up
    assert retry.stats == RetryStats("s", 3, 7, 4, 2, 1)
    with pytest.raises(Other):
        retry.call(Script(Other()))  # 1 attempt, not retried
    assert retry.stats == RetryStats("s", 4, 8, 4, 2, 2)
    with pytest.raises(RetryError):
        retry.call(Script(None, None, None))  # 3 attempts, RetryError
    assert retry.stats == RetryStats("s", 5, 11, 6, 2, 3)
    assert asyncio.run(retry.acall(Script(None, "c").coro)) == "c"  # 2 attempts, success
    assert retry.stats == RetryStats("s", 6, 13, 7, 3, 3)
    for attempt in retry:  # 2 attempts, success
        with attempt:
            if attempt.number == 1:
                raise Boom()
    assert retry.stats == RetryStats("s", 7, 15, 8, 4, 3)
    assert retry.stats.name == "s"


def test_stats_of_decorated_calls():
    retry, _ = make(3, backoff=constant(0.5), on=Boom, name="d")

    @retry
    def through(script: Script) -> Any:
        return script()

    assert through(Script("a")) == "a"  # 1 attempt, success
    assert through(Script(Boom(), "b")) == "b"  # 2 attempts, success
    with pytest.raises(Boom):
        through(Script())  # 3 attempts, gives up
    with pytest.raises(Other):
        through(Script(Other()))  # 1 attempt, not retried
    assert retry.stats == RetryStats("d", 4, 7, 3, 2, 2)


def test_stats_of_the_loop_form_count_an_exception_not_retried_as_a_failure():
    # the call form counts a call that ends in an exception not worth a retry
    # as a failure; the loop form is the same call, counted alike
    by_call, _ = make(3, on=Boom, backoff=constant(1.0))
    with pytest.raises(Other):
        by_call.call(Script(Other()))
    by_loop, _ = make(3, on=Boom, backoff=constant(1.0))
    with pytest.raises(Other):
        for attempt in by_loop:
            with attempt:
                raise Other()
    assert by_call.stats == RetryStats(None, 1, 1, 0, 0, 1)
    assert by_loop.stats == RetryStats(None, 1, 1, 0, 0, 1)


def test_interrupts_are_not_counted_as_failures():
    # docs/architecture.md, "Errors": CancelledError, KeyboardInterrupt and SystemExit
    # are never counted as failures by any policy
    retry, _ = make(3, on=BaseException, backoff=constant(1.0))
    with pytest.raises(KeyboardInterrupt):
        retry.call(Script(KeyboardInterrupt()))
    with pytest.raises(SystemExit):
        retry.call(Script(SystemExit(3)))
    assert retry.stats.failures == 0
    assert retry.stats.calls == 2


def test_cancellation_is_not_counted_as_a_failure():
    clock = FakeClock(START)
    retry = Retry(3, on=BaseException, backoff=constant(1.0), sleep=clock.asleep, clock=clock)

    async def main() -> None:
        started = asyncio.Event()

        async def hang() -> None:
            started.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(retry.acall(hang))
        await asyncio.wait_for(started.wait(), GUARD)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert retry.stats.failures == 0
    assert retry.stats.calls == 1


# -- the attempt loops ----------------------------------------------------------------


def test_for_attempt_loop_retries_the_block_until_it_does_not_raise():
    retry, clock = make(5, backoff=constant(1.0))
    fn = Script(Boom(), Boom(), "ok", clock=clock)
    numbers: list[int] = []
    results: list[Any] = []
    for attempt in retry:
        numbers.append(attempt.number)
        with attempt:
            results.append(fn())
    assert numbers == [1, 2, 3]
    assert results == ["ok"]
    assert fn.times == [100.0, 101.0, 102.0]
    assert clock() == 102.0


def test_for_attempt_loop_runs_once_when_the_block_succeeds():
    retry, clock = make(5, backoff=constant(1.0))
    numbers: list[int] = []
    for attempt in retry:
        numbers.append(attempt.number)
        with attempt:
            pass
    assert numbers == [1]
    assert clock() == START


def test_for_attempt_loop_reraises_the_last_exception_when_out_of_attempts():
    retry, clock = make(3, backoff=constant(1.0))
    fn = Script(clock=clock)
    numbers: list[int] = []
    with pytest.raises(Boom) as info:
        for attempt in retry:
            numbers.append(attempt.number)
            with attempt:
                fn()
    assert numbers == [1, 2, 3]
    assert info.value is fn.raised[-1]
    assert type(info.value) is Boom
    assert clock() == 102.0
    assert_gave_up_note(info.value, 3)


def test_for_attempt_loop_lets_a_non_matching_exception_out_of_the_with_at_once():
    retry, clock = make(5, on=Boom, backoff=constant(1.0))
    error = Other("not retried")
    numbers: list[int] = []
    after_with: list[int] = []
    caught: list[BaseException] = []
    for attempt in retry:
        numbers.append(attempt.number)
        try:
            with attempt:
                raise error
            after_with.append(attempt.number)
        except Other as exc:
            caught.append(exc)
            break
    assert caught == [error]
    assert after_with == []
    assert numbers == [1]
    assert clock() == START

    retry, clock = make(5, on=Boom, backoff=constant(1.0))
    numbers = []
    with pytest.raises(Other) as info:
        for attempt in retry:
            numbers.append(attempt.number)
            with attempt:
                raise error
    assert info.value is error
    assert numbers == [1]


@pytest.mark.parametrize("error_type", [KeyboardInterrupt, SystemExit])
def test_for_attempt_loop_never_retries_interrupts(error_type):
    retry, _ = make(5, on=BaseException, backoff=constant(1.0))
    error = error_type()
    numbers: list[int] = []
    with pytest.raises(error_type) as info:
        for attempt in retry:
            numbers.append(attempt.number)
            with attempt:
                raise error
    assert info.value is error
    assert numbers == [1]


def test_for_attempt_loop_honours_the_deadline():
    retry, clock = make(10, backoff=constant(1.0), deadline=2.5)
    numbers: list[int] = []
    with pytest.raises(Boom):
        for attempt in retry:
            numbers.append(attempt.number)
            with attempt:
                raise Boom()
    assert numbers == [1, 2, 3]
    assert clock() == 102.0


def test_for_attempt_loop_reraises_a_stop_iteration_unchanged():
    # the last exception is re-raised unchanged, whatever it is
    retry, clock = make(2, backoff=constant(1.0))
    fn = Script(StopIteration("first"), StopIteration("second"), clock=clock)
    with pytest.raises(StopIteration) as info:
        for attempt in retry:
            with attempt:
                fn()
    assert info.value is fn.raised[-1]
    assert fn.calls == 2


def test_async_for_attempt_loop_retries_the_block():
    retry, clock = amake(5, backoff=constant(1.0))
    fn = Script(Boom(), Boom(), "ok", clock=clock)
    numbers: list[int] = []
    results: list[Any] = []

    async def main() -> None:
        async for attempt in retry:
            numbers.append(attempt.number)
            with attempt:
                results.append(await fn.coro())

    asyncio.run(main())
    assert numbers == [1, 2, 3]
    assert results == ["ok"]
    assert fn.times == [100.0, 101.0, 102.0]


def test_async_for_attempt_loop_reraises_the_last_exception_when_out_of_attempts():
    retry, clock = amake(3, backoff=constant(1.0))
    fn = Script(clock=clock)
    numbers: list[int] = []

    async def main() -> None:
        async for attempt in retry:
            numbers.append(attempt.number)
            with attempt:
                await fn.coro()

    with pytest.raises(Boom) as info:
        asyncio.run(main())
    assert numbers == [1, 2, 3]
    assert info.value is fn.raised[-1]
    assert clock() == 102.0
    assert_gave_up_note(info.value, 3)


def test_async_for_attempt_loop_lets_a_non_matching_exception_out_at_once():
    retry, clock = amake(5, on=Boom, backoff=constant(1.0))
    error = Other()
    numbers: list[int] = []

    async def main() -> None:
        async for attempt in retry:
            numbers.append(attempt.number)
            with attempt:
                raise error

    with pytest.raises(Other) as info:
        asyncio.run(main())
    assert info.value is error
    assert numbers == [1]
    assert clock() == START


def test_async_for_attempt_loop_reraises_a_stop_async_iteration_unchanged():
    retry, clock = amake(2, backoff=constant(1.0))
    fn = Script(StopAsyncIteration("first"), StopAsyncIteration("second"), clock=clock)

    async def main() -> None:
        async for attempt in retry:
            with attempt:
                fn()

    with pytest.raises(StopAsyncIteration) as info:
        asyncio.run(main())
    assert info.value is fn.raised[-1]
    assert fn.calls == 2


# -- the call forms ---------------------------------------------------------------------


def test_decorator_on_def_keeps_the_metadata_and_retries():
    retry, clock = make(3, backoff=constant(1.0))
    fn = Script(Boom(), "ok", clock=clock)

    def fetch(key: str, *, page: int = 0) -> Any:
        """Fetch one page."""
        return fn(key, page=page)

    wrapped = retry(fetch)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__qualname__ == fetch.__qualname__
    assert wrapped.__doc__ == "Fetch one page."
    assert wrapped.__module__ == fetch.__module__
    assert wrapped.__wrapped__ is fetch
    assert not inspect.iscoroutinefunction(wrapped)
    assert wrapped("k", page=2) == "ok"
    assert fn.args == [(("k",), {"page": 2})] * 2
    assert clock() == 101.0


def test_decorator_on_async_def_stays_a_coroutine_function_and_retries():
    retry, clock = amake(3, backoff=constant(1.0))
    fn = Script(Boom(), Boom(), "ok", clock=clock)

    async def fetch(key: str) -> Any:
        """Fetch it."""
        return await fn.coro(key)

    wrapped = retry(fetch)
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__doc__ == "Fetch it."
    assert wrapped.__wrapped__ is fetch
    assert asyncio.run(wrapped("k")) == "ok"
    assert fn.calls == 3
    assert clock() == 102.0


def test_decorator_syntax_retries_the_function():
    retry, _ = make(2, backoff=constant(1.0))
    fn = Script(Boom(), 42)

    @retry
    def answer() -> int:
        return fn()

    assert answer() == 42
    assert answer.__name__ == "answer"
    assert fn.calls == 2


def test_decorator_on_methods():
    clock = FakeClock(START)
    retry = Retry(3, backoff=constant(1.0), sleep=clock.sleep, clock=clock)
    aretry = Retry(3, backoff=constant(1.0), sleep=clock.asleep, clock=clock)

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @retry
        def get(self, key: str) -> tuple[Client, str]:
            self.calls += 1
            if self.calls < 3:
                raise Boom()
            return self, key

        @aretry
        async def aget(self, key: str) -> tuple[Client, str]:
            self.calls += 1
            if self.calls < 2:
                raise Boom()
            return self, key

    one, two = Client(), Client()
    assert one.get("a") == (one, "a")
    assert one.calls == 3
    assert asyncio.run(two.aget("b")) == (two, "b")
    assert two.calls == 2
    assert clock() == START + 2.0 + 1.0
    assert inspect.iscoroutinefunction(Client.aget)


def test_call_passes_positional_and_keyword_arguments_even_fn_and_self():
    retry, _ = make(3, backoff=constant(1.0))
    fn = Script(Boom(), "ok")
    assert retry.call(fn, 1, 2, fn="f", self="s", key=3) == "ok"
    assert fn.args == [((1, 2), {"fn": "f", "self": "s", "key": 3})] * 2


def test_acall_passes_positional_and_keyword_arguments_even_fn_and_self():
    retry, _ = amake(3, backoff=constant(1.0))
    fn = Script(Boom(), "ok")
    assert asyncio.run(retry.acall(fn.coro, 1, fn="f", self="s")) == "ok"
    assert fn.args == [((1,), {"fn": "f", "self": "s"})] * 2


def test_decorated_function_takes_keywords_named_fn_and_self():
    retry, _ = make(3, backoff=constant(1.0))
    fn = Script(Boom(), "ok")

    script = fn

    @retry
    def target(fn: Any, self: Any) -> Any:
        return script(fn=fn, self=self)

    assert target(fn=1, self=2) == "ok"
    assert script.args == [((), {"fn": 1, "self": 2})] * 2


def test_name_is_kept():
    assert Retry(name="payments").name == "payments"
    assert Retry().name is None
    assert Retry(name="payments").stats.name == "payments"


# -- bad input --------------------------------------------------------------------------


BAD_RETRY = [
    ({"attempts": 0}, "attempts"),
    ({"attempts": -1}, "attempts"),
    ({"attempts": 1.5}, "attempts"),
    ({"attempts": "3"}, "attempts"),
    ({"attempts": True}, "attempts"),
    ({"deadline": 0}, "deadline"),
    ({"deadline": 0.0}, "deadline"),
    ({"deadline": -1.0}, "deadline"),
    ({"deadline": math.nan}, "deadline"),
    ({"deadline": "5"}, "deadline"),
    ({"backoff": 5}, "backoff"),
    ({"backoff": "exponential"}, "backoff"),
    ({"on": 5}, "on"),
    ({"on": int}, "on"),
    ({"on": dict}, "on"),
    ({"on": "ValueError"}, "on"),
    ({"on": (ValueError, int)}, "on"),
    ({"on": (ValueError, "KeyError")}, "on"),
    ({"retry_if_result": 5}, "retry_if_result"),
    ({"on_retry": 5}, "on_retry"),
    ({"on_retry": "log"}, "on_retry"),
    ({"sleep": 5}, "sleep"),
    ({"budget": "budget"}, "budget"),
    ({"budget": 0.2}, "budget"),
    ({"budget": RetryBudget}, "budget"),
    ({"name": 5}, "name"),
    ({"name": b"name"}, "name"),
    ({"clock": 5}, "clock"),
]


@pytest.mark.parametrize(("kwargs", "argument"), BAD_RETRY, ids=[repr(k) for k, _ in BAD_RETRY])
def test_bad_arguments_are_refused_naming_the_argument(kwargs, argument):
    with pytest.raises((TypeError, ValueError)) as info:
        Retry(**kwargs)
    message = str(info.value)
    assert argument in message
    assert repr(next(iter(kwargs.values()))) in message


def test_on_retry_method_refuses_a_non_callable():
    with pytest.raises(TypeError):
        Retry().on_retry(5)  # type: ignore[arg-type]


def test_decorating_a_non_callable_is_refused():
    with pytest.raises(TypeError):
        Retry()(5)  # type: ignore[call-overload]


# -- threads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["call", "decorator"])
def test_one_retry_used_from_eight_threads_counts_exactly(form):
    retry = Retry(3, backoff=constant(0.0), on=Boom, sleep=lambda s: None, clock=FakeClock())

    @retry
    def decorated(script: Script) -> Any:
        return script()

    def through(script: Script) -> Any:
        return retry.call(script) if form == "call" else decorated(script)

    threads, per_thread = 8, 200
    barrier = threading.Barrier(threads)
    problems: list[str] = []

    def work() -> None:
        barrier.wait(GUARD)
        for j in range(per_thread):
            kind = j % 4
            try:
                if kind == 0:
                    result = through(Script("ok"))  # 1 attempt, success
                elif kind == 1:
                    result = through(Script(Boom(), "ok"))  # 2 attempts, success
                elif kind == 2:
                    result = through(Script())  # 3 attempts, gives up
                else:
                    result = through(Script(Other()))  # 1 attempt, not retried
            except Boom:
                if kind != 2:
                    problems.append(f"Boom on kind {kind}")
            except Other:
                if kind != 3:
                    problems.append(f"Other on kind {kind}")
            else:
                if kind > 1 or result != "ok":
                    problems.append(f"{result!r} on kind {kind}")

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(GUARD)
    assert not any(thread.is_alive() for thread in pool)
    assert problems == []
    # per thread: 50 calls of each kind -> attempts 50*(1+2+3+1), retries 50*(0+1+2+0)
    assert retry.stats == RetryStats(None, 1600, 2800, 1200, 800, 800)


@pytest.mark.parametrize("form", SYNC_FORMS)
def test_the_error_given_up_on_is_not_chained_to_the_machinery(form):
    """The last error reaches the caller as the function raised it: no
    ``During handling of the above exception`` from the retry's own steps."""
    retry, _ = make(2)
    script = Script()
    with pytest.raises(Boom) as raised:
        run(retry, form, script)
    assert raised.value is script.raised[-1]
    assert raised.value.__context__ is None and raised.value.__cause__ is None


@pytest.mark.parametrize("form", ASYNC_FORMS)
def test_the_error_given_up_on_is_not_chained_to_the_machinery_async(form):
    retry, _ = amake(2)
    script = Script()
    with pytest.raises(Boom) as raised:
        asyncio.run(arun(retry, form, script.coro))
    assert raised.value is script.raised[-1]
    assert raised.value.__context__ is None and raised.value.__cause__ is None


# -- an exception shared by many callers -----------------------------------------------


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes exist from 3.11")
@pytest.mark.parametrize("form", SYNC_FORMS)
def test_an_exception_given_up_on_many_times_carries_one_note(form):
    # One failed future awaited by many tasks, a module-level error: every
    # caller gives up on the same exception, which must not collect a note each.
    shared = Boom("shared")

    def fail() -> None:
        raise shared

    retry, _ = make(3, backoff=constant(1.0))
    for _ in range(100):
        with pytest.raises(Boom):
            run(retry, form, fail)
    once, _ = make(1)
    with pytest.raises(Boom):
        run(once, form, fail)
    notes = [note for note in shared.__notes__ if note.startswith("resilience:")]
    assert notes == ["resilience: gave up after 3 attempt(s)"]  # the first give-up's


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes exist from 3.11")
@pytest.mark.parametrize("form", ASYNC_FORMS)
def test_an_exception_given_up_on_by_many_tasks_carries_one_note(form):
    shared = Boom("shared")
    retry, _ = amake(2, backoff=constant(1.0))

    async def fail() -> None:
        raise shared

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(arun(retry, form, fail) for _ in range(50)), return_exceptions=True
        )

    assert all(outcome is shared for outcome in asyncio.run(main()))
    assert shared.__notes__ == ["resilience: gave up after 2 attempt(s)"]


def test_notes_of_its_own_are_kept_beside_the_one_note():
    shared = Boom("shared")
    if sys.version_info >= (3, 11):
        shared.add_note("from the caller")
    retry, _ = make(2)
    for _ in range(3):
        with pytest.raises(Boom):
            retry.call(Script(shared, shared))
    assert_gave_up_note(shared, 2)
    if sys.version_info >= (3, 11):
        assert shared.__notes__ == ["from the caller", "resilience: gave up after 2 attempt(s)"]


# -- waits longer than one sleep of the platform ---------------------------------------


@pytest.mark.parametrize("form", SYNC_FORMS)
def test_a_wait_longer_than_the_platform_sleeps_really_sleeps(form):
    # time.sleep(1e10) raises OverflowError and time.sleep(TIMEOUT_MAX)
    # OSError: the backoff must sleep (here woken by a signal, the call's
    # own interrupt), never fail with the platform's error.
    retry = Retry(2, backoff=constant(1e10))
    script = Script()
    with pytest.raises(Woken), woken_from_the_sleep_hook():
        run(retry, form, script)
    assert script.calls == 1
    # The backoff was abandoned: one attempt made, the call failed.
    assert retry.stats == RetryStats(None, 1, 1, 0, 0, 1)


@pytest.mark.parametrize("form", ASYNC_FORMS)
def test_an_async_wait_longer_than_the_platform_sleeps_really_sleeps(form):
    retry = Retry(2, backoff=constant(1e10))
    script = Script()

    async def main() -> None:
        task = asyncio.create_task(arun(retry, form, script.coro))
        while script.calls == 0:
            await asyncio.sleep(0)
        await asleep_then_cancelled(task)

    asyncio.run(main())
    assert script.calls == 1
    assert retry.stats == RetryStats(None, 1, 1, 0, 0, 1)


# -- a call abandoned during its backoff -------------------------------------------------


def interrupted_sleep(seconds: float) -> None:
    """A sync ``sleep=`` whose wait is interrupted (Ctrl-C during the backoff)."""
    raise KeyboardInterrupt


async def endless_sleep(seconds: float) -> None:
    """An async ``sleep=`` that never ends: the task is cancelled in it."""
    await asyncio.Event().wait()


@pytest.mark.parametrize("form", [*SYNC_FORMS, "pipeline call", "pipeline decorator"])
def test_an_interrupted_backoff_counts_no_attempt_and_one_failure(form):
    retry = Retry(3, backoff=constant(1.0), sleep=interrupted_sleep, clock=FakeClock())
    script = Script()
    with pytest.raises(KeyboardInterrupt):
        if form.startswith("pipeline"):
            run(resilience.Pipeline(retry), form.removeprefix("pipeline "), script)
        else:
            run(retry, form, script)
    assert script.calls == 1
    # The call is a failure: it neither succeeded nor may vanish from the counts.
    assert retry.stats == RetryStats(None, 1, 1, 0, 0, 1)


@pytest.mark.parametrize("form", [*ASYNC_FORMS, "pipeline acall", "pipeline decorator"])
def test_a_task_cancelled_in_its_backoff_counts_no_attempt_and_one_failure(form):
    retry = Retry(3, backoff=constant(1.0), sleep=endless_sleep, clock=FakeClock())
    script = Script()

    async def main() -> None:
        if form.startswith("pipeline"):
            through = arun(resilience.Pipeline(retry), form.removeprefix("pipeline "), script.coro)
        else:
            through = arun(retry, form, script.coro)
        task = asyncio.create_task(through)
        while script.calls == 0:
            await asyncio.sleep(0)
        for _ in range(3):  # into the backoff's sleep
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert script.calls == 1
    assert retry.stats == RetryStats(None, 1, 1, 0, 0, 1)
