"""Bulkhead, the policy: limits, the FIFO queue, waking, deadlines, permits returned, forms.

Every expectation comes from docs/architecture.md ("Public API", "Errors", "Bulkhead",
"Timeout and deadline"); the tests use the public API only. Each test asks
for ``policy_impl`` and builds its bulkhead inside, so it runs once on the
compiled core and once on the pure one.

Bulkhead waits use the real clock, so the real waits here are tiny (<= 0.1 s).
``GUARD`` bounds joins and polls so that a deadlock fails the test instead of
hanging it; it is never an assertion on how long something took. Where a
call must refuse without waiting, the wait it must not enter is longer than
``GUARD`` (10 s or no end), so entering it fails the guard.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from resilience import Bulkhead, BulkheadStats
from resilience.errors import BulkheadFullError, ResilienceError
from resilience.timeout import deadline

GUARD = 5.0  # seconds: deadlock guard for joins and polls
TINY = 0.05  # seconds: the longest real wait a test asks for


class Boom(Exception):
    """The failure the protected functions raise."""


pytestmark = pytest.mark.usefixtures("frequent_switches")


# -- helpers ---------------------------------------------------------------------


class Worker:
    """A daemon thread running ``fn``; keeps its result or exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self._fn = fn
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self._fn()
        except BaseException as exc:  # handed to the test
            self.error = exc
        finally:
            self.finished.set()

    def join(self) -> Worker:
        self.thread.join(GUARD)
        assert not self.thread.is_alive(), "worker thread still blocked (deadlock?)"
        return self

    def ok(self) -> Any:
        self.join()
        if self.error is not None:
            raise self.error
        return self.result


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + GUARD
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting until {what}")
        time.sleep(0.0005)


