"""OpenTelemetry instruments: every policy's figures, read at collection time.

Every expectation comes from docs/architecture.md ("Composition, registry,
metrics") and the docstring of ``resilience.metrics.otel``. Each test
instruments its policies on a fresh SDK ``MeterProvider`` with an
``InMemoryMetricReader`` (never the global provider, except the one test of
the default path, which sets it and restores it), drives the policies on a
``FakeClock`` and collects: what is checked is what an exporter would be
handed. Every test that builds policies asks for ``policy_impl``: once on
each twin.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import opentelemetry.metrics._internal as otel_globals
import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, InMemoryMetricReader, Metric, Sum

from resilience import backoff
from resilience.breaker import CircuitBreaker
from resilience.budget import ErrorBudget
from resilience.bulkhead import Bulkhead
from resilience.errors import BulkheadFullError, CircuitOpenError, RateLimitExceeded
from resilience.health import HealthCheck, HealthChecker, HealthStatus
from resilience.manager import ResilienceManager
from resilience.metrics import otel as otel_module
from resilience.metrics.otel import Instrumentation, instrument
from resilience.ratelimit import RateLimiter
from resilience.retry import Retry
from resilience.testing import FakeClock

GUARD = 10.0  # seconds: a health check's timeout, never an assertion on time
STATES = ("closed", "open", "half_open", "forced_open", "disabled")
STATUSES = ("up", "degraded", "down", "unknown")
COUNTERS = (
    "resilience.circuit.calls",
    "resilience.circuit.transitions",
    "resilience.ratelimit.requests",
    "resilience.bulkhead.rejected",
    "resilience.retry.attempts",
)
GAUGES = (
    "resilience.circuit.state",
    "resilience.bulkhead.active",
    "resilience.error_budget.remaining",
    "resilience.health.status",
)

Attributes = tuple[tuple[str, str], ...]


class Boom(Exception):
    """The failure the protected functions raise."""


def boom() -> None:
    raise Boom("down")


def ok() -> str:
    return "ok"


def A(**attributes: str) -> Attributes:
    """Attributes as collected, keys given without their ``resilience.`` prefix."""
    return tuple(sorted((f"resilience.{key}", value) for key, value in attributes.items()))


class Collection:
    """One collection of a reader: data points by instrument, then by attribute set."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self.metrics: dict[str, Metric] = {}
        self.scopes: dict[str, set[str]] = {}  # instrument -> the meters that reported it
        self.points: dict[str, dict[Attributes, float]] = {}
        data = reader.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    self.metrics[metric.name] = metric
                    self.scopes.setdefault(metric.name, set()).add(scope.scope.name)
                    by_attributes = self.points.setdefault(metric.name, {})
                    for point in metric.data.data_points:
                        attributes = tuple(sorted(point.attributes.items()))
                        assert attributes not in by_attributes, (metric.name, attributes)
                        by_attributes[attributes] = point.value

    def __call__(self, metric: str, /, **where: str) -> dict[Attributes, float]:
        """The points of ``metric`` whose attributes include ``where`` (keys unprefixed)."""
        wanted = A(**where)
        return {
            attributes: value
            for attributes, value in self.points.get(metric, {}).items()
            if all(pair in attributes for pair in wanted)
        }

    def value(self, metric: str, /, **attributes: str) -> float:
        return self.points[metric][A(**attributes)]


