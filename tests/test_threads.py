"""Real threads against the core primitives, on both twins.

Each test starts its threads together on a Barrier and checks invariants
that a lost update or a check-then-act race would break. The switch
interval is shortened so that threads interleave inside short methods.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from resilience._core import CLOSED, HALF_OPEN, OPEN
from resilience.testing import FakeClock

THREADS = 8


pytestmark = pytest.mark.usefixtures("frequent_switches")


def run_together(n: int, work: Callable[[int], None]) -> None:
    """Run ``work(i)`` on ``n`` threads released at once; re-raise the first error."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:  # re-raised on the main thread
            errors.append(exc)
            barrier.abort()
            raise

    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30.0)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]


# -- TokenBucket ---------------------------------------------------------------


TRIALS = 10  # fresh objects per test: each trial is another chance for a race to show


@pytest.mark.parametrize("capacity", [1, 7, 250, 1000])
def test_bucket_grants_exactly_its_tokens_when_time_stands_still(impl, capacity):
    attempts = 400
    for trial in range(TRIALS):
        bucket = impl.TokenBucket(1000.0, float(capacity), clock=FakeClock())
        grants = [0] * THREADS

        def work(i: int, bucket=bucket, grants=grants) -> None:
            for _ in range(attempts):
                if bucket.try_acquire():
                    grants[i] += 1

        run_together(THREADS, work)
        assert sum(grants) == capacity, f"trial {trial}"
        assert bucket.granted == capacity
        assert bucket.rejected == THREADS * attempts - capacity
        assert bucket.available == pytest.approx(0.0, abs=1e-6)


def test_bucket_mixed_sizes_never_overdraw(impl):
    capacity = 600.0
    attempts = 300
    sizes = [0.5, 1.0, 2.0, 3.0]
    for trial in range(TRIALS):
        bucket = impl.TokenBucket(5.0, capacity, clock=FakeClock())
        taken = [0.0] * THREADS
        grants = [0] * THREADS

        def work(i: int, bucket=bucket, taken=taken, grants=grants) -> None:
            size = sizes[i % len(sizes)]
            for _ in range(attempts):
                if bucket.try_acquire(size):
                    taken[i] += size
                    grants[i] += 1

        run_together(THREADS, work)
        total = sum(taken)
        assert total <= capacity, f"trial {trial}"
        # every grant left the bucket: no update was lost
        assert bucket.available == pytest.approx(capacity - total, abs=1e-6)
        assert bucket.granted == sum(grants)
        assert bucket.granted + bucket.rejected == THREADS * attempts
        # the two threads asking for half a token cannot both be served every
        # time (that would be 300 tokens each), so one saw the bucket empty
        assert bucket.available < 0.5


def test_bucket_with_a_tiny_rate_on_the_real_clock(impl):
    capacity = 400
    for trial in range(TRIALS):
        # at most about 1e-6 of a token can accrue while a trial runs
        bucket = impl.TokenBucket(1e-6, float(capacity))
        grants = [0] * THREADS

        def work(i: int, bucket=bucket, grants=grants) -> None:
            for _ in range(200):
                if bucket.try_acquire():
                    grants[i] += 1

        run_together(THREADS, work)
        assert sum(grants) == capacity, f"trial {trial}"
        assert bucket.granted == capacity


# -- SemaphoreCore ---------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3, 5])
def test_semaphore_never_exceeds_its_limit(impl, limit):
    attempts = 600
    for trial in range(TRIALS):
        semaphore = impl.SemaphoreCore(limit)
        lock = threading.Lock()
        holders = [0]
        violations: list[tuple[int, int]] = []
        acquired = [0] * THREADS

        def work(
            i: int,
            semaphore=semaphore,
            lock=lock,
            holders=holders,
            violations=violations,
            acquired=acquired,
        ) -> None:
            for _ in range(attempts):
                if not semaphore.try_acquire():
                    continue
                acquired[i] += 1
                with lock:  # counts holders between try_acquire and release
                    holders[0] += 1
                    if holders[0] > limit:
                        violations.append((holders[0], semaphore.active))
                active = semaphore.active
                if active > limit:
                    violations.append((-1, active))
                with lock:
                    holders[0] -= 1
                semaphore.release()

        run_together(THREADS, work)
        assert violations == [], f"trial {trial}"
        assert semaphore.active == 0
        assert semaphore.acquired == sum(acquired)
        assert semaphore.acquired + semaphore.rejected == THREADS * attempts
        assert semaphore.available == limit