async def await_until(predicate: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + GUARD
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting until {what}")
        await asyncio.sleep(0.0005)


def queued(bulkhead: Bulkhead, n: int) -> None:
    wait_until(lambda: bulkhead.waiting == n, f"{n} caller(s) are queued")


async def aqueued(bulkhead: Bulkhead, n: int) -> None:
    await await_until(lambda: bulkhead.waiting == n, f"{n} caller(s) are queued")


def refused_at_once(fn: Callable[[], Any]) -> None:
    """``fn()`` raises BulkheadFullError without waiting.

    It runs on a worker thread, so a wrongly entered wait (longer than GUARD
    in every caller) fails the test instead of hanging it.
    """
    worker = Worker(fn)
    worker.thread.join(GUARD)
    assert not worker.thread.is_alive(), "it waited instead of refusing at once"
    assert isinstance(worker.error, BulkheadFullError), worker.error


async def arefused_at_once(fn: Callable[[], Awaitable[Any]]) -> None:
    """``await fn()`` raises BulkheadFullError without waiting.

    A wrongly entered wait (longer than GUARD in every caller) ends in the
    guard's TimeoutError instead.
    """
    with pytest.raises(BulkheadFullError):
        await asyncio.wait_for(fn(), GUARD)


def counts(bulkhead: Bulkhead) -> tuple[int, int, int, int]:
    stats = bulkhead.stats
    return stats.active, stats.waiting, stats.acquired, stats.rejected


def full_bulkhead(**kwargs: Any) -> Bulkhead:
    """A bulkhead of one permit, held by the test."""
    bulkhead = Bulkhead(1, **kwargs)
    assert bulkhead.try_acquire()
    return bulkhead


# -- limits ----------------------------------------------------------------------


def test_at_most_max_concurrent_holders(policy_impl):
    bulkhead = Bulkhead(3)
    assert [bulkhead.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert bulkhead.active == 3
    bulkhead.release()
    assert bulkhead.active == 2
    assert bulkhead.try_acquire()
    assert not bulkhead.try_acquire()
    assert bulkhead.active == 3


def test_acquire_takes_free_permits_without_waiting(policy_impl):
    bulkhead = Bulkhead(2)
    bulkhead.acquire()
    bulkhead.acquire()
    assert bulkhead.active == 2
    with pytest.raises(BulkheadFullError):
        bulkhead.acquire()
    assert bulkhead.active == 2
    assert bulkhead.waiting == 0


def test_default_no_queue_refuses_every_form_at_once(policy_impl):
    bulkhead = full_bulkhead()
    ran: list[str] = []

    with pytest.raises(BulkheadFullError) as info:
        bulkhead.acquire()
    assert isinstance(info.value, ResilienceError)
    with pytest.raises(BulkheadFullError):
        bulkhead.call(ran.append, "call")
    with pytest.raises(BulkheadFullError), bulkhead:
        ran.append("with")
    with pytest.raises(BulkheadFullError):
        bulkhead(lambda: ran.append("decorated"))()
    assert not bulkhead.try_acquire()

    async def main() -> None:
        with pytest.raises(BulkheadFullError):
            await bulkhead.aacquire()

        async def body() -> None:
            ran.append("acall")

        with pytest.raises(BulkheadFullError):
            await bulkhead.acall(body)
        with pytest.raises(BulkheadFullError):
            async with bulkhead:
                ran.append("async with")

    asyncio.run(main())
    assert ran == []
    assert bulkhead.active == 1
    assert bulkhead.waiting == 0


@pytest.mark.parametrize("timeout", [None, 10.0, math.inf])
def test_no_queue_refuses_at_once_even_with_a_wait(policy_impl, timeout):
    bulkhead = full_bulkhead(max_wait=10.0)  # max_queue=0: the queue bound always applies
    refused_at_once(lambda: bulkhead.acquire(timeout=timeout))

    async def main() -> None:
        await arefused_at_once(lambda: bulkhead.aacquire(timeout=timeout))

    asyncio.run(main())
    assert bulkhead.waiting == 0
    assert bulkhead.active == 1


def test_queued_caller_waits_and_gets_the_released_permit(policy_impl):
    bulkhead = full_bulkhead(max_queue=1, max_wait=GUARD)
    worker = Worker(bulkhead.acquire)
    queued(bulkhead, 1)
    assert not worker.finished.is_set()
    assert bulkhead.active == 1
    bulkhead.release()
    worker.ok()
    assert bulkhead.active == 1  # now the worker's
    assert bulkhead.waiting == 0
    bulkhead.release()
    assert bulkhead.active == 0


def test_queue_bound_refuses_the_extra_caller_at_once(policy_impl):
    bulkhead = full_bulkhead(max_queue=2, max_wait=10.0)
    entered: list[int] = []

    def enter(i: int) -> None:
        with bulkhead:
            entered.append(i)

    workers = []
    for i in range(2):
        workers.append(Worker(functools.partial(enter, i)))
        queued(bulkhead, i + 1)

    refused_at_once(bulkhead.acquire)

    async def refused() -> None:
        await arefused_at_once(lambda: bulkhead.aacquire(timeout=10.0))

    asyncio.run(refused())
    assert bulkhead.waiting == 2  # the queued ones keep their places
    assert entered == []

    bulkhead.release()
    for worker in workers:
        worker.ok()
    assert entered == [0, 1]
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


def test_wait_ends_after_max_wait_and_leaves_the_queue(policy_impl):
    bulkhead = full_bulkhead(max_queue=1, max_wait=TINY)
    worker = Worker(bulkhead.acquire)  # timeout=None: max_wait
    assert isinstance(worker.join().error, BulkheadFullError)
    assert bulkhead.waiting == 0
    assert bulkhead.active == 1
    bulkhead.release()
    assert bulkhead.active == 0  # the permit did not go to the waiter that left
    assert bulkhead.try_acquire()


def test_async_wait_ends_after_max_wait_and_leaves_the_queue(policy_impl):
    bulkhead = full_bulkhead(max_queue=1, max_wait=TINY)

    async def main() -> None:
        with pytest.raises(BulkheadFullError):
            await asyncio.wait_for(bulkhead.aacquire(), GUARD)

    asyncio.run(main())
    assert bulkhead.waiting == 0
    assert bulkhead.active == 1
    bulkhead.release()
    assert bulkhead.active == 0
    assert bulkhead.try_acquire()


def test_timeout_argument_shortens_an_infinite_max_wait(policy_impl):
    bulkhead = full_bulkhead(max_queue=1, max_wait=math.inf)
    worker = Worker(lambda: bulkhead.acquire(timeout=TINY))
    worker.thread.join(GUARD)
    try:
        assert not worker.thread.is_alive(), "timeout= was ignored: still waiting"
        assert isinstance(worker.error, BulkheadFullError)
        assert bulkhead.waiting == 0
    finally:
        bulkhead.release()  # frees a worker stuck on a broken build
    worker.join()

    async def main() -> None:
        assert bulkhead.try_acquire()
        with pytest.raises(BulkheadFullError):
            await asyncio.wait_for(bulkhead.aacquire(timeout=TINY), GUARD)
        assert bulkhead.waiting == 0

    asyncio.run(main())


def test_timeout_argument_lengthens_a_zero_max_wait(policy_impl):
    bulkhead = full_bulkhead(max_queue=1)  # max_wait=0: the default would not wait
    worker = Worker(lambda: bulkhead.acquire(timeout=GUARD))
    queued(bulkhead, 1)
    bulkhead.release()
    worker.ok()
    assert bulkhead.active == 1

    async def main() -> None:
        task = asyncio.create_task(bulkhead.aacquire(timeout=GUARD))
        await aqueued(bulkhead, 1)
        bulkhead.release()
        await asyncio.wait_for(task, GUARD)

    asyncio.run(main())
    assert bulkhead.active == 1
    assert bulkhead.waiting == 0


def test_zero_timeout_does_not_wait(policy_impl):
    bulkhead = full_bulkhead(max_queue=1, max_wait=10.0)
    refused_at_once(lambda: bulkhead.acquire(timeout=0))

    async def main() -> None:
        await arefused_at_once(lambda: bulkhead.aacquire(timeout=0.0))

    asyncio.run(main())
    assert bulkhead.waiting == 0
    assert bulkhead.stats.rejected == 2


def test_timed_out_waiter_leaves_its_place_to_the_next(policy_impl):
    bulkhead = full_bulkhead(max_queue=2, max_wait=GUARD)
    patient = Worker(bulkhead.acquire)
    queued(bulkhead, 1)
    hasty = Worker(lambda: bulkhead.acquire(timeout=TINY))
    assert isinstance(hasty.join().error, BulkheadFullError)
    assert bulkhead.waiting == 1  # dropped back: only the patient one is left
    assert not patient.finished.is_set()
    bulkhead.release()
    patient.ok()
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)


def test_infinite_max_wait_waits_until_woken(policy_impl):
    bulkhead = full_bulkhead(max_queue=1, max_wait=math.inf)
    worker = Worker(bulkhead.acquire)
    queued(bulkhead, 1)
    time.sleep(TINY)
    assert not worker.finished.is_set()
    assert bulkhead.waiting == 1
    bulkhead.release()
    worker.ok()
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)

    async def main() -> None:
        task = asyncio.create_task(bulkhead.aacquire())
        await aqueued(bulkhead, 1)
        await asyncio.sleep(TINY)
        assert not task.done()
        bulkhead.release()
        await asyncio.wait_for(task, GUARD)

    asyncio.run(main())
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)


