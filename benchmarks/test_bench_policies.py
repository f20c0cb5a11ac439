"""The policies, sync and async, each on the compiled ``[cython]`` and pure ``[python]`` core.

One round runs the statement 1000 times (async: 1000 awaits in one
coroutine): a round's time in microseconds is nanoseconds per operation, to
be set against the ``baseline`` group (see conftest.py).
"""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from resilience import (
    AdaptiveRateLimiter,
    Bulkhead,
    Chaos,
    CircuitBreaker,
    CircuitOpenError,
    DegradationManager,
    ErrorBudget,
    Fallback,
    HealthCheck,
    LatencyBudget,
    Pipeline,
    RateLimiter,
    Retry,
    Timeout,
)
from resilience._tools import workload
from resilience._tools.timing import af, f
from resilience._tools.workload import AREJECT, HUGE, REJECT, failing
from resilience.chaos import latency
from resilience.testing import FakeClock

Run = Any


# -- CircuitBreaker ------------------------------------------------------------


@pytest.mark.benchmark(group="CircuitBreaker decorator, closed (sync)")
def test_breaker_closed(run_sync: Run, policies: SimpleNamespace) -> None:
    breaker = CircuitBreaker()
    run_sync("g()", g=breaker(f))
    assert breaker.stats.total_calls >= 1000


@pytest.mark.benchmark(group="CircuitBreaker decorator, closed (async)")
def test_breaker_closed_async(run_async: Run, policies: SimpleNamespace) -> None:
    run_async("await g()", g=CircuitBreaker()(af))


@pytest.mark.benchmark(group="CircuitBreaker with-block, closed (sync)")
def test_breaker_with(run_sync: Run, policies: SimpleNamespace) -> None:
    run_sync("with b:\n    pass", b=CircuitBreaker())


@pytest.mark.benchmark(group="CircuitBreaker rejection while open (sync)")
def test_breaker_open(run_sync: Run, policies: SimpleNamespace) -> None:
    run_sync(REJECT, **workload.opened(workload.breaker(), CircuitOpenError))


@pytest.mark.benchmark(group="CircuitBreaker rejection while open (async)")
def test_breaker_open_async(run_async: Run, policies: SimpleNamespace) -> None:
    opened = workload.opened(workload.breaker(), CircuitOpenError, is_async=True)
    run_async(AREJECT, **opened)


# -- RateLimiter, AdaptiveRateLimiter ------------------------------------------


@pytest.mark.benchmark(group="RateLimiter decorator, allowed (sync)")
def test_limiter_decorator(run_sync: Run, policies: SimpleNamespace) -> None:
    limiter = RateLimiter(HUGE)
    run_sync("g()", g=limiter(f))
    assert limiter.stats.rejected == 0


@pytest.mark.benchmark(group="RateLimiter.try_acquire(), allowed")
def test_limiter_try_acquire(run_sync: Run, policies: SimpleNamespace) -> None:
    limiter = RateLimiter(HUGE)
    run_sync("l.try_acquire()", l=limiter)
    assert limiter.stats.rejected == 0


@pytest.mark.benchmark(group="RateLimiter decorator, allowed (async)")
def test_limiter_decorator_async(run_async: Run, policies: SimpleNamespace) -> None:
    run_async("await g()", g=RateLimiter(HUGE)(af))


@pytest.mark.benchmark(group="RateLimiter.aacquire(), allowed")
def test_limiter_aacquire(run_async: Run, policies: SimpleNamespace) -> None:
    run_async("await l.aacquire()", l=RateLimiter(HUGE))


def _adaptive() -> AdaptiveRateLimiter:
    return AdaptiveRateLimiter(HUGE, min_rate=1.0, max_rate=10 * HUGE)


@pytest.mark.benchmark(group="AdaptiveRateLimiter decorator, allowed (sync)")
def test_adaptive_decorator(run_sync: Run, policies: SimpleNamespace) -> None:
    limiter = _adaptive()
    run_sync("g()", g=limiter(f))
    assert limiter.stats.rejected == 0


@pytest.mark.benchmark(group="AdaptiveRateLimiter.try_acquire(), allowed")
def test_adaptive_try_acquire(run_sync: Run, policies: SimpleNamespace) -> None:
    run_sync("l.try_acquire()", l=_adaptive())


@pytest.mark.benchmark(group="AdaptiveRateLimiter decorator, allowed (async)")
def test_adaptive_decorator_async(run_async: Run, policies: SimpleNamespace) -> None:
    run_async("await g()", g=_adaptive()(af))


# -- Bulkhead ------------------------------------------------------------------


@pytest.mark.benchmark(group="Bulkhead with-block, free")
def test_bulkhead_with(run_sync: Run, policies: SimpleNamespace) -> None:
    bulkhead = Bulkhead(10)
    run_sync("with b:\n    pass", b=bulkhead)
    assert bulkhead.stats.rejected == 0


@pytest.mark.benchmark(group="Bulkhead async with, free")
def test_bulkhead_async_with(run_async: Run, policies: SimpleNamespace) -> None:
    run_async("async with b:\n    pass", b=Bulkhead(10))


@pytest.mark.benchmark(group="Bulkhead decorator, free (sync)")
def test_bulkhead_decorator(run_sync: Run, policies: SimpleNamespace) -> None:
    run_sync("g()", g=Bulkhead(10)(f))


@pytest.mark.benchmark(group="Bulkhead decorator, free (async)")
def test_bulkhead_decorator_async(run_async: Run, policies: SimpleNamespace) -> None:
    run_async("await g()", g=Bulkhead(10)(af))


# -- Retry ---------------------------------------------------------------------


