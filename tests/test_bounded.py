"""The bounded-run helpers shared by Timeout and the health checks.

``Worker``: a sync callable on a daemon thread, waited for at most a limit,
whose end stays observable after a wait gave up. ``Scope``: async work
cancelled at a limit, its own cancel told apart from anyone else's.

Every wait here is bounded by ``GUARD`` so a broken helper fails a test
instead of hanging it; ``GUARD`` is never an assertion on speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from resilience._bounded import Outcome, Scope, Worker, wait_time

GUARD = 5.0  # seconds: deadlock guard for every wait
TINY = 0.05  # seconds: the limits the timing tests use

T = TypeVar("T")

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


class Boom(Exception):
    """What failing work raises."""


def run_async(main: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(main, GUARD))


# -- wait_time ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (1.5, 1.5),
        (0.0, 0.0),
        (-1.0, 0.0),
        (threading.TIMEOUT_MAX, threading.TIMEOUT_MAX),
        (threading.TIMEOUT_MAX * 2, None),
        (math.inf, None),
    ],
)
def test_wait_time_means_no_end_past_timeout_max(seconds: float, expected: float | None) -> None:
    assert wait_time(seconds) == expected


# -- Worker ------------------------------------------------------------------------


def test_worker_returns_the_result() -> None:
    worker = Worker(lambda: 42, name="t-result")
    assert worker.wait(GUARD)
    assert worker.result() == 42


def test_worker_reraises_the_exception_it_raised() -> None:
    error = Boom("down")

    def fail() -> None:
        raise error

    worker = Worker(fail, name="t-raise")
    assert worker.wait(GUARD)
    with pytest.raises(Boom) as raised:
        worker.result()
    assert raised.value is error


def test_worker_runs_on_a_named_daemon_thread() -> None:
    seen: list[threading.Thread] = []
    worker = Worker(lambda: seen.append(threading.current_thread()), name="t-named")
    assert worker.wait(GUARD)
    assert seen[0] is not threading.current_thread()
    assert seen[0].name == "t-named"
    assert seen[0].daemon


def test_a_wait_without_end_does_not_overflow() -> None:
    worker = Worker(lambda: "ok", name="t-inf")
    assert worker.wait(math.inf)
    assert worker.result() == "ok"


def test_a_timed_out_wait_returns_at_the_limit_and_the_thread_runs_on() -> None:
    gate = threading.Event()
    ended: list[Outcome] = []
    worker = Worker(lambda: gate.wait(GUARD) and "late", name="t-hang", on_end=ended.append)
    started = time.monotonic()
    assert not worker.wait(TINY)
    # Not before the limit: a lower bound, which load can only help. A wait
    # that missed the limit would last until the gate's GUARD and return True.
    assert time.monotonic() - started >= TINY * 0.9
    assert ended == []  # still running
    with pytest.raises(RuntimeError):
        worker.result()
    gate.set()
    assert worker.wait(GUARD)  # its end is still observable, by waiting ...
    assert ended == [(True, "late")]  # ... and by on_end
    assert worker.result() == "late"


def test_on_end_gets_the_outcome_and_runs_before_the_wait_sees_the_end() -> None:
    error = Boom()
    seen: list[Outcome] = []

    def on_end(outcome: Outcome) -> None:
        time.sleep(TINY)  # a wait that has seen the end must find this done
        seen.append(outcome)

    def fail() -> None:
        raise error

    ok = Worker(lambda: 7, name="t-end-ok", on_end=on_end)
    assert ok.wait(GUARD)
    assert seen == [(True, 7)]
    failed = Worker(fail, name="t-end-fail", on_end=on_end)
    assert failed.wait(GUARD)
    assert seen[1] == (False, error)


def test_the_worker_sees_the_callers_context_variables_and_keeps_its_own() -> None:
    def work() -> str:
        seen = request_id.get()
        request_id.set("changed by the worker")
        return seen

    token = request_id.set("abc")
    try:
        worker = Worker(work, name="t-context")
        assert worker.wait(GUARD)
        assert worker.result() == "abc"
        assert request_id.get() == "abc"
    finally:
        request_id.reset(token)


# -- Scope -------------------------------------------------------------------------


def test_the_scope_cancels_at_the_limit_and_knows_it() -> None:
    async def main() -> tuple[bool, float]:
        scope = Scope(TINY)
        started = time.monotonic()
        scope.enter()
        try:
            await asyncio.sleep(GUARD)
        except asyncio.CancelledError as exc:
            return scope.expired(exc), time.monotonic() - started
        return False, time.monotonic() - started

    expired, waited = run_async(main())
    assert expired  # a scope that never fired would let the GUARD sleep end
    assert waited >= TINY * 0.9  # not before the limit: load can only lengthen it


def test_work_that_ends_in_time_is_not_cancelled_later() -> None:
    async def main() -> bool:
        scope = Scope(TINY)
        scope.enter()
        await asyncio.sleep(0)
        expired = scope.expired(None)
        await asyncio.sleep(TINY * 3)  # past the limit: the timer must be gone
        return expired

    assert run_async(main()) is False


def test_no_limit_schedules_nothing() -> None:
    async def main() -> bool:
        scope = Scope(math.inf)
        scope.enter()
        await asyncio.sleep(TINY)
        return scope.close()

    assert run_async(main()) is False


def test_close_counts_a_swallowed_cancel_as_the_timeout() -> None:
    async def main() -> tuple[bool, bool]:
        scope = Scope(TINY)
        scope.enter()
        with_cancel = False
        try:
            await asyncio.sleep(GUARD)
        except asyncio.CancelledError:
            with_cancel = True  # swallowed: the work ends normally, too late
        return with_cancel, scope.close()

    assert run_async(main()) == (True, True)


def test_an_error_raised_after_the_limit_is_not_taken_for_the_timeout() -> None:
    async def main() -> bool:
        scope = Scope(TINY)
        scope.enter()
        try:
            try:
                await asyncio.sleep(GUARD)
            except asyncio.CancelledError:
                raise Boom("while cancelled") from None
        except Boom as exc:
            return scope.expired(exc)
        return True

    assert run_async(main()) is False


async def expired_when_cancelled_from_outside(limit: float) -> list[bool]:
    """What ``expired`` says in work under ``Scope(limit)`` that someone else cancels.

    The other cancel comes at the loop's next turn, so with ``limit`` 0 it
    lands beside the scope's own. The task must end cancelled either way.
    """
    results: list[bool] = []

    async def work() -> None:
        scope = Scope(limit)
        scope.enter()
        asyncio.get_running_loop().call_soon(task.cancel)
        try:
            await asyncio.sleep(GUARD)
        except asyncio.CancelledError as exc:
            results.append(scope.expired(exc))
            raise

    task = asyncio.ensure_future(work())
    with pytest.raises(asyncio.CancelledError):
        await task
    return results


def test_an_outside_cancel_before_the_limit_goes_through() -> None:
    assert run_async(expired_when_cancelled_from_outside(GUARD)) == [False]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 cannot count cancels")
def test_an_outside_cancel_beside_the_timeout_is_not_swallowed() -> None:
    assert run_async(expired_when_cancelled_from_outside(0.0)) == [False]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 cannot count cancels")
def test_a_cancel_caught_before_the_scope_does_not_hide_its_timeout() -> None:
    async def main() -> bool:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(GUARD)  # caught, not withdrawn: the task still counts it
        scope = Scope(TINY)
        scope.enter()
        try:
            await asyncio.sleep(GUARD)
        except asyncio.CancelledError as exc:
            return scope.expired(exc)
        return False

    assert run_async(main()) is True


def test_a_scope_needs_a_task() -> None:
    async def main() -> None:
        failed: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

        def outside_any_task() -> None:
            try:
                Scope(1.0)
            except RuntimeError as exc:
                failed.set_result(exc)
            else:
                failed.set_result(None)

        asyncio.get_running_loop().call_soon(outside_any_task)
        assert isinstance(await failed, RuntimeError)

    run_async(main())