@pytest.mark.parametrize("where", ["max_wait", "timeout"])
def test_a_very_long_finite_wait_is_a_valid_wait(policy_impl, where):
    # A finite wait >= 0 is in range (docs/architecture.md, "Argument ranges":
    # waits are >= 0, inf allowed); one longer than the platform's lock timeout
    # must still just wait.
    long = 1e10
    bulkhead = full_bulkhead(max_queue=1, max_wait=long if where == "max_wait" else 0.0)
    worker = Worker(lambda: bulkhead.acquire(timeout=long if where == "timeout" else None))
    wait_until(lambda: bulkhead.waiting == 1 or worker.finished.is_set(), "the worker queued")
    bulkhead.release()
    worker.ok()
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)


# -- FIFO, no barging ----------------------------------------------------------------


def test_threads_are_served_in_arrival_order(policy_impl):
    n = 6
    bulkhead = full_bulkhead(max_queue=n, max_wait=GUARD)
    order: list[int] = []

    def enter(i: int) -> None:
        with bulkhead:
            order.append(i)

    workers = []
    for i in range(n):
        workers.append(Worker(functools.partial(enter, i)))
        queued(bulkhead, i + 1)
    bulkhead.release()
    for worker in workers:
        worker.ok()
    assert order == list(range(n))
    assert counts(bulkhead) == (0, 0, n + 1, 0)


def test_tasks_are_served_in_arrival_order(policy_impl):
    n = 6
    bulkhead = full_bulkhead(max_queue=n, max_wait=GUARD)
    order: list[int] = []

    async def enter(i: int) -> None:
        async with bulkhead:
            order.append(i)
            await asyncio.sleep(0)

    async def main() -> None:
        tasks = []
        for i in range(n):
            tasks.append(asyncio.create_task(enter(i)))
            await aqueued(bulkhead, i + 1)
        bulkhead.release()
        await asyncio.wait_for(asyncio.gather(*tasks), GUARD)

    asyncio.run(main())
    assert order == list(range(n))
    assert counts(bulkhead) == (0, 0, n + 1, 0)


def test_threads_and_tasks_share_one_fifo_queue(policy_impl):
    bulkhead = full_bulkhead(max_queue=4, max_wait=GUARD)
    order: list[str] = []

    def thread_enter(label: str) -> None:
        with bulkhead:
            order.append(label)

    async def task_enter(label: str) -> None:
        async with bulkhead:
            order.append(label)

    async def main() -> None:
        workers = []
        tasks = []
        for i, label in enumerate(["thread0", "task1", "thread2", "task3"]):
            if label.startswith("thread"):
                workers.append(Worker(functools.partial(thread_enter, label)))
            else:
                tasks.append(asyncio.create_task(task_enter(label)))
            await aqueued(bulkhead, i + 1)
        bulkhead.release()
        await asyncio.wait_for(asyncio.gather(*tasks), GUARD)
        for worker in workers:
            worker.ok()

    asyncio.run(main())
    assert order == ["thread0", "task1", "thread2", "task3"]
    assert counts(bulkhead) == (0, 0, 5, 0)


def test_no_barging_past_a_queued_thread(policy_impl):
    bulkhead = full_bulkhead(max_queue=1, max_wait=GUARD)
    got = threading.Event()
    done = threading.Event()

    def waiter() -> None:
        bulkhead.acquire()
        got.set()
        done.wait(GUARD)
        bulkhead.release()

    worker = Worker(waiter)
    queued(bulkhead, 1)
    assert not bulkhead.try_acquire()  # full, and someone is queued
    bulkhead.release()
    assert not bulkhead.try_acquire()  # the permit went to the queued caller
    assert got.wait(GUARD)
    assert bulkhead.active == 1
    assert bulkhead.waiting == 0
    done.set()
    worker.ok()
    assert bulkhead.active == 0
    assert bulkhead.stats.rejected == 2  # both failed try_acquire calls


def test_no_barging_past_a_queued_task(policy_impl):
    bulkhead = full_bulkhead(max_queue=1, max_wait=GUARD)

    async def main() -> None:
        task = asyncio.create_task(bulkhead.aacquire())
        await aqueued(bulkhead, 1)
        bulkhead.release()
        # No await in between: the queued task has not run yet, the permit is its.
        assert not bulkhead.try_acquire()
        assert bulkhead.active == 1
        await asyncio.wait_for(task, GUARD)
        assert task.exception() is None

    asyncio.run(main())
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)
    assert bulkhead.stats.acquired == 2


def test_a_newcomer_queues_behind_the_waiters(policy_impl):
    bulkhead = full_bulkhead(max_queue=2, max_wait=GUARD)
    order: list[str] = []

    async def enter(label: str) -> None:
        async with bulkhead:
            order.append(label)
            await asyncio.sleep(0)

    async def main() -> None:
        first = asyncio.create_task(enter("first"))
        await aqueued(bulkhead, 1)
        bulkhead.release()
        # A newcomer arriving right after the release still goes behind "first".
        second = asyncio.create_task(enter("newcomer"))
        await asyncio.wait_for(asyncio.gather(first, second), GUARD)

    asyncio.run(main())
    assert order == ["first", "newcomer"]
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


# -- woken by releases -----------------------------------------------------------------


