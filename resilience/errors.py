"""The exceptions resilience raises; every one subclasses ResilienceError."""

from __future__ import annotations

from typing import Any

__all__ = [
    "BulkheadFullError",
    "CircuitOpenError",
    "InjectedFault",
    "RateLimitExceeded",
    "ResilienceError",
    "RetryError",
    "TimeoutExceeded",
]


class ResilienceError(Exception):
    """Base class of every error raised by a resilience policy."""


class CircuitOpenError(ResilienceError):
    """The circuit breaker refused the call.

    ``retry_after`` is the number of seconds until a probe call may be let
    through (``inf`` while the breaker is forced open); ``Retry`` honours it.
    """

    def __init__(self, name: str | None, retry_after: float) -> None:
        self.name = name
        self.retry_after = retry_after
        label = f"circuit {name!r}" if name else "circuit"
        super().__init__(f"{label} is open; retry after {retry_after:.3f}s")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.retry_after))


class RateLimitExceeded(ResilienceError):
    """The rate limiter had no token within the allowed wait.

    ``retry_after`` is the number of seconds until one would be there.
    """

    def __init__(self, name: str | None, retry_after: float) -> None:
        self.name = name
        self.retry_after = retry_after
        label = f"rate limit {name!r}" if name else "rate limit"
        super().__init__(f"{label} exceeded; retry after {retry_after:.3f}s")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.retry_after))


class BulkheadFullError(ResilienceError):
    """The bulkhead had no free slot and no room (or time) to wait for one."""

    def __init__(self, name: str | None, max_concurrent: int, max_queue: int) -> None:
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        label = f"bulkhead {name!r}" if name else "bulkhead"
        super().__init__(
            f"{label} is full ({max_concurrent} concurrent, {max_queue} waiting at most)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.max_concurrent, self.max_queue))


class RetryError(ResilienceError):
    """Retries ran out on results that kept asking for a retry.

    ``attempts`` is how many calls were made, ``last_result`` what the last
    one returned; ``last_exception`` is None for result-based retries.
    """

    def __init__(
        self,
        attempts: int,
        last_result: Any = None,
        last_exception: BaseException | None = None,
    ) -> None:
        self.attempts = attempts
        self.last_result = last_result
        self.last_exception = last_exception
        super().__init__(f"gave up after {attempts} attempt(s); last result: {last_result!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.attempts, self.last_result, self.last_exception))


class TimeoutExceeded(ResilienceError, TimeoutError):
    """The call did not finish within its timeout (or the current deadline)."""

    def __init__(self, seconds: float, name: str | None = None) -> None:
        self.seconds = seconds
        self.name = name
        label = f"{name!r} " if name else ""
        super().__init__(f"{label}timed out after {seconds:.3f}s")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.seconds, self.name))


class InjectedFault(ResilienceError):
    """A failure injected on purpose by ``resilience.chaos``."""
