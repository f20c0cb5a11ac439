"""Typed use of the public API: checked by ``mypy --strict``, and runnable.

Every decorator must keep the signature of the function it wraps: the
``assert_type`` lines fail if a return type decays to ``Any``, and each wrong
call in ``wrong_calls`` carries a ``type: ignore[...]`` that strict mode
(``warn_unused_ignores``) reports as unused if the parameters were lost.

    mypy --strict tests/typing/usage.py     # the type check (.ci/run does this)
    python tests/typing/usage.py            # the same code, run (instant: FakeClock)

This file is not collected by pytest (its name does not start with test_).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if sys.version_info >= (3, 11):
    from typing import assert_type
elif TYPE_CHECKING:  # mypy checks as 3.10 (pyproject.toml); its typeshed has this
    from typing_extensions import assert_type
else:  # 3.10 at run time, without typing_extensions installed
    T = TypeVar("T")

    def assert_type(value: T, expected: object, /) -> T:
        return value


from resilience import (
    IMPLEMENTATION,
    AdaptiveRateLimiter,
    BreakerStats,
    Bulkhead,
    BulkheadStats,
    CircuitBreaker,
    CircuitState,
    Fallback,
    Pipeline,
    RateLimiter,
    RateLimiterStats,
    Retry,
    RetryStats,
    Timeout,
    TimeoutStats,
    TokenBucket,
    backoff,
    deadline,
    remaining,
)
from resilience.testing import FakeClock

clock = FakeClock()

breaker = CircuitBreaker("payments", failure_threshold=3, reset_timeout=10.0, clock=clock)
limiter = RateLimiter(100, per=1.0, clock=clock, sleep=clock.sleep)
adaptive = AdaptiveRateLimiter(10, min_rate=1, max_rate=100, clock=clock, sleep=clock.sleep)
bulkhead = Bulkhead(4, max_queue=2, max_wait=0.1)
retry = Retry(3, backoff=backoff.constant(0.5), clock=clock, sleep=clock.sleep)
timeout = Timeout(5.0)
fallback = Fallback(lambda *args, **kwargs: -1.0)
pipeline = Pipeline(limiter, retry, breaker, bulkhead)


# --- sync decorators: the decorated function keeps its parameters and result


@breaker
def charge(order_id: int, amount: float) -> str:
    return f"{order_id}:{amount:.2f}"


@limiter
def lookup(key: str, *, default: int = 0) -> int:
    return len(key) + default


@adaptive
def ping() -> bool:
    return True


@bulkhead
def render(template: str, **values: str) -> bytes:
    return template.format(**values).encode()


@retry
def fetch(url: str) -> dict[str, int]:
    return {url: 200}


@timeout
def compute(n: int) -> list[int]:
    return list(range(n))


@fallback
def price(sku: str) -> float:
    return float(len(sku))


@pipeline
def transfer(source: str, target: str, amount: int) -> tuple[str, str, int]:
    return source, target, amount


# --- async decorators: the decorated function stays a coroutine function


@breaker
async def acharge(order_id: int) -> str:
    return str(order_id)


@limiter
async def alookup(key: str) -> int:
    return len(key)


@bulkhead
async def arender(template: str) -> bytes:
    return template.encode()


@retry
async def afetch(url: str) -> dict[str, int]:
    return {url: 200}


@timeout
async def acompute(n: int) -> list[int]:
    await asyncio.sleep(0)
    return list(range(n))


@pipeline
async def atransfer(amount: int) -> int:
    return amount


class Client:
    """Decorators on methods bind like functions."""

    @retry
    def get(self, path: str) -> str:
        return path

    @breaker
    async def aget(self, path: str) -> str:
        return path


def sync_usage() -> None:
    assert_type(charge(1, 9.5), str)
    assert_type(lookup("abc"), int)
    assert_type(lookup("abc", default=1), int)
    assert_type(ping(), bool)
    assert_type(render("{x}", x="1"), bytes)
    assert_type(fetch("/"), dict[str, int])
    assert_type(compute(3), list[int])
    assert_type(price("sku"), float)
    assert_type(transfer("a", "b", 1), tuple[str, str, int])
    assert_type(Client().get("/"), str)

    # call() forms
    assert_type(breaker.call(charge, 2, 1.0), str)
    assert_type(retry.call(fetch, "/"), dict[str, int])
    assert_type(timeout.call(compute, 2), list[int])
    assert_type(pipeline.call(transfer, "a", "b", 2), tuple[str, str, int])

    # context managers and two-step forms
    with breaker:
        pass
    with limiter:
        pass
    with bulkhead:
        pass
    with deadline(1.0):
        assert_type(remaining(), float)
    for attempt in retry:
        with attempt:
            pass
    assert_type(breaker.allow(), bool)
    breaker.record_success()
    assert_type(limiter.try_acquire(), bool)
    assert_type(bulkhead.try_acquire(), bool)
    bulkhead.release()

    # state and stats
    assert_type(breaker.state, CircuitState)
    assert_type(breaker.stats, BreakerStats)
    assert_type(limiter.stats, RateLimiterStats)
    assert_type(bulkhead.stats, BulkheadStats)
    assert_type(retry.stats, RetryStats)
    assert_type(timeout.stats, TimeoutStats)

    # the core classes
    bucket = TokenBucket(10.0, 10.0, clock=clock)
    assert_type(bucket.try_acquire(), bool)
    assert_type(bucket.wait_time(2.0), float)
    assert_type(bucket.available, float)


async def async_usage() -> None:
    pending = assert_type(acharge(1), Coroutine[Any, Any, str])
    assert_type(await pending, str)
    assert_type(await alookup("k"), int)
    assert_type(await arender("t"), bytes)
    assert_type(await afetch("/"), dict[str, int])
    assert_type(await acompute(2), list[int])
    assert_type(await atransfer(3), int)
    assert_type(await Client().aget("/"), str)

    assert_type(await breaker.acall(acharge, 3), str)
    assert_type(await timeout.acall(acompute, 1), list[int])

    async with breaker:
        pass
    async with limiter:
        pass
    async with bulkhead:
        pass
    async with timeout:
        pass
    async for attempt in retry:
        with attempt:
            pass
    await limiter.aacquire()
    await bulkhead.aacquire()
    bulkhead.release()


async def wrong_calls() -> None:
    """Type-checked, never run: the parameters are kept, so each call is an error."""
    charge("1", 9.5)  # type: ignore[arg-type]
    charge(1)  # type: ignore[call-arg]
    lookup(1)  # type: ignore[arg-type]
    lookup("k", missing=1)  # type: ignore[call-arg]
    render("{x}", x=1)  # type: ignore[arg-type]
    fetch(b"/")  # type: ignore[arg-type]
    compute("3")  # type: ignore[arg-type]
    price(1)  # type: ignore[arg-type]
    transfer("a", "b", "1")  # type: ignore[arg-type]
    Client().get(1)  # type: ignore[arg-type]
    breaker.call(charge, 1, "x")  # type: ignore[arg-type]
    await acharge("1")  # type: ignore[arg-type]
    await afetch(1)  # type: ignore[arg-type]
    await acompute("2")  # type: ignore[arg-type]
    await atransfer("3")  # type: ignore[arg-type]
    await Client().aget(1)  # type: ignore[arg-type]
    await breaker.acall(acharge, "x")  # type: ignore[arg-type]


def main() -> None:
    sync_usage()
    asyncio.run(async_usage())
    print(f"typed usage ran (implementation: {IMPLEMENTATION})")


if __name__ == "__main__":
    main()
