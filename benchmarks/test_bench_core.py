"""The core primitives, compiled ``[cython]`` vs pure ``[python]``.

One round runs the statement 1000 times: a round's time in microseconds is
nanoseconds per operation (see conftest.py).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from resilience._tools.timing import af, f

Run = Any


@pytest.mark.benchmark(group="baseline")
def test_bare_call(run_sync: Run) -> None:
    run_sync("f()", f=f)


@pytest.mark.benchmark(group="baseline")
def test_bare_await(run_async: Run) -> None:
    run_async("await af()", af=af)


# -- TokenBucket ---------------------------------------------------------------


@pytest.mark.benchmark(group="TokenBucket.try_acquire()")
def test_bucket_try_acquire(run_sync: Run, impl: SimpleNamespace) -> None:
    bucket = impl.TokenBucket(1e12, 1e12)  # never runs dry: every call takes the grant path
    run_sync("b.try_acquire()", b=bucket)
    assert bucket.rejected == 0


@pytest.mark.benchmark(group="TokenBucket.wait_time()")
def test_bucket_wait_time(run_sync: Run, impl: SimpleNamespace) -> None:
    bucket = impl.TokenBucket(10.0, 10.0)
    run_sync("b.wait_time()", b=bucket)


# -- BreakerCore ---------------------------------------------------------------


@pytest.mark.benchmark(group="BreakerCore allow() + record_success()")
def test_breaker_allow_record(run_sync: Run, impl: SimpleNamespace) -> None:
    breaker = impl.BreakerCore()
    run_sync("b.allow()\nb.record_success()", b=breaker)
    assert breaker.rejected == 0


@pytest.mark.benchmark(group="BreakerCore acquire() + record_success(generation)")
def test_breaker_acquire_record(run_sync: Run, impl: SimpleNamespace) -> None:
    breaker = impl.BreakerCore()
    run_sync("b.record_success(0.0, None, b.acquire())", b=breaker)
    assert breaker.rejected == 0


def _opened(impl: SimpleNamespace) -> Any:
    """A breaker opened by five recorded failures (an hour before it probes)."""
    breaker = impl.BreakerCore(failure_threshold=5, reset_timeout=3600.0)
    for _ in range(5):
        assert breaker.allow()
        breaker.record_failure()
    assert not breaker.allow()
    return breaker


@pytest.mark.benchmark(group="BreakerCore.allow() while open (rejection)")
def test_breaker_rejects_when_open(run_sync: Run, impl: SimpleNamespace) -> None:
    run_sync("b.allow()", b=_opened(impl))


@pytest.mark.benchmark(group="BreakerCore.acquire() while open (rejection)")
def test_breaker_acquire_rejects_when_open(run_sync: Run, impl: SimpleNamespace) -> None:
    run_sync("b.acquire()", b=_opened(impl))


# -- SemaphoreCore -------------------------------------------------------------


@pytest.mark.benchmark(group="SemaphoreCore try_acquire() + release()")
def test_semaphore_acquire_release(run_sync: Run, impl: SimpleNamespace) -> None:
    semaphore = impl.SemaphoreCore(10)
    run_sync("s.try_acquire()\ns.release()", s=semaphore)
    assert semaphore.rejected == 0
    assert semaphore.active == 0


# -- windows -------------------------------------------------------------------


@pytest.mark.benchmark(group="CountWindow.record(False)")
def test_count_window_record(run_sync: Run, impl: SimpleNamespace) -> None:
    run_sync("w.record(False)", w=impl.CountWindow(100))


@pytest.mark.benchmark(group="CountWindow.totals()")
def test_count_window_totals(run_sync: Run, impl: SimpleNamespace) -> None:
    window = impl.CountWindow(100)
    for i in range(150):
        window.record(i % 3 == 0)
    run_sync("w.totals()", w=window)


@pytest.mark.benchmark(group="TimeWindow.record(False)")
def test_time_window_record(run_sync: Run, impl: SimpleNamespace) -> None:
    run_sync("w.record(False)", w=impl.TimeWindow(60.0))


@pytest.mark.benchmark(group="TimeWindow.totals()")
def test_time_window_totals(run_sync: Run, impl: SimpleNamespace) -> None:
    window = impl.TimeWindow(60.0)
    for i in range(150):
        window.record(i % 3 == 0)
    run_sync("w.totals()", w=window)


# -- Counters ------------------------------------------------------------------


@pytest.mark.benchmark(group="Counters.add(0)")
def test_counters_add(run_sync: Run, impl: SimpleNamespace) -> None:
    run_sync("c.add(0)", c=impl.Counters(4))


@pytest.mark.benchmark(group="Counters.snapshot()")
def test_counters_snapshot(run_sync: Run, impl: SimpleNamespace) -> None:
    run_sync("c.snapshot()", c=impl.Counters(4))


# -- LatencySketch and TimeWindow's trailing sums ---------------------------------


@pytest.mark.benchmark(group="LatencySketch.add()")
def test_sketch_add(run_sync: Run, impl: SimpleNamespace) -> None:
    sketch = impl.LatencySketch()
    run_sync("s.add(0.0123)", s=sketch)
    assert sketch.count > 0


@pytest.mark.benchmark(group="LatencySketch.quantile(0.99), 10k values")
def test_sketch_quantile(run_sync: Run, impl: SimpleNamespace) -> None:
    sketch = impl.LatencySketch()
    for i in range(10_000):
        sketch.add(0.001 * (1 + i % 500))
    run_sync("s.quantile(0.99)", s=sketch)


@pytest.mark.benchmark(group="TimeWindow.trailing(300), 1-minute slices")
def test_time_window_trailing(run_sync: Run, impl: SimpleNamespace) -> None:
    window = impl.TimeWindow(21600.0, 360)
    window.add(10, 1)
    run_sync("w.trailing(300.0)", w=window)


@pytest.mark.benchmark(group="LatencyWindow.add(), 60 s in 6 slices")
def test_latency_window_add(run_sync: Run, impl: SimpleNamespace) -> None:
    window = impl.LatencyWindow(60.0)
    run_sync("w.add(0.0123)", w=window)
    assert window.count() > 0
