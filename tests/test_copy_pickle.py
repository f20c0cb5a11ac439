"""Policies and core objects are neither copied nor pickled, on both twins.

Each holds live state of one process; ``copy.copy``, ``copy.deepcopy`` and
``pickle.dumps`` (any protocol) raise a TypeError that names the class and
says so, rather than sharing half of that state, or failing somewhere inside
it (a lock that cannot be pickled, a C pointer Cython cannot convert).

A decorated function behaves as a function: it is pickled by reference (its
module and qualified name: the unpickled object is the same one, with its
policy), and a copy is the object itself. A call under way is refused.
"""

from __future__ import annotations

import copy
import pickle
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

import resilience
from resilience import _core, chaos
from resilience.budget import ErrorBudget, LatencyBudget
from resilience.testing import FakeClock


def copy_copy(obj: object) -> object:
    return copy.copy(obj)


def copy_deepcopy(obj: object) -> object:
    return copy.deepcopy(obj)


def pickle_dumps(obj: object) -> object:
    return pickle.dumps(obj)


def pickle_dumps_protocol_0(obj: object) -> object:
    return pickle.dumps(obj, protocol=0)


OPERATIONS = [copy_copy, copy_deepcopy, pickle_dumps, pickle_dumps_protocol_0]


def refused(operation: Callable[[object], object], obj: object) -> None:
    """``operation(obj)`` raises the TypeError that names ``obj``'s class."""
    kind = type(obj).__name__
    with pytest.raises(TypeError, match=rf"^a {kind} cannot be copied or pickled: "):
        operation(obj)


# -- the core classes, each twin ---------------------------------------------------------

CORE: dict[str, Callable[[SimpleNamespace], object]] = {
    "TokenBucket": lambda ns: ns.TokenBucket(10.0, 5.0, clock=FakeClock()),
    "SemaphoreCore": lambda ns: ns.SemaphoreCore(3),
    "CountWindow": lambda ns: ns.CountWindow(10),
    "TimeWindow": lambda ns: ns.TimeWindow(10.0, 5, clock=FakeClock()),
    "LatencySketch": lambda ns: ns.LatencySketch(),
    "LatencyWindow": lambda ns: ns.LatencyWindow(60.0, 6, clock=FakeClock()),
    "Counters": lambda ns: ns.Counters(4),
    "BreakerCore": lambda ns: ns.BreakerCore(clock=FakeClock()),
}

# The per-call wrappers a decorator returns, built by decorating.
WRAPPERS: dict[str, Callable[[], object]] = {
    "BreakerCall": lambda: resilience.CircuitBreaker()(work),
    "AsyncBreakerCall": lambda: resilience.CircuitBreaker()(async_work),
    "LimiterCall": lambda: resilience.RateLimiter(5)(work),
    "AsyncLimiterCall": lambda: resilience.RateLimiter(5)(async_work),
    "RetryCall": lambda: resilience.Retry()(work),
    "AsyncRetryCall": lambda: resilience.Retry()(async_work),
    "BulkheadCall": lambda: resilience.Bulkhead(2)(work),
}

def work() -> int:
    return 1


async def async_work() -> int:
    return 1


