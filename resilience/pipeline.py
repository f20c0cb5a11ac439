"""Pipeline: several policies composed into one, outermost first."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any

from ._policy import P, Policy, R, check_name, pop_entry, push_entry

__all__ = ["Pipeline"]

class Pipeline(Policy):
    """``Pipeline(a, b, c)`` runs a call as ``a`` around ``b`` around ``c`` around it.

    As a decorator it wraps once (each policy's own, compiled where it has
    one, wrapper around the next); ``call`` / ``acall`` compose per call. It
    is a context manager (``with`` / ``async with``) only when every member
    is one of that kind: members are entered in order and left in reverse.
    """

    __slots__ = ("_name", "policies")

    def __init__(self, *policies: Policy, name: str | None = None) -> None:
        for policy in policies:
            if not isinstance(policy, Policy):
                raise TypeError(f"Pipeline takes policies, got {policy!r}")
        self.policies = policies
        self._name = check_name(name)

    def _wrap_sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        for policy in reversed(self.policies):
            fn = policy._wrap_sync(fn)
        return fn

    def _wrap_async(
        self, fn: Callable[P, Awaitable[R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        wrapped = fn
        for policy in reversed(self.policies):
            wrapped = policy._wrap_async(wrapped)
        return wrapped  # type: ignore[return-value]

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)`` through every policy, the first outermost."""
        inner: Callable[..., Any] = fn
        for policy in reversed(self.policies):
            inner = functools.partial(policy.call, inner)
        return inner(*args, **kwargs)  # type: ignore[no-any-return]

    async def acall(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """``await fn(*args, **kwargs)`` through every policy, the first outermost."""
        inner: Callable[..., Any] = fn
        for policy in reversed(self.policies):
            inner = functools.partial(policy.acall, inner)
        return await inner(*args, **kwargs)  # type: ignore[no-any-return]

    @property
    def stats(self) -> tuple[Any, ...]:
        """Each member's stats, outermost first."""
        return tuple(policy.stats for policy in self.policies)  # type: ignore[attr-defined]

    def _members_with(self, method: str) -> None:
        for policy in self.policies:
            if not hasattr(policy, method):
                form = "async with" if method.startswith("__a") else "with"
                raise TypeError(f"{policy!r} has no `{form}` form, so this pipeline has none")

    def __enter__(self) -> Pipeline:
        self._members_with("__enter__")
        with contextlib.ExitStack() as stack:
            for policy in self.policies:
                stack.enter_context(policy)  # type: ignore[arg-type]
            push_entry(self, stack.pop_all())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        stack: contextlib.ExitStack = pop_entry(self)
        return bool(stack.__exit__(exc_type, exc, tb))

    async def __aenter__(self) -> Pipeline:
        self._members_with("__aenter__")
        async with contextlib.AsyncExitStack() as stack:
            for policy in self.policies:
                await stack.enter_async_context(policy)  # type: ignore[arg-type]
            push_entry(self, stack.pop_all())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        stack: contextlib.AsyncExitStack = pop_entry(self)
        return bool(await stack.__aexit__(exc_type, exc, tb))

    def __repr__(self) -> str:
        members = ", ".join(map(repr, self.policies))
        return f"Pipeline({members}, name={self._name!r})" if self._name else f"Pipeline({members})"