def test_thread_releasing_wakes_a_waiting_thread(policy_impl):
    bulkhead = Bulkhead(1, max_queue=1, max_wait=GUARD)
    held = threading.Event()

    def holder() -> None:
        bulkhead.acquire()
        held.set()
        queued(bulkhead, 1)
        bulkhead.release()

    worker = Worker(holder)
    assert held.wait(GUARD)
    bulkhead.acquire()  # woken by the holder's release
    worker.ok()
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)
    bulkhead.release()


def test_task_releasing_wakes_a_waiting_task(policy_impl):
    bulkhead = Bulkhead(1, max_queue=1, max_wait=GUARD)
    order: list[str] = []

    async def holder() -> None:
        async with bulkhead:
            order.append("holder in")
            await aqueued(bulkhead, 1)
            order.append("holder out")

    async def waiter() -> None:
        await bulkhead.aacquire()
        order.append("waiter in")
        bulkhead.release()

    async def main() -> None:
        first = asyncio.create_task(holder())
        await await_until(lambda: bulkhead.active == 1, "the holder holds")
        await asyncio.wait_for(asyncio.gather(first, waiter()), GUARD)

    asyncio.run(main())
    assert order == ["holder in", "holder out", "waiter in"]
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


def test_thread_releasing_wakes_a_waiting_task(policy_impl):
    bulkhead = Bulkhead(1, max_queue=1, max_wait=GUARD)
    held = threading.Event()

    def holder() -> None:
        with bulkhead:
            held.set()
            queued(bulkhead, 1)

    async def main() -> None:
        worker = Worker(holder)
        await await_until(held.is_set, "the thread holds the permit")
        await asyncio.wait_for(bulkhead.aacquire(), GUARD)
        assert bulkhead.active == 1
        worker.ok()

    asyncio.run(main())
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)
    assert bulkhead.stats.acquired == 2


def test_task_releasing_wakes_a_waiting_thread(policy_impl):
    bulkhead = Bulkhead(1, max_queue=1, max_wait=GUARD)

    def waiter() -> str:
        with bulkhead:
            return "entered"

    async def main() -> Worker:
        async with bulkhead:
            worker = Worker(waiter)
            await aqueued(bulkhead, 1)
            assert not worker.finished.is_set()
        return worker

    worker = asyncio.run(main())
    assert worker.ok() == "entered"
    assert counts(bulkhead) == (0, 0, 2, 0)


# -- the current deadline ----------------------------------------------------------


@pytest.mark.parametrize("seconds", [0.0, TINY])
@pytest.mark.parametrize("timeout", [None, 10.0])
def test_deadline_bounds_a_thread_wait(policy_impl, seconds, timeout):
    bulkhead = full_bulkhead(max_queue=1, max_wait=10.0)

    def bounded() -> None:
        with deadline(seconds):
            bulkhead.acquire(timeout=timeout)

    refused_at_once(bounded)  # "at once" here: well before the 10 s wait
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)
    assert bulkhead.stats.rejected == 1


@pytest.mark.parametrize("seconds", [0.0, TINY])
@pytest.mark.parametrize("timeout", [None, 10.0])
def test_deadline_bounds_a_task_wait(policy_impl, seconds, timeout):
    bulkhead = full_bulkhead(max_queue=1, max_wait=10.0)

    async def main() -> None:
        async with deadline(seconds):
            await arefused_at_once(lambda: bulkhead.aacquire(timeout=timeout))

    asyncio.run(main())
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)
    assert bulkhead.stats.rejected == 1


def test_deadline_bounds_an_infinite_wait(policy_impl):
    bulkhead = full_bulkhead(max_queue=1, max_wait=math.inf)

    def bounded() -> None:
        with deadline(TINY):
            bulkhead.acquire()

    worker = Worker(bounded)
    worker.thread.join(GUARD)
    try:
        assert not worker.thread.is_alive(), "the wait went past the deadline"
        assert isinstance(worker.error, BulkheadFullError)
    finally:
        bulkhead.release()
    worker.join()
    assert bulkhead.waiting == 0


def test_a_wait_after_the_deadline_block_is_not_bounded_by_it(policy_impl):
    bulkhead = full_bulkhead(max_queue=1, max_wait=GUARD)
    with deadline(0.0):
        pass

    def waiter() -> None:
        bulkhead.acquire()

    worker = Worker(waiter)
    queued(bulkhead, 1)
    bulkhead.release()
    worker.ok()
    assert bulkhead.active == 1


# -- permits always come back --------------------------------------------------------


def test_exception_in_with_returns_the_permit(policy_impl):
    bulkhead = Bulkhead(1)
    with pytest.raises(Boom), bulkhead:
        assert bulkhead.active == 1
        raise Boom
    assert bulkhead.active == 0
    assert bulkhead.try_acquire()


def test_exception_in_async_with_returns_the_permit(policy_impl):
    bulkhead = Bulkhead(1)

    async def main() -> None:
        with pytest.raises(Boom):
            async with bulkhead:
                assert bulkhead.active == 1
                raise Boom

    asyncio.run(main())
    assert bulkhead.active == 0
    assert bulkhead.try_acquire()


def test_exception_in_call_and_decorated_returns_the_permit(policy_impl):
    bulkhead = Bulkhead(1)

    def fail() -> None:
        assert bulkhead.active == 1
        raise Boom

    with pytest.raises(Boom):
        bulkhead.call(fail)
    assert bulkhead.active == 0
    with pytest.raises(Boom):
        bulkhead(fail)()
    assert bulkhead.active == 0
    assert counts(bulkhead) == (0, 0, 2, 0)


