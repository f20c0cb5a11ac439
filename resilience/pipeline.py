"""Pipeline: several policies composed into one, outermost first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._policy import Block, Policy, check_name, runs_calls_itself

__all__ = ["Pipeline", "PipelineStats"]


@dataclass(frozen=True)
class PipelineStats:
    """A snapshot of a pipeline: each member's stats, outermost first."""

    name: str | None
    members: tuple[Any, ...]


Plan = tuple[tuple[Policy, ...], tuple[bool, ...]]


def _plan(policies: tuple[Policy, ...], asynchronous: bool) -> Plan:
    """The members a call goes through, nested pipelines flattened, and which run calls
    themselves (the drivers hand those the rest of the call)."""
    members: list[Policy] = []
    delegates: list[bool] = []
    for policy in policies:
        if runs_calls_itself(policy, asynchronous):
            members.append(policy)
            delegates.append(True)
        else:
            inner, inner_delegates = policy._plan(asynchronous)
            members.extend(inner)
            delegates.extend(inner_delegates)
    return tuple(members), tuple(delegates)


class Pipeline(Block, Policy):
    """``Pipeline(a, b, c)`` runs a call as ``a`` around ``b`` around ``c`` around it.

    ``call`` / ``acall`` and the ``with`` forms run every member's steps of
    the protocol in one go. As a decorator it wraps once: each member's own
    decorator (compiled where it has one) around the next. It is a context
    manager (``with`` / ``async with``) only when every member is one of that
    kind.
    """

    __slots__ = ("_name", "_plans", "policies")

    def __init__(self, *policies: Policy, name: str | None = None) -> None:
        for policy in policies:
            if not isinstance(policy, Policy):
                raise TypeError(f"Pipeline takes policies, got {policy!r}")
        self.policies = policies
        self._name = check_name(name)
        self._plans = (_plan(policies, False), _plan(policies, True))

    def _plan(self, asynchronous: bool) -> Plan:
        return self._plans[asynchronous]

    def _fast_sync(self, fn: Callable[..., Any]) -> Any:
        for policy in reversed(self.policies):
            fn = policy(fn)
        return fn

    _fast_async = _fast_sync

    @property
    def stats(self) -> PipelineStats:
        return PipelineStats(
            self._name,
            tuple(policy.stats for policy in self.policies),  # type: ignore[attr-defined]
        )

    def _members_with(self, method: str) -> None:
        asynchronous = method.startswith("__a")
        for policy in self._plans[asynchronous][0]:  # nested pipelines' members included
            if not hasattr(policy, method):
                form = "async with" if asynchronous else "with"
                raise TypeError(f"{policy!r} has no `{form}` form, so this pipeline has none")

    def __enter__(self) -> Pipeline:
        self._members_with("__enter__")
        return super().__enter__()  # type: ignore[no-any-return]

    async def __aenter__(self) -> Pipeline:
        self._members_with("__aenter__")
        return await super().__aenter__()  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        members = ", ".join(map(repr, self.policies))
        return f"Pipeline({members}, name={self._name!r})" if self._name else f"Pipeline({members})"
