"""Per-call wrappers of the policies, pure-Python twins of ``_calls_c.pyx``.

Each one simply runs its policy's own ``call``; the compiled twins do the
same work with the fast path in C.
"""

from __future__ import annotations

from types import MethodType
from typing import Any


class PolicyCall:
    """``fn`` run through ``policy.call``, binding like a function."""

    __slots__ = ("__dict__", "_call", "_fn")

    def __init__(self, policy: Any, fn: Any) -> None:
        self._call = policy.call
        self._fn = fn

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        return self._call(self._fn, *args, **kwargs)

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        # Bind like a function, so decorated methods receive ``self``.
        return self if obj is None else MethodType(self, obj)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._fn!r}>"


class BreakerCall(PolicyCall):
    """``fn`` protected by a circuit breaker policy (made by ``CircuitBreaker``)."""

    __slots__ = ()


class LimiterCall(PolicyCall):
    """``fn`` behind a rate limiter policy (made by ``RateLimiter``): one token a call."""

    __slots__ = ()


class RetryCall(PolicyCall):
    """``fn`` retried by a Retry policy (made by ``Retry``)."""

    __slots__ = ()


class BulkheadCall(PolicyCall):
    """``fn`` holding a bulkhead permit (made by ``Bulkhead``)."""

    __slots__ = ()


class BulkheadGate:
    """Base of ``Bulkhead``: its ``with`` form (the compiled twin's fast path is in C)."""

    __slots__ = ()

    def _bind_core(self, core: Any) -> None:
        pass  # the compiled twin keeps the core in a C field

    def __enter__(self) -> Any:
        self.acquire()  # type: ignore[attr-defined]
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.release()  # type: ignore[attr-defined]

    async def __aenter__(self) -> None:
        await self.aacquire()  # type: ignore[attr-defined]

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.release()  # type: ignore[attr-defined]