def test_exception_in_acall_and_async_decorated_returns_the_permit(policy_impl):
    bulkhead = Bulkhead(1)

    async def fail() -> None:
        assert bulkhead.active == 1
        await asyncio.sleep(0)
        raise Boom

    async def main() -> None:
        with pytest.raises(Boom):
            await bulkhead.acall(fail)
        assert bulkhead.active == 0
        with pytest.raises(Boom):
            await bulkhead(fail)()
        assert bulkhead.active == 0

    asyncio.run(main())
    assert counts(bulkhead) == (0, 0, 2, 0)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_from_the_function_returns_the_permit(policy_impl, exc_type):
    bulkhead = Bulkhead(1)

    def interrupted() -> None:
        assert bulkhead.active == 1
        raise exc_type

    with pytest.raises(exc_type):
        bulkhead(interrupted)()
    assert bulkhead.active == 0
    with pytest.raises(exc_type):
        bulkhead.call(interrupted)
    assert bulkhead.active == 0
    with pytest.raises(exc_type), bulkhead:
        interrupted()
    assert bulkhead.active == 0

    async def ainterrupted() -> None:
        interrupted()

    async def main() -> None:
        await bulkhead.acall(ainterrupted)

    with pytest.raises(exc_type):
        asyncio.run(main())
    assert bulkhead.active == 0
    assert bulkhead.try_acquire()


def test_task_cancelled_while_queued_leaves_no_trace(policy_impl):
    bulkhead = full_bulkhead(max_queue=2, max_wait=GUARD)
    before = counts(bulkhead)

    async def main() -> None:
        task = asyncio.create_task(bulkhead.aacquire())
        await aqueued(bulkhead, 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert counts(bulkhead) == before

    asyncio.run(main())
    assert counts(bulkhead) == before
    bulkhead.release()
    assert bulkhead.active == 0
    assert bulkhead.try_acquire()  # nobody left queued to take it


def test_cancelled_waiter_does_not_take_the_next_waiters_permit(policy_impl):
    bulkhead = full_bulkhead(max_queue=3, max_wait=GUARD)
    order: list[str] = []

    async def enter(label: str) -> None:
        async with bulkhead:
            order.append(label)

    async def main() -> None:
        first = asyncio.create_task(enter("first"))
        await aqueued(bulkhead, 1)
        cancelled = asyncio.create_task(enter("cancelled"))
        await aqueued(bulkhead, 2)
        last = asyncio.create_task(enter("last"))
        await aqueued(bulkhead, 3)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert (bulkhead.active, bulkhead.waiting) == (1, 2)
        bulkhead.release()
        await asyncio.wait_for(asyncio.gather(first, last), GUARD)

    asyncio.run(main())
    assert order == ["first", "last"]
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


def test_thread_waiter_after_a_cancelled_task_still_gets_the_permit(policy_impl):
    bulkhead = full_bulkhead(max_queue=2, max_wait=GUARD)

    async def main() -> Worker:
        task = asyncio.create_task(bulkhead.aacquire())
        await aqueued(bulkhead, 1)
        worker = Worker(bulkhead.acquire)
        await aqueued(bulkhead, 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert bulkhead.waiting == 1
        bulkhead.release()
        return worker

    asyncio.run(main()).ok()
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)


def test_task_cancelled_as_its_permit_arrives_passes_it_on(policy_impl):
    # The release hands the permit to the task, which is cancelled before it
    # runs again: it must end cancelled, and the permit must come back (here:
    # to the next waiter), never be lost nor kept by a cancelled task.
    bulkhead = full_bulkhead(max_queue=2, max_wait=GUARD)
    entered: list[str] = []

    async def enter(label: str) -> None:
        async with bulkhead:
            entered.append(label)

    async def main() -> None:
        doomed = asyncio.create_task(enter("doomed"))
        await aqueued(bulkhead, 1)
        nxt = asyncio.create_task(enter("next"))
        await aqueued(bulkhead, 2)
        bulkhead.release()  # granted to "doomed" ...
        doomed.cancel()  # ... which is cancelled before it wakes
        results = await asyncio.wait_for(asyncio.gather(doomed, nxt, return_exceptions=True), GUARD)
        assert isinstance(results[0], asyncio.CancelledError)
        assert results[1] is None

    asyncio.run(main())
    assert "next" in entered
    assert "doomed" not in entered
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


def test_task_cancelled_while_holding_returns_the_permit(policy_impl):
    bulkhead = Bulkhead(1, max_queue=1, max_wait=GUARD)

    async def main() -> None:
        inside = asyncio.Event()

        async def hold() -> None:
            async with bulkhead:
                inside.set()
                await asyncio.Event().wait()  # until cancelled

        task = asyncio.create_task(hold())
        await asyncio.wait_for(inside.wait(), GUARD)
        assert bulkhead.active == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (bulkhead.active, bulkhead.waiting) == (0, 0)
        await asyncio.wait_for(bulkhead.aacquire(timeout=0), GUARD)

    asyncio.run(main())
    assert bulkhead.active == 1


def test_cancelled_holder_hands_its_permit_to_a_waiter(policy_impl):
    bulkhead = Bulkhead(1, max_queue=1, max_wait=GUARD)

    async def main() -> None:
        async def hold() -> None:
            async with bulkhead:
                await asyncio.Event().wait()

        holder = asyncio.create_task(hold())
        await await_until(lambda: bulkhead.active == 1, "the holder holds")
        waiter = asyncio.create_task(bulkhead.aacquire())
        await aqueued(bulkhead, 1)
        holder.cancel()
        await asyncio.wait_for(waiter, GUARD)
        assert holder.cancelled()

    asyncio.run(main())
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)


