"""Fallback: a value instead of an error."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import _core
from ._policy import NEVER_FAILURES, P, Policy, R, check_callable, check_name, check_on

__all__ = ["Fallback", "FallbackStats"]

@dataclass(frozen=True)
class FallbackStats:
    """Lifetime counts of a Fallback."""

    name: str | None
    calls: int
    fallbacks: int  # calls answered by the handler


CALLS, FALLBACKS = range(2)


class Fallback(Policy):
    """When the call raises one of ``on``, return ``handler(exc, *args, **kwargs)`` instead.

    ``on`` is exception types or a predicate on the exception. For async
    calls an awaitable the handler returns is awaited. Cancellation and
    interrupts are never replaced.
    """

    __slots__ = ("_counts", "_handler", "_matches", "_name")

    def __init__(
        self,
        handler: Callable[..., Any],
        *,
        on: type[BaseException]
        | tuple[type[BaseException], ...]
        | Callable[[BaseException], bool] = Exception,
        name: str | None = None,
    ) -> None:
        if handler is None:
            raise TypeError("handler must be callable, got None")
        self._handler = check_callable("handler", handler)
        self._matches = check_on(on)
        self._name = check_name(name)
        self._counts = _core.SELECTED.Counters(2)  # CALLS, FALLBACKS

    @property
    def stats(self) -> FallbackStats:
        return FallbackStats(self._name, *self._counts.snapshot())

    def _replaces(self, exc: BaseException) -> bool:
        if isinstance(exc, NEVER_FAILURES):
            return False
        replaced = self._matches(exc)
        if replaced:
            self._counts.add(FALLBACKS)
        return replaced

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)``, or the handler's value when it raises one of ``on``."""
        self._counts.add(CALLS)
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            if not self._replaces(exc):
                raise
            return self._handler(exc, *args, **kwargs)  # type: ignore[no-any-return]

    async def acall(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """``await fn(*args, **kwargs)``, or the handler's (awaited) value."""
        self._counts.add(CALLS)
        try:
            return await fn(*args, **kwargs)
        except BaseException as exc:
            if not self._replaces(exc):
                raise
            value = self._handler(exc, *args, **kwargs)
            return await value if inspect.isawaitable(value) else value  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<Fallback name={self._name!r} handler={self._handler!r}>"