class Telemetry:
    """An SDK ``MeterProvider`` of the test's own, read by an ``InMemoryMetricReader``."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def instrument(self, source: Any, **kwargs: Any) -> Instrumentation:
        """``instrument(source)`` on this provider."""
        return instrument(source, meter_provider=self.provider, **kwargs)

    def collect(self) -> Collection:
        return Collection(self.reader)


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    yield telemetry
    telemetry.provider.shutdown()


def one_of(
    collection: Collection, metric: str, key: str, values: tuple[str, ...], **where: str
) -> str:
    """The one value of attribute ``key`` reported as 1; every value is present exactly once."""
    points = collection(metric, **where)
    assert sorted(dict(attributes)[f"resilience.{key}"] for attributes in points) == sorted(values)
    assert all(value in (0, 1) for value in points.values()), points
    on = [dict(attributes)[f"resilience.{key}"] for attributes, v in points.items() if v == 1]
    assert len(on) == 1, points
    return on[0]


def state_of(collection: Collection, name: str) -> str:
    return one_of(collection, "resilience.circuit.state", "state", STATES, name=name)


def status_of(collection: Collection, check: str) -> str:
    return one_of(collection, "resilience.health.status", "status", STATUSES, check=check)


# -- circuit breakers -------------------------------------------------------------------


def test_breaker_calls_states_and_transitions(policy_impl, otel):
    clock = FakeClock()
    breaker = CircuitBreaker(
        "payments", failure_threshold=2, reset_timeout=10.0, ignore=KeyError, clock=clock
    )
    otel.instrument([breaker])
    collection = otel.collect()
    assert state_of(collection, "payments") == "closed"
    assert collection("resilience.circuit.transitions") == {}

    for _ in range(3):
        breaker.call(ok)

    def missing() -> None:
        raise KeyError("ignored")

    with pytest.raises(KeyError):
        breaker.call(missing)
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(boom)
    for _ in range(2):
        with pytest.raises(CircuitOpenError):
            breaker.call(ok)
    assert state_of(otel.collect(), "payments") == "open"
    clock.advance(10.0)
    assert breaker.call(ok) == "ok"  # the probe: HALF_OPEN, then CLOSED
    breaker.force_open()

    collection = otel.collect()
    assert state_of(collection, "payments") == "forced_open"
    assert collection("resilience.circuit.calls") == {
        A(name="payments", outcome="success"): 4,
        A(name="payments", outcome="failure"): 2,
        A(name="payments", outcome="rejected"): 2,
        A(name="payments", outcome="ignored"): 1,
    }
    assert collection("resilience.circuit.transitions") == {
        A(name="payments", from_state="closed", to_state="open"): 1,
        A(name="payments", from_state="open", to_state="half_open"): 1,
        A(name="payments", from_state="half_open", to_state="closed"): 1,
        A(name="payments", from_state="closed", to_state="forced_open"): 1,
    }
    # Counters are cumulative monotonic sums, the state a gauge.
    for name in ("resilience.circuit.calls", "resilience.circuit.transitions"):
        data = collection.metrics[name].data
        assert isinstance(data, Sum) and data.is_monotonic, name
    assert isinstance(collection.metrics["resilience.circuit.state"].data, Gauge)


def test_several_breakers_and_an_unnamed_one(policy_impl, otel):
    a, b, unnamed = CircuitBreaker("a"), CircuitBreaker("b", failure_threshold=1), CircuitBreaker()
    otel.instrument([a, b, unnamed])
    with pytest.raises(Boom):
        b.call(boom)
    unnamed.call(ok)
    collection = otel.collect()
    assert state_of(collection, "a") == "closed"
    assert state_of(collection, "b") == "open"
    assert state_of(collection, "") == "closed"
    assert collection.value("resilience.circuit.calls", name="", outcome="success") == 1
    assert collection.value("resilience.circuit.calls", name="b", outcome="failure") == 1
    assert collection.value("resilience.circuit.calls", name="a", outcome="failure") == 0


def test_every_collection_reads_the_figures_afresh(policy_impl, otel):
    breaker = CircuitBreaker("b")
    otel.instrument([breaker])
    values = []
    for _ in range(3):
        breaker.call(ok)
        values.append(otel.collect().value("resilience.circuit.calls", name="b", outcome="success"))
    assert values == [1, 2, 3]


# -- rate limiters, bulkheads, retries --------------------------------------------------


def test_rate_limiter_allowed_and_rejected(policy_impl, otel):
    limiter = RateLimiter(2, per=1.0, name="api", clock=FakeClock())
    otel.instrument([limiter])
    assert [limiter.try_acquire() for _ in range(3)] == [True, True, False]
    with pytest.raises(RateLimitExceeded):
        limiter.call(ok)
    collection = otel.collect()
    assert collection("resilience.ratelimit.requests") == {
        A(name="api", outcome="allowed"): 2,
        A(name="api", outcome="rejected"): 2,
        A(name="api", outcome="refunded"): 0,
    }
    data = collection.metrics["resilience.ratelimit.requests"].data
    assert isinstance(data, Sum) and data.is_monotonic


def test_rate_limiter_allowed_only_grows_when_a_waiter_gives_up(policy_impl, otel):
    """A reservation handed back (its sleep raised) is counted "refunded"; the
    reported "allowed" never goes down, as a monotonic counter must not."""
    clock = FakeClock()
    gave_up = False

    def sleep(seconds: float) -> None:
        if gave_up:
            raise KeyboardInterrupt  # the waiter is interrupted mid-wait
        clock.advance(seconds)

    limiter = RateLimiter(1, per=1.0, max_wait=5.0, name="api", clock=clock, sleep=sleep)
    otel.instrument([limiter])
    limiter.acquire()
    before = otel.collect().value("resilience.ratelimit.requests", name="api", outcome="allowed")
    gave_up = True
    with pytest.raises(KeyboardInterrupt):
        limiter.acquire()  # reserved, then handed back
    assert otel.collect()("resilience.ratelimit.requests") == {
        A(name="api", outcome="allowed"): 2,
        A(name="api", outcome="rejected"): 0,
        A(name="api", outcome="refunded"): 1,
    }
    assert before == 1
    stats = limiter.stats
    assert (stats.allowed, stats.rejected, stats.refunded) == (1, 0, 1)


def test_bulkhead_active_and_rejected(policy_impl, otel):
    bulkhead = Bulkhead(2, max_queue=0, name="pool")
    otel.instrument([bulkhead])
    collection = otel.collect()
    assert collection("resilience.bulkhead.active") == {A(name="pool"): 0}
    assert collection("resilience.bulkhead.rejected") == {A(name="pool"): 0}

    assert bulkhead.try_acquire() and bulkhead.try_acquire()
    assert not bulkhead.try_acquire()  # a failed try_acquire is a refusal too
    with pytest.raises(BulkheadFullError):
        bulkhead.acquire()  # no queue: refused at once
    with pytest.raises(BulkheadFullError):
        bulkhead.call(ok)
    collection = otel.collect()
    assert collection("resilience.bulkhead.active") == {A(name="pool"): 2}
    assert collection("resilience.bulkhead.rejected") == {A(name="pool"): 3}
    assert isinstance(collection.metrics["resilience.bulkhead.active"].data, Gauge)
    data = collection.metrics["resilience.bulkhead.rejected"].data
    assert isinstance(data, Sum) and data.is_monotonic
    bulkhead.release()
    assert otel.collect()("resilience.bulkhead.active") == {A(name="pool"): 1}


def test_retry_attempts_by_outcome(policy_impl, otel):
    clock = FakeClock()
    retry = Retry(3, backoff=backoff.constant(1.0), name="fetch", sleep=clock.sleep, clock=clock)
    otel.instrument([retry])
    failures = iter([Boom(), Boom()])

    def flaky() -> str:
        exc = next(failures, None)
        if exc is not None:
            raise exc
        return "ok"

    assert retry.call(flaky) == "ok"  # 2 failed attempts, 1 good
    with pytest.raises(Boom):
        retry.call(boom)  # 3 failed attempts
    assert retry.call(ok) == "ok"  # 1 good attempt
    collection = otel.collect()
    assert collection("resilience.retry.attempts") == {
        A(name="fetch", outcome="success"): 2,
        A(name="fetch", outcome="failure"): 5,
    }
    data = collection.metrics["resilience.retry.attempts"].data
    assert isinstance(data, Sum) and data.is_monotonic


# -- budgets and health -------------------------------------------------------------------


def test_error_budget_remaining(policy_impl, otel):
    clock = FakeClock()
    budget = ErrorBudget(0.9, name="availability", clock=clock)
    otel.instrument([budget])
    assert otel.collect()("resilience.error_budget.remaining") == {A(name="availability"): 1.0}
    budget.record(False, 5)
    budget.record(True, 15)
    collection = otel.collect()
    remaining = collection.value("resilience.error_budget.remaining", name="availability")
    assert remaining == pytest.approx(1.0 - (5 / 20) / 0.1)  # overspent: below zero
    assert remaining == budget.remaining
    assert isinstance(collection.metrics["resilience.error_budget.remaining"].data, Gauge)


def test_health_status_up_down_degraded_and_unknown(policy_impl, otel):
    up = HealthCheck("db", lambda: True, timeout=GUARD)
    down = HealthCheck("cache", lambda: False, failure_threshold=1, timeout=GUARD)
    degraded = HealthCheck("disk", lambda: HealthStatus.DEGRADED, timeout=GUARD)
    fresh = HealthCheck("queue", lambda: True, timeout=GUARD)
    otel.instrument([up, down, degraded, fresh])
    collection = otel.collect()
    assert {status_of(collection, name) for name in ("db", "cache", "disk", "queue")} == {"unknown"}
    assert up.run() is HealthStatus.UP
    assert down.run() is HealthStatus.DOWN
    assert degraded.run() is HealthStatus.DEGRADED
    collection = otel.collect()
    assert status_of(collection, "db") == "up"
    assert status_of(collection, "cache") == "down"
    assert status_of(collection, "disk") == "degraded"
    assert status_of(collection, "queue") == "unknown"
    assert isinstance(collection.metrics["resilience.health.status"].data, Gauge)


def test_an_iterable_source_may_hold_a_health_checker(policy_impl, otel):
    db = HealthCheck("db", lambda: True, timeout=GUARD)
    cache = HealthCheck("cache", lambda: False, failure_threshold=1, timeout=GUARD)
    checker = HealthChecker([db, cache])
    otel.instrument([CircuitBreaker("b"), checker])
    checker.run_once()
    collection = otel.collect()
    assert status_of(collection, "db") == "up"
    assert status_of(collection, "cache") == "down"
    assert state_of(collection, "b") == "closed"


# -- sources: a manager, a fixed iterable ---------------------------------------------------


def test_a_manager_source_is_reread_at_every_collection(policy_impl, otel):
    manager = ResilienceManager({"circuit_breakers": {"payments": {}}}, clock=FakeClock())
    otel.instrument(manager)
    collection = otel.collect()
    assert state_of(collection, "payments") == "closed"
    assert collection("resilience.ratelimit.requests") == {}
    assert collection("resilience.health.status") == {}

    # Made after instrument(): they appear at the next collection.
    limiter = manager.rate_limiter("api", rate=1.0)
    limiter.try_acquire()
    limiter.try_acquire()
    with pytest.raises(Boom):
        manager.circuit_breaker("search", failure_threshold=1).call(boom)
    manager.bulkhead("pool", max_concurrent=3).try_acquire()
    manager.retry("fetch").call(ok)
    manager.error_budget("availability", slo=0.99).record(True)
    manager.add(HealthCheck("db", lambda: True, timeout=GUARD)).run()

    collection = otel.collect()
    assert state_of(collection, "payments") == "closed"
    assert state_of(collection, "search") == "open"
    assert collection("resilience.circuit.transitions") == {
        A(name="search", from_state="closed", to_state="open"): 1
    }
    assert collection("resilience.ratelimit.requests") == {
        A(name="api", outcome="allowed"): 1,
        A(name="api", outcome="rejected"): 1,
        A(name="api", outcome="refunded"): 0,
    }
    assert collection("resilience.bulkhead.active") == {A(name="pool"): 1}
    assert collection("resilience.bulkhead.rejected") == {A(name="pool"): 0}
    assert collection("resilience.retry.attempts") == {
        A(name="fetch", outcome="success"): 1,
        A(name="fetch", outcome="failure"): 0,
    }
    assert collection("resilience.error_budget.remaining") == {A(name="availability"): 1.0}
    assert status_of(collection, "db") == "up"


def test_an_iterable_source_is_fixed_when_instrumented(policy_impl, otel):
    policies: list[Any] = [CircuitBreaker("first")]
    otel.instrument(policies)
    policies.append(CircuitBreaker("later"))
    collection = otel.collect()
    assert collection("resilience.circuit.state", name="later") == {}
    assert state_of(collection, "first") == "closed"


def test_a_generator_source_is_read_once_and_collected_every_time(policy_impl, otel):
    breaker = CircuitBreaker("b", failure_threshold=1)

    def policies() -> Iterator[Any]:
        yield breaker

    otel.instrument(policies())
    assert state_of(otel.collect(), "b") == "closed"
    with pytest.raises(Boom):
        breaker.call(boom)
    assert state_of(otel.collect(), "b") == "open"


def test_instrumenting_reads_no_stats_until_a_collection(policy_impl, otel):
    class CountedBreaker(CircuitBreaker):
        reads = 0

        @property
        def stats(self) -> Any:
            type(self).reads += 1
            return super().stats

    breaker = CountedBreaker("b")
    otel.instrument([breaker])
    for _ in range(5):
        breaker.call(ok)
    assert CountedBreaker.reads == 0  # nothing read, let alone counted, per call
    assert otel.collect().value("resilience.circuit.calls", name="b", outcome="success") == 5
    assert CountedBreaker.reads >= 1


def test_a_manager_source_is_not_read_until_a_collection(policy_impl, otel, monkeypatch):
    manager = ResilienceManager({"circuit_breakers": {"b": {}}})
    reads = []
    real = manager.policies

    def counting(kind: str | None = None) -> dict[str, Any]:
        reads.append(kind)
        return real(kind)

    monkeypatch.setattr(manager, "policies", counting)
    otel.instrument(manager)
    assert reads == []
    assert state_of(otel.collect(), "b") == "closed"
    assert reads != []


# -- handles, meters and providers ----------------------------------------------------------


def test_close_stops_reporting_and_is_idempotent(policy_impl, otel):
    kept, dropped = CircuitBreaker("kept"), CircuitBreaker("dropped")
    keep = otel.instrument([kept])
    drop = otel.instrument([dropped, Bulkhead(1, name="pool")])
    collection = otel.collect()
    assert state_of(collection, "kept") == "closed"
    assert state_of(collection, "dropped") == "closed"  # a second handle on one meter reports too
    assert collection("resilience.bulkhead.active") == {A(name="pool"): 0}

    assert not drop.closed
    drop.close()
    assert drop.closed
    drop.close()  # again: nothing more happens, and the other handle is untouched
    collection = otel.collect()
    assert collection("resilience.circuit.state", name="dropped") == {}
    assert collection("resilience.circuit.calls", name="dropped") == {}
    assert collection("resilience.bulkhead.active") == {}
    assert state_of(collection, "kept") == "closed"

    keep.close()
    collection = otel.collect()
    assert all(collection(name) == {} for name in COUNTERS + GAUGES)


def test_a_meter_can_be_instrumented_again_after_close(policy_impl, otel):
    first = otel.instrument([CircuitBreaker("a")])
    first.close()
    with otel.instrument([CircuitBreaker("b")]) as second:
        collection = otel.collect()
        assert collection("resilience.circuit.state", name="a") == {}
        assert state_of(collection, "b") == "closed"
    assert second.closed
    assert otel.collect()("resilience.circuit.state") == {}


def test_the_meter_name_is_the_instrumentation_scope(policy_impl, otel):
    otel.instrument([CircuitBreaker("a")])
    otel.instrument([CircuitBreaker("b")], meter_name="shop")
    collection = otel.collect()
    assert collection.scopes["resilience.circuit.state"] == {"resilience", "shop"}
    assert state_of(collection, "a") == "closed"
    assert state_of(collection, "b") == "closed"


def test_every_instrument_has_its_kind(policy_impl, otel):
    manager = ResilienceManager()
    manager.circuit_breaker("b").force_open()  # a transition, so every instrument reports
    manager.rate_limiter("l", rate=1.0)
    manager.bulkhead("p", max_concurrent=1)
    manager.retry("r")
    manager.error_budget("e", slo=0.9)
    manager.add(HealthCheck("h", lambda: True, timeout=GUARD))
    otel.instrument(manager)
    collection = otel.collect()
    assert set(collection.metrics) == set(COUNTERS + GAUGES)
    for name in COUNTERS:
        data = collection.metrics[name].data
        assert isinstance(data, Sum) and data.is_monotonic, name
    for name in GAUGES:
        assert isinstance(collection.metrics[name].data, Gauge), name


@pytest.fixture
def unset_global_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's global provider as in a fresh process: not set yet.

    The API lets it be set once per process; this resets what
    set_meter_provider() changes (and the otel module's record of the
    global provider's instruments), and monkeypatch restores it all.
    """
    monkeypatch.setattr(otel_globals, "_METER_PROVIDER", None)
    monkeypatch.setattr(otel_globals, "_METER_PROVIDER_SET_ONCE", otel_globals.Once())
    monkeypatch.setattr(otel_globals, "_PROXY_METER_PROVIDER", otel_globals._ProxyMeterProvider())
    monkeypatch.setattr(otel_module, "_GLOBAL", {})


