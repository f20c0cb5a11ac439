"""The exceptions resilience raises, defined here so the core depends on nothing above it.

``resilience.errors`` re-exports every one of them; that is where users
import them from (each reports ``resilience.errors`` as its module, so
reprs and pickles name the public path).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "BulkheadFullError",
    "CircuitOpenError",
    "InjectedFault",
    "LoadShedError",
    "RateLimitExceeded",
    "RejectedError",
    "ResilienceError",
    "RetryError",
    "TimeoutExceeded",
]

class ResilienceError(Exception):
    """Base class of every error raised by a resilience policy."""


class RejectedError(ResilienceError):
    """A policy refused the call before it ran: the base of every refusal.

    ``name`` is the refusing policy's name; ``retry_after`` the seconds
    until a call may be let through — ``math.inf`` when that will not happen
    by itself (a breaker forced open), ``None`` when it is not known.

    Its args are ``(name, retry_after)``, so hot paths can build one with
    ``cls.__new__(cls, name, retry_after)`` and skip ``__init__``; the
    message is formatted only when read.
    """

    _what = "call"  # what refused: "circuit", "rate limit"...
    _verb = " rejected"  # how it says so

    def __init__(self, name: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(name, retry_after)

    @property
    def name(self) -> str | None:
        """The refusing policy's name."""
        name: str | None = self.args[0] if self.args else None
        return name

    @property
    def retry_after(self) -> float | None:
        """Seconds until a call may be let through; ``Retry`` waits that long."""
        seconds: float | None = self.args[1] if len(self.args) > 1 else None
        return seconds

    def _label(self) -> str:
        name = self.name
        return f"{self._what} {name!r}" if name else self._what

    def _when(self) -> str:
        retry_after = self.retry_after
        if retry_after is None:
            return ""
        if retry_after == math.inf:
            return "; it will not end by itself"
        return f"; retry after {retry_after:.3f}s"

    def __str__(self) -> str:
        return f"{self._label()}{self._verb}{self._when()}"


class CircuitOpenError(RejectedError):
    """The circuit breaker refused the call.

    ``retry_after`` is the number of seconds until a probe call may be let
    through (``inf`` while the breaker is forced open, ``None`` while a
    health check holds it open).
    """

    _what = "circuit"
    _verb = " is open"


class RateLimitExceeded(RejectedError):
    """The rate limiter had no token within the allowed wait.

    ``retry_after`` is the number of seconds until one would be there.
    """

    _what = "rate limit"
    _verb = " exceeded"


class BulkheadFullError(RejectedError):
    """The bulkhead had no free slot and no room (or time) to wait for one.

    ``retry_after`` is ``None``: a permit comes back when a holder leaves,
    which no clock can tell.
    """

    _what = "bulkhead"
    _verb = " is full"

    def __init__(
        self,
        name: str | None,
        max_concurrent: int,
        max_queue: int,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(name, retry_after)
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue

    def __str__(self) -> str:
        return (
            f"{self._label()}{self._verb} ({self.max_concurrent} concurrent,"
            f" {self.max_queue} waiting at most){self._when()}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.name, self.max_concurrent, self.max_queue),
                           {"retry_after": self.retry_after}))


class LoadShedError(RejectedError):
    """A request was shed: the degradation level is too high for its criticality.

    ``name`` is the degradation manager's name; ``retry_after`` is ``None``
    (the level falls when its triggers stop asking, which no clock can tell).
    """

    _what = "request"
    _verb = " shed"

    def __init__(
        self,
        criticality: str,
        level: str,
        *,
        name: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(name, retry_after)
        self.criticality = criticality
        self.level = level

    def __str__(self) -> str:
        by = f" by {self.name!r}" if self.name else ""
        return (
            f"{self.criticality} request shed{by} at degradation level {self.level!r}"
            f"{self._when()}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.criticality, self.level),
                           {"name": self.name, "retry_after": self.retry_after}))


def _rebuild(kind: type[BaseException], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Unpickles errors whose constructors take keywords."""
    return kind(*args, **kwargs)


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


for _error in (
    ResilienceError,
    RejectedError,
    CircuitOpenError,
    RateLimitExceeded,
    BulkheadFullError,
    LoadShedError,
    RetryError,
    TimeoutExceeded,
    InjectedFault,
):
    _error.__module__ = "resilience.errors"
