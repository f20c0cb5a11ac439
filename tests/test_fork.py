"""A forked child gets working locks and none of the parent's threads' state, on both twins.

Each test forks with real ``os.fork()`` while a parent thread holds every
lock of the object under test (or a permit, a place in a queue, a running
checker thread). The child does one operation and leaves with
``os._exit``; the parent waits for it at most ``CHILD_LIMIT`` seconds, then
kills it: a child that hangs fails the test, it does not hang the suite.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from resilience import (
    AdaptiveRateLimiter,
    Bulkhead,
    Chaos,
    CircuitBreaker,
    DegradationManager,
    ErrorBudget,
    HealthCheck,
    HealthChecker,
    LatencyBudget,
    RateLimiter,
    ResilienceManager,
    RetryBudget,
)
from resilience._core import _fork

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")

CHILD_LIMIT = 20.0  # seconds; a child that passes takes milliseconds
CHILD_FAILED = 3  # the child's exit code when its operation raised
LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def locks_of(root: object) -> list[Any]:
    """Every lock reachable from ``root`` through the library's objects and their containers."""
    found: list[Any] = []
    seen: set[int] = set()

    def walk(value: object) -> None:
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, LOCK_TYPES):
            found.append(value)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif type(value).__module__.startswith("resilience."):
            for name in attribute_names(value):
                walk(getattr(value, name, None))

    walk(root)
    return found


def attribute_names(value: object) -> list[str]:
    names = list(getattr(value, "__dict__", {}))
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return [name for name in names if name not in ("__weakref__", "__dict__")]


@contextmanager
def held_by_another_thread(locks: list[Any]) -> Iterator[None]:
    """While inside, a helper thread holds every one of ``locks``."""
    holding = threading.Event()
    let_go = threading.Event()

    def hold() -> None:
        for lock in locks:
            lock.acquire()
        holding.set()
        let_go.wait()
        for lock in reversed(locks):
            lock.release()

    helper = threading.Thread(target=hold)
    helper.start()
    holding.wait()
    try:
        yield
    finally:
        let_go.set()
        helper.join()


def in_child(operation: Callable[[], object]) -> int:
    """Fork; the child runs ``operation`` and exits; the child's exit code (it must end in time)."""
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        code = CHILD_FAILED
        try:
            operation()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    give_up = time.monotonic() + CHILD_LIMIT
    while time.monotonic() < give_up:
        ended, status = os.waitpid(pid, os.WNOHANG)
        if ended:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)  # polling the child, not waiting for an event
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not end within {CHILD_LIMIT} s: it hangs")


def start_stop(checker: HealthChecker) -> None:
    checker.start()
    checker.stop()


# (what to build, what the child does with it); policies take the twin from policy_impl.
POLICIES: dict[str, tuple[Callable[[], Any], Callable[[Any], object]]] = {
    "ErrorBudget": (lambda: ErrorBudget(0.99), lambda budget: budget.record(ok=False)),
    "ErrorBudget-coarse": (
        lambda: ErrorBudget(0.99, window=86400.0),
        lambda budget: budget.record(ok=False),
    ),
    "LatencyBudget": (lambda: LatencyBudget(0.5, window=60.0), lambda budget: budget.record(0.1)),
    "RetryBudget": (RetryBudget, lambda budget: budget.try_withdraw()),
    "RateLimiter": (lambda: RateLimiter(10), lambda limiter: limiter.try_acquire()),
    "AdaptiveRateLimiter": (
        lambda: AdaptiveRateLimiter(10, min_rate=1, max_rate=100),
        lambda limiter: limiter.record_failure(),
    ),
    "CircuitBreaker": (CircuitBreaker, lambda breaker: breaker.call(lambda: None)),
    "CircuitBreaker-timed": (
        lambda: CircuitBreaker(failure_rate=0.5, window_duration=10.0),
        lambda breaker: breaker.call(lambda: None),
    ),
    "Bulkhead": (lambda: Bulkhead(2), lambda bulkhead: bulkhead.call(lambda: None)),
    "DegradationManager": (DegradationManager, lambda manager: manager.set_level("degraded")),
    "Chaos": (lambda: Chaos(enabled=True, seed=1), lambda chaos: chaos.call(lambda: None)),
    "ResilienceManager": (ResilienceManager, lambda manager: manager.circuit_breaker("db")),
    "HealthCheck": (lambda: HealthCheck("db", lambda: True), lambda check: check.run()),
    "HealthChecker": (lambda: HealthChecker([HealthCheck("db", lambda: True)]), start_stop),
}