def test_the_default_is_the_global_meter_provider(policy_impl, otel, unset_global_provider):
    metrics.set_meter_provider(otel.provider)
    assert metrics.get_meter_provider() is otel.provider
    breaker = CircuitBreaker("global", failure_threshold=1)
    handle = instrument([breaker])
    with pytest.raises(Boom):
        breaker.call(boom)
    assert state_of(otel.collect(), "global") == "open"
    handle.close()
    assert otel.collect()("resilience.circuit.state") == {}


def test_handles_made_before_the_global_provider_is_set_all_report(
    policy_impl, otel, unset_global_provider
):
    """A library instruments at import, before the application sets its
    provider: every handle, made before or after, is reported once it is set."""
    first, second = instrument([CircuitBreaker("first")]), instrument([CircuitBreaker("second")])
    assert otel.collect().metrics == {}  # not set yet: reported nowhere
    metrics.set_meter_provider(otel.provider)
    given = otel.instrument([CircuitBreaker("given")])  # the global provider, passed explicitly
    late = instrument([CircuitBreaker("late")])
    collection = otel.collect()
    for name in ("first", "second", "late", "given"):
        assert state_of(collection, name) == "closed"
    first.close()
    late.close()
    collection = otel.collect()
    assert sorted({dict(a)["resilience.name"] for a in collection("resilience.circuit.state")}) == [
        "given",
        "second",
    ]
    second.close()
    given.close()
    assert otel.collect()("resilience.circuit.state") == {}


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [None, 42, 3.5, object(), "payments", b"payments"])
def test_a_source_that_is_neither_is_a_type_error(source, otel):
    with pytest.raises(TypeError, match="source must be"):
        otel.instrument(source)