# -- real concurrency -----------------------------------------------------------------


class Occupancy:
    """Counts who is inside, under a lock, and remembers the most at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.entries = 0

    def enter(self) -> None:
        with self.lock:
            self.inside += 1
            self.entries += 1
            self.most = max(self.most, self.inside)

    def leave(self) -> None:
        with self.lock:
            self.inside -= 1


def run_threads(n: int, work: Callable[[int], None]) -> None:
    barrier = threading.Barrier(n)

    def target(i: int) -> None:
        barrier.wait(GUARD)
        work(i)

    workers = [Worker(functools.partial(target, i)) for i in range(n)]
    for worker in workers:
        worker.ok()


def test_threads_never_exceed_max_concurrent(policy_impl):
    threads, rounds, limit = 8, 300, 3
    bulkhead = Bulkhead(limit, max_queue=threads, max_wait=math.inf)
    occupancy = Occupancy()

    def work(_: int) -> None:
        for _ in range(rounds):
            with bulkhead:
                occupancy.enter()
                time.sleep(0)
                occupancy.leave()

    run_threads(threads, work)
    assert occupancy.entries == threads * rounds
    assert 1 <= occupancy.most <= limit
    assert counts(bulkhead) == (0, 0, threads * rounds, 0)


def test_tasks_never_exceed_max_concurrent(policy_impl):
    tasks, rounds, limit = 50, 20, 4
    bulkhead = Bulkhead(limit, max_queue=tasks, max_wait=math.inf)
    occupancy = Occupancy()

    async def work() -> None:
        for _ in range(rounds):
            async with bulkhead:
                occupancy.enter()
                await asyncio.sleep(0)
                occupancy.leave()

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(work() for _ in range(tasks))), GUARD)

    asyncio.run(main())
    assert occupancy.entries == tasks * rounds
    assert occupancy.most == limit  # 50 tasks yielding inside: the limit is reached
    assert counts(bulkhead) == (0, 0, tasks * rounds, 0)


def test_threads_with_short_waits_account_for_every_attempt(policy_impl):
    threads, rounds, limit = 8, 150, 2
    bulkhead = Bulkhead(limit, max_queue=2, max_wait=0.001)
    occupancy = Occupancy()
    refused = [0] * threads

    def work(i: int) -> None:
        for _ in range(rounds):
            try:
                with bulkhead:
                    occupancy.enter()
                    time.sleep(0)
                    occupancy.leave()
            except BulkheadFullError:
                refused[i] += 1

    run_threads(threads, work)
    stats = bulkhead.stats
    assert occupancy.most <= limit
    assert (stats.active, stats.waiting) == (0, 0)
    assert stats.acquired == occupancy.entries
    assert stats.rejected == sum(refused)
    assert stats.acquired + stats.rejected == threads * rounds


def test_threads_and_tasks_together_never_exceed_max_concurrent(policy_impl):
    limit, rounds = 2, 40
    bulkhead = Bulkhead(limit, max_queue=100, max_wait=math.inf)
    occupancy = Occupancy()

    def sync_work() -> None:
        for _ in range(rounds):
            with bulkhead:
                occupancy.enter()
                time.sleep(0)
                occupancy.leave()

    async def task_work() -> None:
        for _ in range(rounds):
            async with bulkhead:
                occupancy.enter()
                await asyncio.sleep(0)
                occupancy.leave()

    async def loop_work() -> None:
        await asyncio.wait_for(asyncio.gather(*(task_work() for _ in range(8))), GUARD)

    def work(i: int) -> None:
        if i % 2:
            sync_work()
        else:
            asyncio.run(loop_work())

    run_threads(6, work)
    total = 3 * rounds + 3 * 8 * rounds
    assert occupancy.entries == total
    assert occupancy.most <= limit
    assert counts(bulkhead) == (0, 0, total, 0)


# -- forms ------------------------------------------------------------------------------


def test_decorator_on_def(policy_impl):
    bulkhead = Bulkhead(1)

    def add(a: int, b: int = 0) -> tuple[int, int]:
        """Adds, and reports the permits held meanwhile."""
        return a + b, bulkhead.active

    wrapped = bulkhead(add)
    assert wrapped.__name__ == "add"
    assert wrapped.__doc__ == add.__doc__
    assert wrapped.__wrapped__ is add
    assert not inspect.iscoroutinefunction(wrapped)
    assert wrapped(2, b=3) == (5, 1)
    assert bulkhead.active == 0
    assert bulkhead.stats.acquired == 1


def test_decorator_on_async_def(policy_impl):
    bulkhead = Bulkhead(1)

    async def add(a: int, b: int = 0) -> tuple[int, int]:
        """Adds, and reports the permits held meanwhile."""
        await asyncio.sleep(0)
        return a + b, bulkhead.active

    wrapped = bulkhead(add)
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "add"
    assert wrapped.__doc__ == add.__doc__
    assert wrapped.__wrapped__ is add
    assert asyncio.run(wrapped(2, b=3)) == (5, 1)
    assert bulkhead.active == 0
    assert bulkhead.stats.acquired == 1


def test_decorated_functions_are_refused_when_full(policy_impl):
    bulkhead = full_bulkhead()
    ran: list[str] = []

    @bulkhead
    def sync() -> None:
        ran.append("sync")

    @bulkhead
    async def coro() -> None:
        ran.append("async")

    with pytest.raises(BulkheadFullError):
        sync()
    with pytest.raises(BulkheadFullError):
        asyncio.run(coro())
    assert ran == []
    assert bulkhead.active == 1


def test_decorator_on_methods(policy_impl):
    bulkhead = Bulkhead(1)

    class Service:
        def __init__(self, value: int) -> None:
            self.value = value

        @bulkhead
        def get(self, extra: int = 0) -> tuple[int, int]:
            return self.value + extra, bulkhead.active

        @bulkhead
        async def aget(self, extra: int = 0) -> tuple[int, int]:
            await asyncio.sleep(0)
            return self.value + extra, bulkhead.active

    one, two = Service(1), Service(2)
    assert one.get() == (1, 1)
    assert two.get(extra=10) == (12, 1)
    assert asyncio.run(one.aget(5)) == (6, 1)
    assert Service.get.__name__ == "get"
    assert inspect.iscoroutinefunction(Service.aget)
    assert counts(bulkhead) == (0, 0, 3, 0)

    # One bulkhead for every instance: a held permit refuses the other instance.
    assert bulkhead.try_acquire()
    with pytest.raises(BulkheadFullError):
        two.get()


def test_call_and_acall(policy_impl):
    bulkhead = Bulkhead(2)

    def sync(*args: Any, **kwargs: Any) -> tuple[Any, Any, int]:
        return args, kwargs, bulkhead.active

    async def coro(*args: Any, **kwargs: Any) -> tuple[Any, Any, int]:
        await asyncio.sleep(0)
        return args, kwargs, bulkhead.active

    assert bulkhead.call(sync, 1, 2, key="v") == ((1, 2), {"key": "v"}, 1)
    assert asyncio.run(bulkhead.acall(coro, 3, fn="x")) == ((3,), {"fn": "x"}, 1)
    assert counts(bulkhead) == (0, 0, 2, 0)


def test_with_and_async_with_hold_a_permit(policy_impl):
    bulkhead = Bulkhead(2)
    with bulkhead:
        assert bulkhead.active == 1
        with bulkhead:
            assert bulkhead.active == 2
            assert not bulkhead.try_acquire()
        assert bulkhead.active == 1
    assert bulkhead.active == 0

    async def main() -> None:
        async with bulkhead:
            assert bulkhead.active == 1
            async with bulkhead:
                assert bulkhead.active == 2
            assert bulkhead.active == 1
        assert bulkhead.active == 0

    asyncio.run(main())
    assert counts(bulkhead) == (0, 0, 4, 1)


def test_try_acquire_and_release(policy_impl):
    bulkhead = Bulkhead(2)
    assert bulkhead.try_acquire() is True
    assert bulkhead.try_acquire() is True
    assert bulkhead.try_acquire() is False
    bulkhead.release()
    bulkhead.release()
    assert bulkhead.active == 0
    with pytest.raises(RuntimeError):
        bulkhead.release()
    assert counts(bulkhead) == (0, 0, 2, 1)
    assert bulkhead.try_acquire()


def test_release_without_a_permit_raises(policy_impl):
    bulkhead = Bulkhead(3)
    with pytest.raises(RuntimeError):
        bulkhead.release()
    assert counts(bulkhead) == (0, 0, 0, 0)
    with bulkhead:
        pass
    with pytest.raises(RuntimeError):
        bulkhead.release()
    assert bulkhead.active == 0


# -- reading: active, waiting, stats, repr -----------------------------------------


def test_fresh_stats(policy_impl):
    stats = Bulkhead(4, max_queue=2, max_wait=1.0, name="db").stats
    assert isinstance(stats, BulkheadStats)
    assert stats.name == "db"
    assert stats.max_concurrent == 4
    assert stats.max_queue == 2
    assert (stats.active, stats.waiting, stats.acquired, stats.rejected) == (0, 0, 0, 0)
    assert Bulkhead(1).stats.name is None
    assert Bulkhead(1).stats.max_queue == 0


def test_stats_count_every_refusal(policy_impl):
    bulkhead = Bulkhead(2, max_queue=1, name="db")
    assert bulkhead.try_acquire()
    assert bulkhead.try_acquire()
    assert not bulkhead.try_acquire()  # 1: a failed try_acquire
    with pytest.raises(BulkheadFullError):
        bulkhead.acquire()  # 2: max_wait=0, no waiting
    with pytest.raises(BulkheadFullError):
        bulkhead.call(print)  # 3
    with pytest.raises(BulkheadFullError), bulkhead:  # 4
        pass

    async def main() -> None:
        with pytest.raises(BulkheadFullError):
            await bulkhead.aacquire()  # 5

    asyncio.run(main())
    bulkhead.release()
    bulkhead.acquire()
    stats = bulkhead.stats
    assert stats.name == "db"
    assert (stats.max_concurrent, stats.max_queue) == (2, 1)
    assert (stats.active, stats.waiting, stats.acquired, stats.rejected) == (2, 0, 3, 5)


def test_stats_count_handed_over_permits_and_timed_out_waits(policy_impl):
    bulkhead = full_bulkhead(max_queue=1, max_wait=GUARD)
    worker = Worker(bulkhead.acquire)
    queued(bulkhead, 1)
    assert bulkhead.stats.waiting == 1
    bulkhead.release()
    worker.ok()
    assert counts(bulkhead) == (1, 0, 2, 0)  # the hand-over counts as acquired

    timed_out = Worker(lambda: bulkhead.acquire(timeout=TINY))
    assert isinstance(timed_out.join().error, BulkheadFullError)
    assert counts(bulkhead) == (1, 0, 2, 1)  # the timed-out wait counts as rejected

    queued_full = Worker(lambda: bulkhead.acquire(timeout=GUARD))
    queued(bulkhead, 1)
    refused_at_once(lambda: bulkhead.acquire(timeout=math.inf))  # the queue is full
    assert counts(bulkhead) == (1, 1, 2, 2)
    bulkhead.release()
    queued_full.ok()
    assert counts(bulkhead) == (1, 0, 3, 2)


def test_active_and_waiting_follow_the_queue(policy_impl):
    bulkhead = Bulkhead(2, max_queue=3, max_wait=GUARD)
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)
    bulkhead.acquire()
    bulkhead.acquire()
    workers = []
    for i in range(3):
        workers.append(Worker(bulkhead.acquire))
        queued(bulkhead, i + 1)
        assert bulkhead.active == 2
    for expected_waiting in (2, 1, 0):
        bulkhead.release()
        assert bulkhead.waiting == expected_waiting
        assert bulkhead.active == 2
    for worker in workers:
        worker.ok()
    for expected_active in (1, 0):
        bulkhead.release()
        assert bulkhead.active == expected_active


def test_repr_names_the_bulkhead(policy_impl):
    bulkhead = Bulkhead(3, max_queue=2, name="payments")
    text = repr(bulkhead)
    assert "Bulkhead" in text
    assert "payments" in text
    assert " object at 0x" not in text
    assert "Bulkhead" in repr(Bulkhead(1))


# -- bad input ------------------------------------------------------------------------


def check_error(exc_info: pytest.ExceptionInfo[BaseException], argument: str, value: Any) -> None:
    message = str(exc_info.value)
    assert argument in message
    assert repr(value) in message


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1, ValueError), (2.0, TypeError), (True, TypeError), ("2", TypeError)],
)
def test_bad_max_concurrent(policy_impl, value, error):
    with pytest.raises(error) as info:
        Bulkhead(value)
    check_error(info, "max_concurrent", value)


@pytest.mark.parametrize(
    ("value", "error"), [(-1, ValueError), (1.5, TypeError), (2.0, TypeError), ("1", TypeError)]
)
def test_bad_max_queue(policy_impl, value, error):
    with pytest.raises(error) as info:
        Bulkhead(1, max_queue=value)
    check_error(info, "max_queue", value)


@pytest.mark.parametrize(
    ("value", "error"),
    [(-0.5, ValueError), (-1, ValueError), (math.nan, ValueError), ("1", TypeError)],
)
def test_bad_max_wait(policy_impl, value, error):
    with pytest.raises(error) as info:
        Bulkhead(1, max_queue=1, max_wait=value)
    check_error(info, "max_wait", value)


@pytest.mark.parametrize("value", [42, b"db", ["db"]])
def test_bad_name(policy_impl, value):
    with pytest.raises(TypeError) as info:
        Bulkhead(1, name=value)
    check_error(info, "name", value)


def test_good_edge_values_are_accepted(policy_impl):
    Bulkhead(1, max_queue=0, max_wait=0)
    Bulkhead(1, max_queue=5, max_wait=math.inf, name="x")
    Bulkhead(2, max_wait=3)  # an int duration is a number


BAD_TIMEOUTS = [(-1, ValueError), (-0.001, ValueError), (math.nan, ValueError), ("1", TypeError)]


@pytest.mark.parametrize("state", ["free", "full"])
@pytest.mark.parametrize(("value", "error"), BAD_TIMEOUTS)
def test_bad_timeout_to_acquire(policy_impl, state, value, error):
    bulkhead = Bulkhead(1, max_queue=1, max_wait=TINY)
    if state == "full":
        assert bulkhead.try_acquire()
    before = bulkhead.active
    with pytest.raises(error) as info:
        bulkhead.acquire(timeout=value)
    check_error(info, "timeout", value)
    assert bulkhead.active == before  # no permit taken by a refused argument
    assert bulkhead.waiting == 0


@pytest.mark.parametrize("state", ["free", "full"])
@pytest.mark.parametrize(("value", "error"), BAD_TIMEOUTS)
def test_bad_timeout_to_aacquire(policy_impl, state, value, error):
    bulkhead = Bulkhead(1, max_queue=1, max_wait=TINY)
    if state == "full":
        assert bulkhead.try_acquire()
    before = bulkhead.active

    async def main() -> None:
        with pytest.raises(error) as info:
            await bulkhead.aacquire(timeout=value)
        check_error(info, "timeout", value)

    asyncio.run(main())
    assert bulkhead.active == before
    assert bulkhead.waiting == 0


# -- the pure twin's with forms ------------------------------------------------------------


def test_the_pure_gate_passes_the_bulkhead_tests_when_selected_at_import():
    """``with`` / ``async with`` come from the twin's ``BulkheadGate``, the
    base class chosen when ``resilience.bulkhead`` is imported. ``policy_impl``
    switches a bulkhead's core, not its base (a compiled gate bound to a pure
    core sends every block through ``acquire`` / ``release``), so the pure
    gate's own path runs only where the pure twin is selected at import: run
    the bulkhead and thread tests so, in a child process."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "RESILIENCE_NO_EXTENSIONS": "1"}
    check = (
        "import resilience.bulkhead as b, resilience._core._calls_py as pure;"
        "assert issubclass(b.Bulkhead, pure.BulkheadGate), b.Bulkhead.__mro__"
    )
    subprocess.run([sys.executable, "-c", check], cwd=root, env=env, check=True, timeout=60)
    tests = [str(root / "tests" / name) for name in ("test_bulkhead.py", "test_threads.py")]
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-c-extensions",
         "-k", "not pure_gate", *tests],
        cwd=root, env=env, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert child.returncode == 0, child.stdout[-4000:] + child.stderr[-2000:]
    assert " passed" in child.stdout
