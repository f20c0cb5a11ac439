"""Fallback: a value instead of an error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _core
from ._policy import NEVER_FAILURES, Policy, Replace, check_name, check_on

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
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        self._handler = handler
        self._matches = check_on(on)
        self._name = check_name(name)
        self._counts = _core.SELECTED.Counters(2)  # CALLS, FALLBACKS

    @property
    def stats(self) -> FallbackStats:
        return FallbackStats(self._name, *self._counts.snapshot())

    # -- the protocol: the arguments are kept, for the handler ----------------------

    def _enter(self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None) -> Any:
        self._counts.add(CALLS)
        return args, kwargs

    def _exit(self, token: Any, error: BaseException | None, result: Any) -> Replace | None:
        if error is None or isinstance(error, NEVER_FAILURES) or not self._matches(error):
            return None
        self._counts.add(FALLBACKS)
        args, kwargs = token
        return Replace(self._handler(error, *args, **kwargs))

    def __repr__(self) -> str:
        return f"<Fallback name={self._name!r} handler={self._handler!r}>"