def test_every_core_class_is_covered() -> None:
    wrappers = set(_core.CLASSES["_calls"]) - {"BulkheadGate"}  # a base of Bulkhead: below
    others = {name for stem, names in _core.CLASSES.items() if stem != "_calls" for name in names}
    assert set(CORE) == others
    assert set(WRAPPERS) == wrappers


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("name", list(CORE))
def test_core_objects_refuse(impl: SimpleNamespace, name: str, operation: Any) -> None:
    refused(operation, CORE[name](impl))


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("name", list(WRAPPERS))
def test_decorated_functions_are_kept_by_reference(
    policy_impl: SimpleNamespace, name: str, operation: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapper: Any = WRAPPERS[name]()
    assert type(wrapper) is getattr(policy_impl, name)
    # As if the decorator had been applied at the function's definition.
    monkeypatch.setattr(sys.modules[__name__], wrapper.__qualname__, wrapper)
    copied = operation(wrapper)
    if isinstance(copied, bytes):
        copied = pickle.loads(copied)
    assert copied is wrapper


def test_a_decorated_function_that_is_not_where_its_name_says_is_not_pickled() -> None:
    wrapper = resilience.CircuitBreaker()(work)  # module-level ``work`` is another object
    with pytest.raises(pickle.PicklingError):
        pickle.dumps(wrapper)


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("name", ["AsyncBreakerCall", "AsyncLimiterCall", "AsyncRetryCall"])
def test_a_call_under_way_is_refused(
    policy_impl: SimpleNamespace, operation: Any, name: str
) -> None:
    pending: Any = WRAPPERS[name]()()
    try:
        with pytest.raises(TypeError, match="cannot be copied or pickled"):
            operation(pending)
    finally:
        pending.close()


def test_core_refusal_is_the_same_on_both_twins(twins: tuple[SimpleNamespace, ...]) -> None:
    messages = []
    for ns in twins:
        with pytest.raises(TypeError) as info:
            pickle.dumps(ns.TokenBucket(1.0, 1.0))
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert "construct a new TokenBucket with the same settings" in messages[0]


# -- the policies and the other stateful public objects ---------------------------------------

POLICIES: dict[str, Callable[[], object]] = {
    "CircuitBreaker": lambda: resilience.CircuitBreaker("payments", clock=FakeClock()),
    "RateLimiter": lambda: resilience.RateLimiter(10, clock=FakeClock()),
    "AdaptiveRateLimiter": lambda: resilience.AdaptiveRateLimiter(
        10, min_rate=1, max_rate=20, clock=FakeClock()
    ),
    "Bulkhead": lambda: resilience.Bulkhead(2),
    "Retry": lambda: resilience.Retry(),
    "Fallback": lambda: resilience.Fallback(lambda exc: None),
    "Timeout": lambda: resilience.Timeout(1.0),
    "Chaos": lambda: resilience.Chaos(chaos.latency(0.1), seed=1),
    "Pipeline": lambda: resilience.Pipeline(resilience.Retry(), resilience.RateLimiter(10)),
    "HealthCheck": lambda: resilience.HealthCheck("db", lambda: True, clock=FakeClock()),
    "HealthChecker": lambda: resilience.HealthChecker(
        [resilience.HealthCheck("db", lambda: True, clock=FakeClock())]
    ),
    "ErrorBudget": lambda: ErrorBudget(0.99, clock=FakeClock()),
    "LatencyBudget": lambda: LatencyBudget(0.5),
    "LatencyBudget windowed": lambda: LatencyBudget(0.5, window=60.0, clock=FakeClock()),
    "RetryBudget": lambda: resilience.RetryBudget(clock=FakeClock()),
    "DegradationManager": lambda: resilience.DegradationManager(clock=FakeClock()),
    "feature": lambda: resilience.DegradationManager(clock=FakeClock()).feature(
        "search", off_at="degraded"
    ),
    "admission": lambda: resilience.DegradationManager(clock=FakeClock()).admission(),
    "ResilienceManager": lambda: resilience.ResilienceManager(),
}


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("name", list(POLICIES))
def test_policies_refuse(policy_impl: SimpleNamespace, name: str, operation: Any) -> None:
    refused(operation, POLICIES[name]())


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_subclass_refuses_under_its_own_name(
    policy_impl: SimpleNamespace, operation: Any
) -> None:
    class PaymentsLimiter(resilience.RateLimiter):
        pass

    refused(operation, PaymentsLimiter(10))


def test_a_structure_holding_a_policy_cannot_be_deep_copied(policy_impl: SimpleNamespace) -> None:
    settings = {"limits": [resilience.RateLimiter(10)]}
    refused(copy.deepcopy, settings["limits"][0])
    with pytest.raises(TypeError, match=r"^a RateLimiter cannot be copied or pickled"):
        copy.deepcopy(settings)
