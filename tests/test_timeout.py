"""Timeout, deadline() and remaining(): the contract of their docstrings.

The design behind it (timeouts and deadlines, errors, the forms of the
public API) is in docs/architecture.md; the tests use the public API only.
Deadlines are read on a FakeClock where the count matters; Timeout runs on
the real clock with limits of a few hundredths of a second, and the tests
only ask whether a call timed out or not, never how long it took. Every test
runs on both twins of the core (``policy_impl`` for the whole module): a
Timeout keeps its counts in the core's ``Counters``.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import math
import threading
from typing import Any

import pytest

import resilience
from resilience import ResilienceError, Timeout, TimeoutExceeded, deadline, remaining
from resilience.testing import FakeClock

# Every test runs once on each twin of the core (``policy_impl``): the
# policies built here take their core classes from the twin it selects.
pytestmark = pytest.mark.usefixtures("policy_impl")

SHORT = 0.05  # a limit that slow work always passes
LONG = 5.0  # a limit that fast work never reaches
GUARD = 5.0  # seconds: a hang guard for waits on events, never an assertion on time


class Boom(Exception):
    """The failure the protected functions raise."""


def test_runs_on_the_twin_under_test(policy_impl):
    assert type(Timeout(1.0)._counts) is policy_impl.Counters


def test_names_are_importable_from_the_package():
    assert resilience.Timeout is Timeout
    assert resilience.deadline is deadline
    assert resilience.remaining is remaining
    assert resilience.TimeoutExceeded is TimeoutExceeded


def test_timeout_exceeded_is_a_timeout_error_and_a_resilience_error():
    assert issubclass(TimeoutExceeded, TimeoutError)
    assert issubclass(TimeoutExceeded, ResilienceError)


# -- deadline() and remaining() ------------------------------------------------------


def test_remaining_is_inf_without_a_deadline():
    assert remaining() == math.inf


def test_remaining_counts_down_with_the_clock_and_never_below_zero():
    clock = FakeClock(100.0)
    with deadline(5.0, clock=clock):
        assert remaining() == 5.0
        clock.advance(2.0)
        assert remaining() == 3.0
        clock.advance(2.5)
        assert remaining() == 0.5
        clock.advance(10.0)
        assert remaining() == 0.0
    assert remaining() == math.inf


def test_deadline_zero_leaves_no_time():
    with deadline(0, clock=FakeClock()):
        assert remaining() == 0.0


def test_nested_deadlines_keep_the_earliest_and_restore_on_exit():
    clock = FakeClock()
    with deadline(5.0, clock=clock):
        clock.advance(1.0)  # 4 s left
        with deadline(10.0, clock=clock):  # later than the outer: the outer wins
            assert remaining() == 4.0
            clock.advance(1.0)
            assert remaining() == 3.0
        assert remaining() == 3.0
        with deadline(1.0, clock=clock):  # sooner: the inner wins
            assert remaining() == 1.0
            clock.advance(0.5)
            assert remaining() == 0.5
            with deadline(2.0, clock=clock):  # within the inner one: it still wins
                assert remaining() == 0.5
            assert remaining() == 0.5
        assert remaining() == 2.5  # back to the outer one
    assert remaining() == math.inf


def test_a_deadline_is_restored_after_an_exception():
    clock = FakeClock()
    with deadline(5.0, clock=clock):
        with pytest.raises(Boom), deadline(1.0, clock=clock):
            assert remaining() == 1.0
            raise Boom
        assert remaining() == 5.0
    with pytest.raises(Boom), deadline(1.0, clock=clock):
        raise Boom
    assert remaining() == math.inf


def test_deadline_inf_sets_no_limit():
    clock = FakeClock()
    with deadline(math.inf, clock=clock):
        assert remaining() == math.inf
        with deadline(2.0, clock=clock):
            assert remaining() == 2.0
        assert remaining() == math.inf
    with deadline(3.0, clock=clock), deadline(math.inf, clock=clock):
        assert remaining() == 3.0


def test_deadline_on_the_real_clock():
    with deadline(LONG):
        left = remaining()
        assert 0.0 < left <= LONG
    with deadline(0.0):
        assert remaining() == 0.0


def test_deadline_as_async_with():
    clock = FakeClock()

    async def main() -> list[float]:
        seen = []
        async with deadline(3.0, clock=clock):
            seen.append(remaining())
            await clock.asleep(1.0)
            seen.append(remaining())
            async with deadline(1.0, clock=clock):
                seen.append(remaining())
            seen.append(remaining())
        seen.append(remaining())
        return seen

    assert asyncio.run(main()) == [3.0, 2.0, 1.0, 2.0, math.inf]


def test_separate_tasks_do_not_see_each_others_deadlines():
    clock = FakeClock()

    async def main() -> tuple[float, float, float]:
        entered = asyncio.Event()
        leave = asyncio.Event()

        async def holder() -> float:
            async with deadline(1.0, clock=clock):
                entered.set()
                await leave.wait()
                return remaining()

        async def other() -> float:
            await entered.wait()
            return remaining()

        held = asyncio.create_task(holder())
        seen_by_other = await asyncio.create_task(other())
        seen_by_main = remaining()
        leave.set()
        return seen_by_other, seen_by_main, await held

    other, main_task, holder = asyncio.run(main())
    assert other == math.inf
    assert main_task == math.inf
    assert holder == 1.0


def test_a_task_created_inside_a_deadline_inherits_it():
    clock = FakeClock()

    async def child() -> float:
        await asyncio.sleep(0)
        return remaining()

    async def main() -> tuple[float, float]:
        async with deadline(2.0, clock=clock):
            task = asyncio.create_task(child())
        clock.advance(0.5)
        # the child keeps the deadline even though the parent has left it
        return await task, remaining()

    inherited, outside = asyncio.run(main())
    assert inherited == 1.5
    assert outside == math.inf


def test_threads_do_not_see_each_others_deadlines():
    clock = FakeClock()
    entered = threading.Event()
    leave = threading.Event()
    seen: dict[str, float] = {}

    def holder() -> None:
        with deadline(1.0, clock=clock):
            seen["holder"] = remaining()
            entered.set()
            leave.wait(GUARD)

    thread = threading.Thread(target=holder)
    thread.start()
    assert entered.wait(GUARD)
    seen["main"] = remaining()
    leave.set()
    thread.join(GUARD)
    assert seen == {"holder": 1.0, "main": math.inf}

    # and the other way round: a thread started inside a deadline has none
    def reader() -> None:
        seen["thread"] = remaining()

    with deadline(1.0, clock=clock):
        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(GUARD)
    assert seen["thread"] == math.inf


def test_one_deadline_object_shared_by_overlapping_tasks():
    # Each task that enters the same deadline object gets its own deadline
    # (it belongs to the task that entered it), and leaving it in one task
    # leaves the other's alone, whatever order they leave in.
    clock = FakeClock()
    shared = deadline(2.0, clock=clock)

    async def main() -> list[Any]:
        first_in, second_in = asyncio.Event(), asyncio.Event()
        first_go, second_go = asyncio.Event(), asyncio.Event()

        async def user(entered: asyncio.Event, go: asyncio.Event) -> tuple[float, float]:
            async with shared:
                entered.set()
                await go.wait()
                inside = remaining()
            return inside, remaining()

        first = asyncio.create_task(user(first_in, first_go))
        await first_in.wait()
        clock.advance(1.0)
        second = asyncio.create_task(user(second_in, second_go))
        await second_in.wait()
        first_go.set()  # the first one to enter leaves first
        await asyncio.sleep(0)
        second_go.set()
        return await asyncio.gather(first, second, return_exceptions=True)

    first, second = asyncio.run(main())
    assert first == (1.0, math.inf)  # entered at t=0, read at t=1
    assert second == (2.0, math.inf)  # entered at t=1, read at t=1


BAD_SECONDS = [(-1, ValueError), (-0.5, ValueError), (math.nan, ValueError), ("1", TypeError)]


@pytest.mark.parametrize(("seconds", "error"), BAD_SECONDS, ids=[repr(s) for s, _ in BAD_SECONDS])
def test_deadline_bad_seconds_raise_naming_the_argument(seconds, error):
    with pytest.raises(error, match="seconds"):
        deadline(seconds)
    assert remaining() == math.inf


def test_deadline_bad_clock_raises():
    with pytest.raises(TypeError, match="clock"):
        deadline(1.0, clock="now")  # type: ignore[arg-type]


# -- Timeout: async ---------------------------------------------------------------------


def never_ending(seen: list[str]):
    """A coroutine function that waits forever, recording its cancellation."""

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("finished")  # pragma: no cover - never reached

    return forever


def test_async_call_is_cancelled_at_the_limit():
    seen: list[str] = []

    async def main() -> None:
        with pytest.raises(TimeoutExceeded) as info:
            await Timeout(SHORT).acall(never_ending(seen))
        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value, ResilienceError)

    asyncio.run(main())
    assert seen == ["cancelled"]


def test_async_fast_call_returns_its_value():
    async def quick(a: int, *, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    assert asyncio.run(Timeout(LONG).acall(quick, 2, b=3)) == 5


def test_async_call_reraises_the_functions_own_exception():
    error = Boom("own")

    async def failing() -> None:
        await asyncio.sleep(0)
        raise error

    with pytest.raises(Boom) as info:
        asyncio.run(Timeout(LONG).acall(failing))
    assert info.value is error


def test_async_with_timeout():
    seen: list[str] = []

    async def main() -> list[str]:
        with pytest.raises(TimeoutExceeded):
            async with Timeout(SHORT):
                await never_ending(seen)()
        # the task is usable again after the timeout
        await asyncio.sleep(0.001)
        async with Timeout(LONG):
            await asyncio.sleep(0)
            seen.append("fast block done")
        seen.append("after")
        return seen

    assert asyncio.run(main()) == ["cancelled", "fast block done", "after"]


def test_outer_cancellation_stays_a_cancelled_error():
    seen: list[str] = []

    async def main() -> None:
        async def guarded() -> None:
            async with Timeout(LONG):
                await never_ending(seen)()

        task = asyncio.create_task(guarded())
        for _ in range(3):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    asyncio.run(main())
    assert seen == ["cancelled"]


def test_nested_timeouts_the_nearer_one_fires():
    async def main() -> None:
        # inner nearer: the inner one raises, the outer block goes on
        async with Timeout(LONG, name="outer"):
            with pytest.raises(TimeoutExceeded, match="inner"):
                async with Timeout(SHORT, name="inner"):
                    await asyncio.Event().wait()
        # outer nearer: the outer one raises
        with pytest.raises(TimeoutExceeded, match="outer"):
            async with Timeout(SHORT, name="outer"), Timeout(LONG, name="inner"):
                await asyncio.Event().wait()

    asyncio.run(main())


def test_async_timeout_stops_at_a_nearer_deadline():
    seen: list[str] = []

    async def main() -> None:
        # Without the deadline, Timeout(30) would not fire before the
        # guard's plain asyncio TimeoutError, which is not a TimeoutExceeded.
        async with deadline(SHORT):
            with pytest.raises(TimeoutExceeded):
                await asyncio.wait_for(Timeout(30).acall(never_ending(seen)), GUARD)

    asyncio.run(main())
    assert seen == ["cancelled"]


def test_one_timeout_shared_by_concurrent_tasks():
    timeout = Timeout(0.1)

    async def quick() -> str:
        await asyncio.sleep(0)
        return "quick"

    async def main() -> list[Any]:
        return await asyncio.gather(
            timeout.acall(never_ending([])),
            timeout.acall(quick),
            timeout.acall(never_ending([])),
            return_exceptions=True,
        )

    slow1, fast, slow2 = asyncio.run(main())
    assert isinstance(slow1, TimeoutExceeded)
    assert fast == "quick"
    assert isinstance(slow2, TimeoutExceeded)


def test_decorator_on_async_def():
    timeout = Timeout(SHORT, name="loader")

    async def load(x: int) -> int:
        """Load x."""
        await asyncio.sleep(0)
        return x * 2

    async def hang() -> None:
        await asyncio.Event().wait()

    wrapped = timeout(load)
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "load"
    assert wrapped.__doc__ == "Load x."
    assert wrapped.__wrapped__ is load
    assert asyncio.run(wrapped(21)) == 42
    with pytest.raises(TimeoutExceeded, match="loader"):
        asyncio.run(timeout(hang)())


def test_timeout_has_no_sync_with_form():
    # "Timeout | `async with` only": a plain `with` is not supported.
    with pytest.raises((TypeError, AttributeError)), Timeout(LONG):  # type: ignore[attr-defined]
        pass


# -- Timeout: sync ---------------------------------------------------------------------


def test_sync_call_times_out_and_the_function_runs_on_in_the_background():
    release = threading.Event()
    finished = threading.Event()

    def slow() -> str:
        release.wait(GUARD)
        finished.set()
        return "late"

    with pytest.raises(TimeoutExceeded) as info:
        Timeout(SHORT, name="fetch").call(slow)
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, ResilienceError)
    assert "fetch" in str(info.value)
    assert not finished.is_set()  # the caller did not wait for it
    release.set()
    assert finished.wait(GUARD)  # it was not killed: it finishes later


def test_sync_call_returns_the_value_from_a_worker_thread():
    threads = []

    def work(a: int, *, b: int) -> int:
        threads.append(threading.get_ident())
        return a * b

    assert Timeout(LONG).call(work, 6, b=7) == 42
    assert threads and threads[0] != threading.get_ident()


def test_sync_call_reraises_the_functions_own_exception_unchanged():
    error = Boom("own")

    def failing() -> None:
        raise error

    with pytest.raises(Boom) as info:
        Timeout(LONG).call(failing)
    assert info.value is error


def test_sync_call_sees_the_callers_context_variables():
    var: contextvars.ContextVar[str] = contextvars.ContextVar("test_timeout_var")
    token = var.set("from the caller")
    try:
        assert Timeout(LONG).call(var.get) == "from the caller"
    finally:
        var.reset(token)


def test_sync_call_stops_at_a_nearer_deadline():
    release = threading.Event()

    def slow() -> str:
        release.wait(GUARD)
        return "late"

    try:
        # Without the deadline, Timeout(30) would wait until the function
        # returned "late" (after GUARD) instead of raising.
        with deadline(SHORT), pytest.raises(TimeoutExceeded):
            Timeout(30).call(slow)
    finally:
        release.set()


def test_decorator_on_def():
    release = threading.Event()
    timeout = Timeout(SHORT, name="worker")

    def double(x: int) -> int:
        """Double x."""
        return x * 2

    def slow() -> None:
        release.wait(GUARD)

    wrapped = timeout(double)
    assert wrapped.__name__ == "double"
    assert wrapped.__doc__ == "Double x."
    assert wrapped.__wrapped__ is double
    assert not inspect.iscoroutinefunction(wrapped)
    assert wrapped(21) == 42
    try:
        with pytest.raises(TimeoutExceeded, match="worker"):
            timeout(slow)()
    finally:
        release.set()


def test_decorator_on_methods():
    timeout = Timeout(LONG)

    class Service:
        def __init__(self, label: str) -> None:
            self.label = label

        @timeout
        def get(self, x: int) -> str:
            return f"{self.label}:{x}"

        @timeout
        async def aget(self, x: int) -> str:
            return f"{self.label}:a{x}"

    service = Service("s")
    assert service.get(1) == "s:1"
    assert asyncio.run(service.aget(2)) == "s:a2"


# -- Timeout: bad settings ---------------------------------------------------------------

BAD_TIMEOUTS = [
    (-1, ValueError),
    (math.nan, ValueError),
    ("1", TypeError),
]


@pytest.mark.parametrize(("seconds", "error"), BAD_TIMEOUTS, ids=[repr(s) for s, _ in BAD_TIMEOUTS])
def test_timeout_bad_seconds_raise_naming_the_argument(seconds, error):
    with pytest.raises(error, match="seconds"):
        Timeout(seconds)


def test_timeout_bad_name_raises():
    with pytest.raises(TypeError, match="name"):
        Timeout(1.0, name=5)  # type: ignore[arg-type]


def test_the_name_appears_in_the_async_error_message():
    async def main() -> None:
        with pytest.raises(TimeoutExceeded, match="payments"):
            async with Timeout(SHORT, name="payments"):
                await asyncio.Event().wait()

    asyncio.run(main())


def test_timeout_inf_sets_no_limit_of_its_own():
    assert Timeout(math.inf).call(lambda: 7) == 7

    async def main():
        async def quick():
            await asyncio.sleep(0)
            return 8

        return await Timeout(math.inf).acall(quick)

    assert asyncio.run(main()) == 8


def test_timeout_zero_leaves_no_time():
    called = []
    with pytest.raises(TimeoutExceeded):
        Timeout(0).call(called.append, 1)
    assert called == []  # a sync call is not even started

    async def main():
        async def suspends():
            await asyncio.sleep(1)

        await Timeout(0).acall(suspends)

    with pytest.raises(TimeoutExceeded):
        asyncio.run(main())


def test_timeout_stats_count_calls_and_timeouts():
    from resilience import TimeoutStats

    timeout = Timeout(0.05, name="t")
    assert timeout.call(lambda: 1) == 1
    with pytest.raises(TimeoutExceeded):
        timeout.call(threading.Event().wait, 1.0)
    with pytest.raises(TimeoutExceeded):
        Timeout(0, name="z").call(lambda: 1)

    async def main() -> None:
        async def quick() -> int:
            return 2

        async def slow() -> None:
            await asyncio.sleep(1.0)

        assert await timeout.acall(quick) == 2
        with pytest.raises(TimeoutExceeded):
            await timeout.acall(slow)
        task = asyncio.ensure_future(timeout.acall(slow))
        await asyncio.sleep(0)
        task.cancel()  # cancelled from outside: a call, not a timeout
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert timeout.stats == TimeoutStats("t", calls=5, timeouts=2)
