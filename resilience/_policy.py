"""What every policy shares: the decorator forms and the checks of common arguments.

A policy implements ``call(fn, *args, **kwargs)`` and ``acall(...)``; this
base turns them into a decorator for ``def`` and ``async def`` functions
(methods included: the wrapper is a plain function, so it binds like one).
A policy with a faster compiled wrapper overrides ``_wrap_sync``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from types import MethodType
from typing import Any, ParamSpec, TypeVar, overload

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("resilience")

# Never a failure and never retried, whatever ``record`` / ``on`` say: the
# caller is being cancelled or the process is stopping.
NEVER_FAILURES: tuple[type[BaseException], ...] = (
    asyncio.CancelledError,
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
)


class SyncEntry:
    """``async with`` that does what ``with`` does: for entries that never wait."""

    __slots__ = ()

    async def __aenter__(self) -> Any:
        return self.__enter__()  # type: ignore[attr-defined]

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        return self.__exit__(exc_type, exc, tb)  # type: ignore[attr-defined]


class AsyncCall(functools.partial):  # type: ignore[type-arg]
    """``policy.acall`` bound to one function: the async decorator's result.

    Calling it makes the ``acall`` coroutine itself, so a decorated call is
    one coroutine deep, not two. ``inspect.iscoroutinefunction`` sees
    through partials to ``acall``; ``__get__`` makes it bind like a function,
    so it decorates methods too.
    """

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        return self if instance is None else MethodType(self, instance)


class Policy:
    """Base of the policies: ``policy(fn)`` wraps ``fn`` with ``call`` / ``acall``."""

    __slots__ = ()
    _name: str | None

    @property
    def name(self) -> str | None:
        """The name given at construction (used in errors, stats and metrics)."""
        return self._name

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        if not callable(fn):
            raise TypeError(f"{type(self).__name__} decorates a callable, got {fn!r}")
        if inspect.iscoroutinefunction(fn):
            return self._wrap_async(fn)
        return self._wrap_sync(fn)

    def _wrap_sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        call = self.call

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return call(fn, *args, **kwargs)

        return wrapper

    def _wrap_async(
        self, fn: Callable[P, Awaitable[R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        wrapper = AsyncCall(type(self).acall, self, fn)
        functools.update_wrapper(wrapper, fn)
        return wrapper

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        raise NotImplementedError

    async def acall(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        raise NotImplementedError


# What ``with policy:`` blocks of this thread or task took on entry, for their
# exit to settle: (policy, value) pairs, innermost last. A context variable,
# so threads and asyncio tasks sharing one policy each see their own.
_entries: ContextVar[tuple[tuple[object, Any], ...]] = ContextVar(
    "resilience_entries", default=()
)


def push_entry(owner: object, value: Any) -> None:
    """Remember ``value`` for the ``__exit__`` of ``owner``'s innermost block here."""
    _entries.set((*_entries.get(), (owner, value)))


def pop_entry(owner: object) -> Any:
    """The value ``push_entry`` kept for ``owner``'s innermost open block here."""
    entries = _entries.get()
    if entries and entries[-1][0] is owner:  # blocks nest: the innermost is the usual one
        _entries.set(entries[:-1])
        return entries[-1][1]
    for i in range(len(entries) - 2, -1, -1):
        if entries[i][0] is owner:
            _entries.set(entries[:i] + entries[i + 1 :])
            return entries[i][1]
    raise RuntimeError("__exit__ without a matching __enter__ in this thread or task")


def check_name(name: object) -> str | None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {name!r}")
    return name


def check_exception_types(
    argument: str, value: object
) -> tuple[type[BaseException], ...]:
    """An exception class or a tuple of them, as a tuple."""
    types = value if isinstance(value, tuple) else (value,)
    for kind in types:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise TypeError(
                f"{argument} must be an exception class or a tuple of them, got {value!r}"
            )
    return types


def check_on(value: object) -> Callable[[BaseException], bool]:
    """``on=``: exception classes (a class or a tuple) or a predicate on the exception.

    Returns the test to apply to an exception. A class that is not an
    exception is neither, though it is callable.
    """
    if isinstance(value, (tuple, type)):
        types = check_exception_types("on", value)
        return lambda exc: isinstance(exc, types)
    if callable(value):
        return lambda exc: bool(value(exc))
    raise TypeError(f"on must be an exception class, a tuple of them or a predicate, got {value!r}")


def check_callable(argument: str, value: object) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{argument} must be callable or None, got {value!r}")
    return value


def sleep_with(sleep: Callable[[float], Any] | None, seconds: float) -> None:
    """Sleep in sync code: with ``sleep``, unless it is None or a coroutine function."""
    if sleep is None or inspect.iscoroutinefunction(sleep):
        time.sleep(seconds)
    else:
        sleep(seconds)


async def asleep_with(sleep: Callable[[float], Any] | None, seconds: float) -> None:
    """Sleep in async code: with ``sleep`` if it is a coroutine function, else asyncio.sleep."""
    if sleep is not None and inspect.iscoroutinefunction(sleep):
        await sleep(seconds)
    else:
        await asyncio.sleep(seconds)


C = TypeVar("C", bound=Callable[..., object])


def add_listener(listeners: list[C], callback: C) -> C:
    """Append a listener after checking it can be called; returns it (for decorators)."""
    if not callable(callback):
        raise TypeError(f"callback must be callable, got {callback!r}")
    listeners.append(callback)
    return callback


def notify(callbacks: list[Callable[..., object]], *args: object) -> None:
    """Call each listener; one that raises is logged and the others still run."""
    for callback in callbacks:
        try:
            callback(*args)
        except Exception:
            logger.exception("resilience listener %r failed", callback)