# -- BreakerCore ---------------------------------------------------------------


@pytest.mark.parametrize("start_half_open", [True, False])
def test_half_open_admits_exactly_half_open_calls_probes(impl, start_half_open):
    trials = 400
    attempts = 3  # per thread and trial; no permit is ever given back
    breakers = []
    all_events = []
    for trial in range(trials):
        events: list[tuple[int, int]] = []
        half_open_calls = 1 + trial % 4
        clock = FakeClock()
        breaker = impl.BreakerCore(
            failure_threshold=1,
            reset_timeout=1.0,
            half_open_calls=half_open_calls,
            clock=clock,
            listener=lambda old, new, events=events: events.append((old, new)),
        )
        breaker.record_failure()
        clock.advance(1.0)
        if start_half_open:  # else the threads also race for the OPEN -> HALF_OPEN move
            assert breaker.current_state() == HALF_OPEN
        breakers.append((breaker, half_open_calls))
        all_events.append(events)

    tokens = [[[] for _ in range(THREADS)] for _ in range(trials)]
    barrier = threading.Barrier(THREADS)

    def work(i: int) -> None:
        for trial, (breaker, _) in enumerate(breakers):
            barrier.wait(timeout=10.0)
            got = tokens[trial][i]
            for _ in range(attempts):
                got.append(breaker.acquire())

    run_together(THREADS, work)
    for trial, (breaker, half_open_calls) in enumerate(breakers):
        taken = [token for per_thread in tokens[trial] for token in per_thread]
        admitted = [token for token in taken if token >= 0]
        assert len(admitted) == half_open_calls, f"trial {trial}"
        # every probe permit has a token of its own, newer than the half-open move
        assert len(set(admitted)) == half_open_calls
        assert all(token > 0 for token in admitted)
        assert breaker.rejected == THREADS * attempts - half_open_calls
        assert breaker.half_open_probes == half_open_calls
        assert breaker.current_state() == HALF_OPEN
        assert all_events[trial] == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


@pytest.mark.parametrize(
    "settings",
    [
        {"failure_threshold": 20},
        {"failure_threshold": 0, "failure_rate": 0.5, "window": 50, "minimum_calls": 50},
    ],
    ids=["consecutive", "rate"],
)
@pytest.mark.parametrize("with_generation", [True, False])
def test_closed_breaker_trips_exactly_once(impl, settings, with_generation):
    trials = 25
    per_thread = 150
    for trial in range(trials):
        events: list[tuple[int, int]] = []
        breaker = impl.BreakerCore(
            reset_timeout=60.0,
            reset_timeout_max=3600.0,
            clock=FakeClock(),
            listener=lambda old, new, events=events: events.append((old, new)),
            **settings,
        )
        recorded = [0] * THREADS
        admitted = [0] * THREADS

        def work(i: int, breaker=breaker, recorded=recorded, admitted=admitted) -> None:
            for n in range(per_thread):
                token = breaker.acquire()
                if token < 0:
                    continue
                admitted[i] += 1
                generation = token if with_generation else -1
                # mostly failures; a rare success restarts the consecutive count
                if n % 40 == 20:
                    breaker.record_success(generation=generation)
                else:
                    breaker.record_failure(generation=generation)
                recorded[i] += 1

        run_together(THREADS, work)
        assert events == [(CLOSED, OPEN)], f"trial {trial}"
        assert breaker.current_state() == OPEN
        assert breaker.open_duration == 60.0  # a second trip in a row would double it
        assert breaker.total_calls == sum(recorded)
        assert breaker.rejected == THREADS * per_thread - sum(admitted)
        assert breaker.rejected > 0
