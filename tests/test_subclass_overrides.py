"""A subclass that overrides ``call`` / ``acall``, ``acquire`` / ``aacquire`` or
``release`` is honoured by every form, on both twins.

The fast paths (compiled or pure wrappers, the ``with`` gates) stand in for
those methods only while a class keeps the base's own: an override must see
every call — through the decorator (on ``def`` and ``async def``), the
method itself, ``with`` / ``async with`` and a Pipeline. The contract is
docs/architecture.md ("The protocol", "How to add a policy").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from resilience import Bulkhead, CircuitBreaker, Pipeline, RateLimiter, Retry


class Log:
    """What the overrides saw, in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []


def calls_logged(base: type[Any], log: Log) -> type[Any]:
    """A subclass of ``base`` whose ``call`` and ``acall`` log themselves."""

    class Logging(base):  # type: ignore[misc,valid-type]
        def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            log.seen.append("call")
            return super().call(fn, *args, **kwargs)

        async def acall(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            log.seen.append("acall")
            return await super().acall(fn, *args, **kwargs)

    return Logging


def make_breaker(log: Log) -> CircuitBreaker:
    breaker: CircuitBreaker = calls_logged(CircuitBreaker, log)()
    return breaker


def make_retry(log: Log) -> Retry:
    retry: Retry = calls_logged(Retry, log)(2)
    return retry


def make_limiter(log: Log) -> RateLimiter:
    class LoggingLimiter(RateLimiter):
        def acquire(self, tokens: float = 1, timeout: float | None = None) -> None:
            log.seen.append("acquire")
            super().acquire(tokens, timeout)

        async def aacquire(self, tokens: float = 1, timeout: float | None = None) -> None:
            log.seen.append("aacquire")
            await super().aacquire(tokens, timeout)

    return LoggingLimiter(1000)


def make_bulkhead(log: Log) -> Bulkhead:
    class LoggingBulkhead(Bulkhead):
        def acquire(self, timeout: float | None = None) -> None:
            log.seen.append("acquire")
            super().acquire(timeout)

        async def aacquire(self, timeout: float | None = None) -> None:
            log.seen.append("aacquire")
            await super().aacquire(timeout)

        def release(self) -> None:
            log.seen.append("release")
            super().release()

    return LoggingBulkhead(2)


# policy -> (factory, what a sync call must log, what an async call must log)
POLICIES: dict[str, tuple[Callable[[Log], Any], list[str], list[str]]] = {
    "CircuitBreaker.call": (make_breaker, ["call"], ["acall"]),
    "Retry.call": (make_retry, ["call"], ["acall"]),
    "RateLimiter.acquire": (make_limiter, ["acquire"], ["aacquire"]),
    "Bulkhead.acquire/release": (make_bulkhead, ["acquire", "release"], ["aacquire", "release"]),
}
WITH_FORMS = {"RateLimiter.acquire", "Bulkhead.acquire/release"}


def sync_forms(policy: Any, kind: str) -> dict[str, Callable[[], int]]:
    def f(x: int = 1) -> int:
        return x

    forms: dict[str, Callable[[], int]] = {
        "decorator": lambda: policy(f)(),
        "method": lambda: Method.make(policy)().get(),
        "pipeline": lambda: Pipeline(policy)(f)(),
        "pipeline of two": lambda: Pipeline(CircuitBreaker(), policy)(f)(),
    }
    if kind in WITH_FORMS:

        def block() -> int:
            with policy:
                return 1

        forms["with"] = block
    return forms


def async_forms(policy: Any, kind: str) -> dict[str, Callable[[], Any]]:
    async def af(x: int = 1) -> int:
        return x

    forms: dict[str, Callable[[], Any]] = {
        "decorator": lambda: policy(af)(),
        "pipeline": lambda: Pipeline(policy)(af)(),
        "pipeline of two": lambda: Pipeline(CircuitBreaker(), policy)(af)(),
    }
    if kind in WITH_FORMS:

        async def block() -> int:
            async with policy:
                return 1

        forms["async with"] = block
    return forms


class Method:
    @staticmethod
    def make(policy: Any) -> type:
        class Client:
            @policy
            def get(self) -> int:
                return 1

        return Client


@pytest.mark.parametrize("kind", list(POLICIES))
def test_sync_forms_go_through_the_override(policy_impl: Any, kind: str) -> None:
    factory, expected, _ = POLICIES[kind]
    for form, run in sync_forms(factory(log := Log()), kind).items():
        log.seen.clear()
        assert run() == 1
        assert log.seen == expected, form


@pytest.mark.parametrize("kind", list(POLICIES))
def test_async_forms_go_through_the_override(policy_impl: Any, kind: str) -> None:
    factory, _, expected = POLICIES[kind]
    for form, run in async_forms(factory(log := Log()), kind).items():
        log.seen.clear()
        assert asyncio.run(run()) == 1
        assert log.seen == expected, form
