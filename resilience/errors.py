"""The exceptions resilience raises; every one subclasses ResilienceError."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "BulkheadFullError",
    "CircuitOpenError",
    "InjectedFault",
    "LoadShedError",
    "RateLimitExceeded",
    "ResilienceError",
    "RetryError",
    "TimeoutExceeded",
]


class ResilienceError(Exception):
    """Base class of every error raised by a resilience policy."""


class _Refusal(ResilienceError):
    """A refusal raised on a hot path: ``(name, retry_after)`` are its args.

    No Python ``__init__`` runs and the message is formatted only when read,
    so refusing a call costs little more than the raise itself.
    """

    _what = ""  # "circuit": what refused
    _verb = ""  # " is open": how it says so

    if TYPE_CHECKING:

        def __init__(self, name: str | None, retry_after: float) -> None: ...

    @property
    def name(self) -> str | None:
        """The refusing policy's name."""
        return self.args[0]  # type: ignore[no-any-return]

    @property
    def retry_after(self) -> float:
        """Seconds until a call may be let through; ``Retry`` honours it."""
        return self.args[1]  # type: ignore[no-any-return]

    def __str__(self) -> str:
        name, retry_after = self.args
        label = f"{self._what} {name!r}" if name else self._what
        return f"{label}{self._verb}; retry after {retry_after:.3f}s"


class CircuitOpenError(_Refusal):
    """The circuit breaker refused the call.

    ``retry_after`` is the number of seconds until a probe call may be let
    through (``inf`` while the breaker is forced open).
    """

    _what = "circuit"
    _verb = " is open"


class RateLimitExceeded(_Refusal):
    """The rate limiter had no token within the allowed wait.

    ``retry_after`` is the number of seconds until one would be there.
    """

    _what = "rate limit"
    _verb = " exceeded"


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


class LoadShedError(ResilienceError):
    """A request was shed: the degradation level is too high for its criticality."""

    def __init__(self, criticality: str, level: str) -> None:
        self.criticality = criticality
        self.level = level
        super().__init__(f"{criticality} request shed at degradation level {level!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.criticality, self.level))