# Core objects of a twin: the compiled ones keep no Python lock, the pure ones one each.
CORES: dict[str, tuple[Callable[[SimpleNamespace], Any], Callable[[Any], object]]] = {
    "TokenBucket": (lambda impl: impl.TokenBucket(1.0, 5.0), lambda bucket: bucket.try_acquire()),
    "SemaphoreCore": (lambda impl: impl.SemaphoreCore(2), lambda core: core.try_acquire()),
    "Counters": (lambda impl: impl.Counters(2), lambda counters: counters.add(0)),
    "CountWindow": (lambda impl: impl.CountWindow(10), lambda window: window.record(True)),
    "TimeWindow": (lambda impl: impl.TimeWindow(10.0), lambda window: window.record(True)),
    "LatencySketch": (lambda impl: impl.LatencySketch(), lambda sketch: sketch.add(0.1)),
    "LatencyWindow": (lambda impl: impl.LatencyWindow(10.0), lambda window: window.add(0.1)),
    "BreakerCore": (lambda impl: impl.BreakerCore(), lambda core: core.allow()),
}


@pytest.mark.parametrize("kind", POLICIES)
def test_a_policy_works_in_a_child_forked_while_its_locks_are_held(
    policy_impl: SimpleNamespace, kind: str
) -> None:
    make, operation = POLICIES[kind]
    policy = make()
    with held_by_another_thread(locks_of(policy)):
        assert in_child(lambda: operation(policy)) == 0


@pytest.mark.parametrize("kind", CORES)
def test_a_core_works_in_a_child_forked_while_its_locks_are_held(
    impl: SimpleNamespace, kind: str
) -> None:
    make, operation = CORES[kind]
    core = make(impl)
    with held_by_another_thread(locks_of(core)):
        assert in_child(lambda: operation(core)) == 0


@pytest.mark.parametrize("kind", POLICIES)
def test_every_lock_of_a_policy_is_reset_after_fork(
    policy_impl: SimpleNamespace, kind: str
) -> None:
    # Cheaper than a fork, and it sees locks the child's operation does not take.
    policy = POLICIES[kind][0]()
    assert all(lock in _fork._locks for lock in locks_of(policy))


@pytest.mark.parametrize("kind", CORES)
def test_every_lock_of_a_core_is_reset_after_fork(impl: SimpleNamespace, kind: str) -> None:
    core = CORES[kind][0](impl)
    assert all(lock in _fork._locks for lock in locks_of(core))


def test_the_issue_reproducer_a_budget_recorded_by_a_thread_then_forked(
    policy_impl: SimpleNamespace,
) -> None:
    budget = ErrorBudget(0.99)
    stop = threading.Event()

    def record_until_stopped() -> None:
        while not stop.is_set():
            budget.record(ok=False)

    recorder = threading.Thread(target=record_until_stopped)
    recorder.start()
    try:
        assert in_child(lambda: budget.record(ok=False)) == 0
    finally:
        stop.set()
        recorder.join()


def test_permits_and_places_of_parent_threads_are_free_in_the_child(
    policy_impl: SimpleNamespace,
) -> None:
    bulkhead = Bulkhead(1, max_queue=1, max_wait=CHILD_LIMIT * 10)
    holding = threading.Event()
    let_go = threading.Event()

    def hold_a_permit() -> None:
        with bulkhead:
            holding.set()
            let_go.wait()

    holder = threading.Thread(target=hold_a_permit)
    queued = threading.Thread(target=lambda: bulkhead.call(lambda: None))
    holder.start()
    holding.wait()
    queued.start()
    while bulkhead.waiting != 1:  # polling a state, not sleeping in place of an event
        time.sleep(0.001)

    def in_the_child() -> None:
        assert (bulkhead.active, bulkhead.waiting) == (0, 0)
        assert bulkhead.try_acquire()
        assert not bulkhead.try_acquire()
        bulkhead.release()
        bulkhead.acquire(timeout=0.0)

    try:
        assert in_child(in_the_child) == 0
        assert (bulkhead.active, bulkhead.waiting) == (1, 1)  # the parent's are untouched
    finally:
        let_go.set()
        holder.join()
        queued.join()
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


def test_a_checker_started_by_the_parent_is_not_running_in_the_child(
    policy_impl: SimpleNamespace,
) -> None:
    checker = HealthChecker([HealthCheck("db", lambda: True, interval=3600.0)])
    checker.start()
    try:
        assert in_child(lambda: None if not checker.running else 1 / 0) == 0
        assert in_child(lambda: start_stop(checker)) == 0
    finally:
        checker.stop()


def test_a_check_whose_probe_runs_on_a_parent_thread_is_free_in_the_child(
    policy_impl: SimpleNamespace,
) -> None:
    probing = threading.Event()
    let_go = threading.Event()

    def slow_probe() -> bool:
        probing.set()
        return let_go.wait()

    check = HealthCheck("db", slow_probe, timeout=CHILD_LIMIT * 10)
    runner = threading.Thread(target=check.run)
    runner.start()
    probing.wait()
    try:
        assert in_child(lambda: None if not check.running else 1 / 0) == 0
    finally:
        let_go.set()
        runner.join()