@pytest.mark.benchmark(group="Retry decorator, success first try (sync)")
def test_retry_decorator(run_sync: Run, policies: SimpleNamespace) -> None:
    run_sync("g()", g=Retry(3)(f))


@pytest.mark.benchmark(group="Retry decorator, success first try (async)")
def test_retry_decorator_async(run_async: Run, policies: SimpleNamespace) -> None:
    run_async("await g()", g=Retry(3)(af))


# -- Timeout -------------------------------------------------------------------


@pytest.mark.benchmark(group="Timeout async with, not reached")
def test_timeout_async_with(run_async: Run, policies: SimpleNamespace) -> None:
    run_async("async with t:\n    await af()", t=Timeout(60.0), af=af)


@pytest.mark.benchmark(group="Timeout decorator, not reached (async)")
def test_timeout_decorator_async(run_async: Run, policies: SimpleNamespace) -> None:
    run_async("await g()", g=Timeout(60.0)(af))


@pytest.mark.benchmark(group="Timeout async with, not reached")
@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is new in 3.11")
def test_asyncio_timeout_reference(run_async: Run) -> None:
    """The standard library's own scope, for scale: it schedules and cancels a timer too."""
    run_async("async with timeout(60.0):\n    await af()", timeout=asyncio.timeout, af=af)


# -- Fallback ------------------------------------------------------------------


def _handler(exc: BaseException) -> int:
    return 0


@pytest.mark.benchmark(group="Fallback decorator, no failure (sync)")
def test_fallback_pass_through(run_sync: Run, policies: SimpleNamespace) -> None:
    run_sync("g()", g=Fallback(_handler)(f))


@pytest.mark.benchmark(group="Fallback decorator, failure replaced (sync)")
def test_fallback_taken(run_sync: Run, policies: SimpleNamespace) -> None:
    g = Fallback(_handler)(failing)
    assert g() == 0
    run_sync("g()", g=g)


@pytest.mark.benchmark(group="Fallback decorator, no failure (async)")
def test_fallback_pass_through_async(run_async: Run, policies: SimpleNamespace) -> None:
    run_async("await g()", g=Fallback(_handler)(af))


# -- Pipeline ------------------------------------------------------------------


def _pipeline() -> Pipeline:
    return Pipeline(CircuitBreaker(), RateLimiter(HUGE), Bulkhead(10), Retry(3))


@pytest.mark.benchmark(group="Pipeline breaker+limiter+bulkhead+retry (sync)")
def test_pipeline(run_sync: Run, policies: SimpleNamespace) -> None:
    run_sync("g()", g=_pipeline()(f))


@pytest.mark.benchmark(group="Pipeline breaker+limiter+bulkhead+retry (async)")
def test_pipeline_async(run_async: Run, policies: SimpleNamespace) -> None:
    run_async("await g()", g=_pipeline()(af))


# -- Chaos ---------------------------------------------------------------------


@pytest.mark.benchmark(group="Chaos disabled (sync)")
def test_chaos_disabled(run_sync: Run, policies: SimpleNamespace) -> None:
    chaos = Chaos(latency(1.0), enabled=False)
    run_sync("g()", g=chaos(f))
    assert chaos.stats["latency"] == 0


@pytest.mark.benchmark(group="Chaos disabled (async)")
def test_chaos_disabled_async(run_async: Run, policies: SimpleNamespace) -> None:
    run_async("await g()", g=Chaos(latency(1.0), enabled=False)(af))


# -- the operations layer: budgets, shedding, health -------------------------------


@pytest.mark.benchmark(group="ErrorBudget.record(True), 30-day window")
def test_error_budget_record(run_sync: Run, policies: SimpleNamespace) -> None:
    budget = ErrorBudget(0.999)
    run_sync("b.record(True)", b=budget)
    assert budget.remaining == 1.0


@pytest.mark.benchmark(group="ErrorBudget.record(), a minute apart, 30-day window")
def test_error_budget_record_a_minute_apart(run_sync: Run, policies: SimpleNamespace) -> None:
    # Every record lands in a new minute, so the windows turn over on every
    # call: a record must stay O(1) however many days of traffic the window
    # holds (one that scanned the window would cost thousands of times more).
    clock = FakeClock()
    budget = ErrorBudget(0.999, clock=clock)
    run_sync("c.advance(60.0)\nb.record(False)", c=clock, b=budget)
    assert budget.stats.bad == budget.stats.total > 0


@pytest.mark.benchmark(group="ErrorBudget.alerts(), 30-day window")
def test_error_budget_alerts(run_sync: Run, policies: SimpleNamespace) -> None:
    budget = ErrorBudget(0.999)
    budget.record(True, 1000)
    run_sync("b.alerts()", b=budget)


@pytest.mark.benchmark(group="LatencyBudget.record(), no window")
def test_latency_budget_record(run_sync: Run, policies: SimpleNamespace) -> None:
    run_sync("b.record(0.0123)", b=LatencyBudget(0.1))


@pytest.mark.benchmark(group="LatencyBudget.record(), 60 s window")
def test_latency_budget_record_windowed(run_sync: Run, policies: SimpleNamespace) -> None:
    run_sync("b.record(0.0123)", b=LatencyBudget(0.1, window=60.0))


@pytest.mark.benchmark(group="DegradationManager admission decorator, admitted")
def test_shedding_admitted(run_sync: Run, policies: SimpleNamespace) -> None:
    manager = DegradationManager()
    run_sync("g()", g=manager.admission()(f))


@pytest.mark.benchmark(group="HealthCheck.run(), sync probe (worker thread)")
def test_health_check_run(run_sync: Run, policies: SimpleNamespace) -> None:
    check = HealthCheck("always", lambda: True)
    run_sync("c.run()", c=check)
    assert check.status.value == "UP"
