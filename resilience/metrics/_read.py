"""What every exporter reads from the policies, shared by ``prometheus`` and ``otel``.

An exporter's source (a manager, re-read each time, or a fixed iterable of
policies), and each exported figure as ``(label values, number)`` pairs
computed from the counters the policies keep anyway: the exporters differ
only in names and in how they hand the numbers over. Nothing here imports a
metrics library.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from ..breaker import CircuitState
from ..health import HealthChecker, HealthStatus
from ..manager import KINDS, ResilienceManager, kind_of


class Source:
    """The policies an exporter reads, by kind (the manager's ``KINDS`` keys).

    A ``ResilienceManager`` is re-read at every ``policies()``, so policies
    made later appear; an iterable of policies, ``HealthCheck``s and
    ``HealthChecker``s is read once, now (a generator is consumed here).
    """

    def __init__(self, source: ResilienceManager | Iterable[Any]) -> None:
        if isinstance(source, ResilienceManager):
            self._manager: ResilienceManager | None = source
            self._fixed: dict[str, list[Any]] = {}
        # A str is iterable, but its characters are never policies.
        elif isinstance(source, Iterable) and not isinstance(source, (str, bytes)):
            self._manager = None
            self._fixed = group_by_kind(source)
        else:
            raise TypeError(
                f"source must be a ResilienceManager or an iterable of policies, got {source!r}"
            )

    def policies(self) -> dict[str, list[Any]]:
        """Every policy by kind, read now for a manager."""
        if self._manager is None:
            return self._fixed
        return {kind: list(named.values()) for kind, named in self._manager.policies().items()}


def group_by_kind(source: Iterable[Any]) -> dict[str, list[Any]]:
    """Policies by kind; a ``HealthChecker`` stands for its checks."""
    grouped: dict[str, list[Any]] = {kind: [] for kind in KINDS}
    labels: set[tuple[str, str]] = set()
    for item in source:
        members = item.checks if isinstance(item, HealthChecker) else (item,)
        for policy in members:
            kind = kind_of(policy)
            # Two series with one label set would be one series read twice:
            # Prometheus refuses the exposition, OpenTelemetry keeps the last.
            if (kind, label(policy)) in labels:
                raise ValueError(
                    f"source has two {kind} labelled name={label(policy)!r}: name them apart"
                )
            labels.add((kind, label(policy)))
            grouped[kind].append(policy)
    return grouped


def label(policy: Any) -> str:
    """The name a policy is exported under: ``""`` for an unnamed one."""
    return policy.name or ""


def one_hot(current: enum.Enum) -> list[tuple[str, float]]:
    """``(member, 1.0 or 0.0)`` for every member of ``current``'s enum, lower-case."""
    return [(member.value.lower(), 1.0 if member is current else 0.0) for member in type(current)]


def circuit_calls(stats: Any) -> list[tuple[str, int]]:
    """A breaker's calls by outcome, each count only growing."""
    return [
        ("success", stats.total_calls - stats.total_failures),
        ("failure", stats.total_failures),
        ("rejected", stats.rejected),
        ("ignored", stats.total_ignored),
    ]


def circuit_transitions(breaker: Any) -> list[tuple[str, str, int]]:
    """``(from, to, count)`` of every change of state the breaker made, lower-case."""
    return [
        (old.value.lower(), new.value.lower(), n) for (old, new), n in breaker.transitions.items()
    ]


def ratelimit_requests(stats: Any) -> list[tuple[str, int]]:
    """A limiter's permits by outcome, counted as events so that each only grows.

    "allowed" counts every permit granted, and "refunded" those of them
    handed back unused later (a waiter that gave up); the stats' ``allowed``
    is the difference, which would go down at a refund.
    """
    return [
        ("allowed", stats.allowed + stats.refunded),
        ("rejected", stats.rejected),
        ("refunded", stats.refunded),
    ]


def retry_attempts(stats: Any) -> list[tuple[str, int]]:
    """A retry policy's attempts by outcome."""
    return [("success", stats.successes), ("failure", stats.attempts - stats.successes)]


def circuit_states(stats: Any) -> list[tuple[str, float]]:
    """1 for the breaker's current state, 0 for the others."""
    state: CircuitState = stats.state
    return one_hot(state)


def health_statuses(check: Any) -> list[tuple[str, float]]:
    """1 for the check's current status, 0 for the others (read once: exactly one is 1)."""
    status: HealthStatus = check.status
    return one_hot(status)