@pytest.mark.parametrize("member", [object(), "payments", 7])
def test_an_iterable_holding_something_else_is_a_type_error(policy_impl, otel, member):
    with pytest.raises(TypeError, match="policy must be one of"):
        otel.instrument([CircuitBreaker("b"), member])


def test_two_unnamed_policies_of_one_kind_are_refused(policy_impl, otel):
    with pytest.raises(ValueError, match="name them apart"):
        otel.instrument([CircuitBreaker(), CircuitBreaker()])


@pytest.mark.parametrize("provider", [object(), "global", 1, MeterProvider])
def test_a_meter_provider_of_another_type_is_a_type_error(provider):
    with pytest.raises(TypeError, match="meter_provider must be"):
        instrument([], meter_provider=provider)


@pytest.mark.parametrize("name", [None, 3, b"resilience"])
def test_a_meter_name_that_is_not_a_str_is_a_type_error(name, otel):
    with pytest.raises(TypeError, match="meter_name must be a str"):
        otel.instrument([], meter_name=name)


def test_an_empty_meter_name_is_a_value_error(otel):
    with pytest.raises(ValueError, match="meter_name must not be empty"):
        otel.instrument([], meter_name="")


# -- imports ----------------------------------------------------------------------------------


def test_only_the_otel_module_imports_opentelemetry_and_only_its_api():
    check = (
        "import sys, resilience, resilience.metrics, resilience.manager;"
        "before = sorted(m for m in sys.modules if m.startswith('opentelemetry'));"
        "import resilience.metrics.otel;"
        "after = {m.split('.')[1] for m in sys.modules if m.startswith('opentelemetry.')};"
        "print(before, 'sdk' in after, 'metrics' in after, 'prometheus_client' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["[]", "False", "True", "False"]


# -- shared policies ---------------------------------------------------------------------------


def test_a_shared_rate_limiter_is_a_rate_limiter(redis_url, otel):
    from resilience.redis import RedisRateLimiter, RedisStore

    with RedisStore.from_url(redis_url, prefix="svc") as store:
        manager = ResilienceManager(
            {"rate_limiters": {"api": {"rate": 1, "per": 60.0, "shared": True}}}, store=store
        )
        limiter = manager.rate_limiter("api")
        assert type(limiter) is RedisRateLimiter
        otel.instrument(manager)
        assert [limiter.try_acquire() for _ in range(3)] == [True, False, False]
        assert otel.collect()("resilience.ratelimit.requests") == {
            A(name="api", outcome="allowed"): 1,
            A(name="api", outcome="rejected"): 2,
            A(name="api", outcome="refunded"): 0,
        }
