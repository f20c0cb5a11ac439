"""PrometheusCollector: every policy's figures, read at scrape time, parsed back from the text.

Every expectation comes from docs/architecture.md ("Composition, registry, metrics")
and the docstring of ``resilience.metrics.prometheus``. Each test
registers the collector with a fresh ``CollectorRegistry`` (never the global
one), drives the policies on a ``FakeClock``, renders the registry with
``generate_latest`` and parses it back with ``text_string_to_metric_families``,
so what is checked is what Prometheus would read. Every test asks for
``policy_impl`` and builds its policies inside: once on each twin.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from resilience import backoff
from resilience.breaker import CircuitBreaker, CircuitState
from resilience.budget import ErrorBudget, LatencyBudget
from resilience.bulkhead import Bulkhead
from resilience.errors import (
    BulkheadFullError,
    CircuitOpenError,
    RateLimitExceeded,
)
from resilience.health import HealthCheck, HealthChecker, HealthStatus
from resilience.manager import ResilienceManager
from resilience.metrics.prometheus import PrometheusCollector
from resilience.ratelimit import RateLimiter
from resilience.retry import Retry
from resilience.testing import FakeClock

GUARD = 10.0  # seconds: a deadlock guard for thread waits, never an assertion on time
STATES = ("closed", "open", "half_open", "forced_open", "disabled")
STATUSES = ("up", "degraded", "down", "unknown")

Labels = tuple[tuple[str, str], ...]


class Boom(Exception):
    """The failure the protected functions raise."""


def boom() -> None:
    raise Boom("down")


def ok() -> str:
    return "ok"


def L(**labels: str) -> Labels:
    return tuple(sorted(labels.items()))


class Scrape:
    """One scrape of a registry, parsed back: samples by name, then by label set."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.text = generate_latest(registry).decode()
        self.families = {f.name: f for f in text_string_to_metric_families(self.text)}
        self.samples: dict[str, dict[Labels, float]] = {}
        for family in self.families.values():
            for sample in family.samples:
                labels = L(**sample.labels)
                by_labels = self.samples.setdefault(sample.name, {})
                assert labels not in by_labels, f"duplicate sample {sample.name}{labels}"
                by_labels[labels] = sample.value

    def __call__(self, metric: str, /, **where: str) -> dict[Labels, float]:
        """The samples of ``metric`` whose labels include ``where``."""
        return {
            labels: value
            for labels, value in self.samples.get(metric, {}).items()
            if all((k, v) in labels for k, v in where.items())
        }

    def value(self, metric: str, /, **labels: str) -> float:
        return self.samples[metric][L(**labels)]


def registry_with(source: Any, **kwargs: Any) -> tuple[CollectorRegistry, PrometheusCollector]:
    registry = CollectorRegistry()
    collector = PrometheusCollector(source, **kwargs)
    registry.register(collector)
    return registry, collector


def state_of(scrape: Scrape, name: str, ns: str = "resilience") -> str:
    """The one state labelled 1 for breaker ``name``; every state is present exactly once."""
    samples = scrape(f"{ns}_circuit_state", name=name)
    assert sorted(dict(labels)["state"] for labels in samples) == sorted(STATES)
    on = [dict(labels)["state"] for labels, value in samples.items() if value == 1.0]
    assert len(on) == 1, samples
    assert all(value in (0.0, 1.0) for value in samples.values())
    return on[0]


def status_of(scrape: Scrape, check: str) -> str:
    samples = scrape("resilience_health_status", check=check)
    assert sorted(dict(labels)["status"] for labels in samples) == sorted(STATUSES)
    on = [dict(labels)["status"] for labels, value in samples.items() if value == 1.0]
    assert len(on) == 1, samples
    return on[0]


# -- circuit breakers -------------------------------------------------------------------


def test_breaker_calls_states_and_transitions(policy_impl):
    clock = FakeClock()
    breaker = CircuitBreaker(
        "payments", failure_threshold=2, reset_timeout=10.0, ignore=KeyError, clock=clock
    )
    seen: list[tuple[str, str]] = []
    breaker.on_state_change(lambda _, old, new: seen.append((old.value, new.value)))
    registry, _ = registry_with([breaker])

    scrape = Scrape(registry)
    assert state_of(scrape, "payments") == "closed"
    assert scrape("resilience_circuit_transitions_total") == {}

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
    scrape = Scrape(registry)
    assert state_of(scrape, "payments") == "open"
    assert scrape("resilience_circuit_failure_rate") == {L(name="payments"): pytest.approx(0.4)}

    clock.advance(10.0)
    assert breaker.call(ok) == "ok"  # the probe: HALF_OPEN, then CLOSED
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(boom)
    clock.advance(10.0)
    with pytest.raises(Boom):
        breaker.call(boom)  # a failed probe: HALF_OPEN, then OPEN again

    scrape = Scrape(registry)
    assert state_of(scrape, "payments") == "open"
    assert scrape("resilience_circuit_calls_total") == {
        L(name="payments", outcome="success"): 4.0,
        L(name="payments", outcome="failure"): 5.0,
        L(name="payments", outcome="rejected"): 2.0,
        L(name="payments", outcome="ignored"): 1.0,
    }
    expected = {
        ("closed", "open"): 2.0,
        ("open", "half_open"): 2.0,
        ("half_open", "closed"): 1.0,
        ("half_open", "open"): 1.0,
    }
    assert scrape("resilience_circuit_transitions_total") == {
        L(name="payments", from_state=old, to_state=new): n for (old, new), n in expected.items()
    }
    # What the listener saw, counted, is what was exported.
    counted: dict[tuple[str, str], float] = {}
    for old, new in seen:
        key = (old.lower(), new.lower())
        counted[key] = counted.get(key, 0.0) + 1.0
    assert counted == expected
    assert scrape.families["resilience_circuit_calls"].type == "counter"
    assert scrape.families["resilience_circuit_state"].type == "gauge"


def test_breaker_half_open_forced_open_and_disabled_states(policy_impl):
    clock = FakeClock()
    breaker = CircuitBreaker("b", failure_threshold=1, reset_timeout=5.0, clock=clock)
    registry, _ = registry_with([breaker])
    with pytest.raises(Boom):
        breaker.call(boom)
    clock.advance(5.0)
    assert breaker.allow()  # the probe permit, not answered yet
    assert breaker.state is CircuitState.HALF_OPEN
    assert state_of(Scrape(registry), "b") == "half_open"
    breaker.release()
    breaker.force_open()
    assert state_of(Scrape(registry), "b") == "forced_open"
    breaker.disable()
    assert state_of(Scrape(registry), "b") == "disabled"
    breaker.reset()
    scrape = Scrape(registry)
    assert state_of(scrape, "b") == "closed"
    transitions = scrape("resilience_circuit_transitions_total", name="b")
    assert transitions == {
        L(name="b", from_state="closed", to_state="open"): 1.0,
        L(name="b", from_state="open", to_state="half_open"): 1.0,
        L(name="b", from_state="half_open", to_state="forced_open"): 1.0,
        L(name="b", from_state="forced_open", to_state="disabled"): 1.0,
        L(name="b", from_state="disabled", to_state="closed"): 1.0,
    }


def test_several_breakers_and_an_unnamed_one(policy_impl):
    a, b, unnamed = CircuitBreaker("a"), CircuitBreaker("b", failure_threshold=1), CircuitBreaker()
    registry, _ = registry_with([a, b, unnamed])
    with pytest.raises(Boom):
        b.call(boom)
    unnamed.call(ok)
    scrape = Scrape(registry)
    assert state_of(scrape, "a") == "closed"
    assert state_of(scrape, "b") == "open"
    assert state_of(scrape, "") == "closed"
    assert scrape.value("resilience_circuit_calls_total", name="", outcome="success") == 1.0
    assert scrape.value("resilience_circuit_calls_total", name="b", outcome="failure") == 1.0
    assert scrape.value("resilience_circuit_calls_total", name="a", outcome="failure") == 0.0


# -- rate limiters, bulkheads, retries --------------------------------------------------


def test_rate_limiter_allowed_rejected_and_available(policy_impl):
    clock = FakeClock()
    limiter = RateLimiter(2, per=1.0, name="api", clock=clock)
    registry, _ = registry_with([limiter])
    assert Scrape(registry).value("resilience_ratelimit_available_tokens", name="api") == 2.0
    assert [limiter.try_acquire() for _ in range(3)] == [True, True, False]
    with pytest.raises(RateLimitExceeded):
        limiter.call(ok)
    scrape = Scrape(registry)
    assert scrape("resilience_ratelimit_requests_total") == {
        L(name="api", outcome="allowed"): 2.0,
        L(name="api", outcome="rejected"): 2.0,
        L(name="api", outcome="refunded"): 0.0,
    }
    assert scrape.value("resilience_ratelimit_available_tokens", name="api") == 0.0
    clock.advance(0.5)
    assert limiter.call(ok) == "ok"
    scrape = Scrape(registry)
    assert scrape.value("resilience_ratelimit_requests_total", name="api", outcome="allowed") == 3
    assert scrape.value("resilience_ratelimit_available_tokens", name="api") == pytest.approx(0.0)
    clock.advance(0.25)
    assert Scrape(registry).value(
        "resilience_ratelimit_available_tokens", name="api"
    ) == pytest.approx(0.5)


def test_rate_limiter_counts_only_grow_when_a_waiter_gives_up(policy_impl):
    """A reservation handed back (its sleep raised) is counted "refunded"; the
    exported "allowed" never goes down, as a Prometheus counter must not."""
    clock = FakeClock()
    gave_up = False

    def sleep(seconds: float) -> None:
        if gave_up:
            raise KeyboardInterrupt  # the waiter is interrupted mid-wait
        clock.advance(seconds)

    limiter = RateLimiter(1, per=1.0, max_wait=5.0, name="api", clock=clock, sleep=sleep)
    registry, _ = registry_with([limiter])
    limiter.acquire()
    before = Scrape(registry).value(
        "resilience_ratelimit_requests_total", name="api", outcome="allowed"
    )
    gave_up = True
    with pytest.raises(KeyboardInterrupt):
        limiter.acquire()  # reserved, then handed back
    scrape = Scrape(registry)
    assert scrape("resilience_ratelimit_requests_total") == {
        L(name="api", outcome="allowed"): 2.0,
        L(name="api", outcome="rejected"): 0.0,
        L(name="api", outcome="refunded"): 1.0,
    }
    assert before == 1.0
    stats = limiter.stats
    assert (stats.allowed, stats.rejected, stats.refunded) == (1, 0, 1)


def wait_for(condition: Any) -> None:
    deadline = time.monotonic() + GUARD
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.001)


def test_bulkhead_active_queued_and_rejected(policy_impl):
    bulkhead = Bulkhead(2, max_queue=1, max_wait=GUARD, name="pool")
    registry, _ = registry_with([bulkhead])
    scrape = Scrape(registry)
    assert scrape.value("resilience_bulkhead_active", name="pool") == 0.0
    assert scrape.value("resilience_bulkhead_max_concurrent", name="pool") == 2.0
    assert scrape.value("resilience_bulkhead_rejected_total", name="pool") == 0.0

    assert bulkhead.try_acquire() and bulkhead.try_acquire()
    assert not bulkhead.try_acquire()  # a failed try_acquire is a refusal too
    waiter_done = threading.Event()

    def waiter() -> None:
        bulkhead.acquire()
        waiter_done.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        wait_for(lambda: bulkhead.waiting == 1)
        with pytest.raises(BulkheadFullError):
            bulkhead.acquire()  # the queue is full
        with pytest.raises(BulkheadFullError):
            bulkhead.acquire(timeout=0)
        scrape = Scrape(registry)
        assert scrape.value("resilience_bulkhead_active", name="pool") == 2.0
        assert scrape.value("resilience_bulkhead_queued", name="pool") == 1.0
        assert scrape.value("resilience_bulkhead_rejected_total", name="pool") == 3.0
        assert scrape.families["resilience_bulkhead_rejected"].type == "counter"
    finally:
        bulkhead.release()  # the waiter takes it
        assert waiter_done.wait(GUARD)
        thread.join(GUARD)
    scrape = Scrape(registry)
    assert scrape.value("resilience_bulkhead_active", name="pool") == 2.0
    assert scrape.value("resilience_bulkhead_queued", name="pool") == 0.0
    bulkhead.release()
    bulkhead.release()
    assert Scrape(registry).value("resilience_bulkhead_active", name="pool") == 0.0


def test_retry_attempts_and_calls_by_outcome(policy_impl):
    clock = FakeClock()
    retry = Retry(3, backoff=backoff.constant(1.0), name="fetch", sleep=clock.sleep, clock=clock)
    registry, _ = registry_with([retry])
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
    scrape = Scrape(registry)
    assert scrape("resilience_retry_attempts_total") == {
        L(name="fetch", outcome="success"): 2.0,
        L(name="fetch", outcome="failure"): 5.0,
    }
    assert scrape("resilience_retry_calls_total") == {
        L(name="fetch", outcome="success"): 2.0,
        L(name="fetch", outcome="failure"): 1.0,
    }


# -- budgets ------------------------------------------------------------------------------


def test_error_budget_remaining_burn_rates_and_alerts(policy_impl):
    clock = FakeClock()
    budget = ErrorBudget(0.9, name="availability", clock=clock)
    registry, _ = registry_with([budget])
    scrape = Scrape(registry)
    assert scrape.value("resilience_error_budget_remaining", name="availability") == 1.0
    assert set(scrape("resilience_error_budget_burn_rate").values()) == {0.0}

    budget.record(False, 5)
    budget.record(True, 5)
    clock.advance(2000.0)
    budget.record(True, 10)  # the last half hour saw only good events
    scrape = Scrape(registry)
    assert scrape.value("resilience_error_budget_remaining", name="availability") == (
        pytest.approx(1.0 - (5 / 20) / 0.1)
    )
    burn = scrape("resilience_error_budget_burn_rate", name="availability")
    assert burn == {
        L(name="availability", window="300"): 0.0,
        L(name="availability", window="1800"): 0.0,
        L(name="availability", window="3600"): pytest.approx(2.5),
        L(name="availability", window="21600"): pytest.approx(2.5),
        L(name="availability", window="259200"): pytest.approx(2.5),
    }
    for labels, value in burn.items():
        assert value == budget.burn_rate(float(dict(labels)["window"]))
    # Only the ticket rule (1x over 3 days and 6 hours) fires.
    assert scrape("resilience_error_budget_alert") == {
        L(name="availability", severity="page", long_window="3600", short_window="300"): 0.0,
        L(name="availability", severity="page", long_window="21600", short_window="1800"): 0.0,
        L(name="availability", severity="ticket", long_window="259200", short_window="21600"): 1.0,
    }


def test_error_budget_page_alert_fires_while_burning_fast(policy_impl):
    clock = FakeClock()
    budget = ErrorBudget(0.99, name="e", clock=clock)
    registry, _ = registry_with([budget])
    budget.record(False, 20)
    budget.record(True, 80)  # 20% bad: a burn rate of 20 everywhere
    scrape = Scrape(registry)
    alerts = scrape("resilience_error_budget_alert", name="e")
    assert sorted(alerts.values()) == [1.0, 1.0, 1.0]
    assert scrape.value("resilience_error_budget_burn_rate", name="e", window="300") == (
        pytest.approx(20.0)
    )
    assert scrape.value("resilience_error_budget_remaining", name="e") == pytest.approx(-19.0)


def test_latency_budget_observed_and_threshold(policy_impl):
    empty = LatencyBudget(0.5, name="idle")
    p50 = LatencyBudget(0.2, quantile=0.5, name="p50")
    registry, _ = registry_with([empty, p50])
    for seconds in (0.1, 0.1, 0.3):
        p50.record(seconds)
    scrape = Scrape(registry)
    assert scrape("resilience_latency_budget_threshold_seconds") == {
        L(name="idle"): 0.5,
        L(name="p50"): 0.2,
    }
    observed = scrape("resilience_latency_budget_observed_seconds")
    assert observed == {L(name="p50", quantile="0.5"): p50.quantile(0.5)}  # none for "idle"
    assert observed[L(name="p50", quantile="0.5")] == pytest.approx(0.1, rel=0.011)


# -- health checks ----------------------------------------------------------------------


def test_health_status_up_down_and_unknown(policy_impl):
    up = HealthCheck("db", lambda: True, timeout=GUARD)
    down = HealthCheck("cache", lambda: False, failure_threshold=1, timeout=GUARD)
    degraded = HealthCheck("disk", lambda: HealthStatus.DEGRADED, timeout=GUARD)
    fresh = HealthCheck("queue", lambda: True, timeout=GUARD)
    registry, _ = registry_with([up, down, degraded, fresh])
    scrape = Scrape(registry)
    assert {status_of(scrape, name) for name in ("db", "cache", "disk", "queue")} == {"unknown"}
    assert up.run() is HealthStatus.UP
    assert down.run() is HealthStatus.DOWN
    assert degraded.run() is HealthStatus.DEGRADED
    scrape = Scrape(registry)
    assert status_of(scrape, "db") == "up"
    assert status_of(scrape, "cache") == "down"
    assert status_of(scrape, "disk") == "degraded"
    assert status_of(scrape, "queue") == "unknown"


def test_an_iterable_source_may_hold_a_health_checker(policy_impl):
    db = HealthCheck("db", lambda: True, timeout=GUARD)
    cache = HealthCheck("cache", lambda: False, failure_threshold=1, timeout=GUARD)
    checker = HealthChecker([db, cache])
    breaker = CircuitBreaker("b")
    registry, _ = registry_with([breaker, checker])
    checker.run_once()
    scrape = Scrape(registry)
    assert status_of(scrape, "db") == "up"
    assert status_of(scrape, "cache") == "down"
    assert state_of(scrape, "b") == "closed"


def test_an_iterable_source_is_fixed_when_the_collector_is_made(policy_impl):
    policies: list[Any] = [CircuitBreaker("first")]
    registry, _ = registry_with(policies)
    policies.append(CircuitBreaker("later"))
    scrape = Scrape(registry)
    assert scrape("resilience_circuit_state", name="later") == {}
    assert state_of(scrape, "first") == "closed"


def test_a_generator_source_is_read_once_and_scraped_every_time(policy_impl):
    breaker = CircuitBreaker("b", failure_threshold=1)

    def policies() -> Iterator[Any]:
        yield breaker

    registry, _ = registry_with(policies())
    assert state_of(Scrape(registry), "b") == "closed"
    with pytest.raises(Boom):
        breaker.call(boom)
    assert state_of(Scrape(registry), "b") == "open"


# -- a manager as the source --------------------------------------------------------------


def test_a_manager_source_is_reread_at_every_scrape(policy_impl):
    clock = FakeClock()
    manager = ResilienceManager({"circuit_breakers": {"payments": {}}}, clock=clock)
    registry, _ = registry_with(manager)
    scrape = Scrape(registry)
    assert state_of(scrape, "payments") == "closed"
    assert scrape("resilience_ratelimit_requests_total") == {}
    assert scrape("resilience_health_status") == {}

    # Made after the collector was registered: they appear at the next scrape.
    limiter = manager.rate_limiter("api", rate=1.0)
    limiter.try_acquire()
    limiter.try_acquire()
    breaker = manager.circuit_breaker("search", failure_threshold=1)
    with pytest.raises(Boom):
        breaker.call(boom)
    manager.bulkhead("pool", max_concurrent=3)
    manager.retry("fetch")
    manager.error_budget("availability", slo=0.99).record(True)
    manager.latency_budget("p99", threshold=0.25)
    db = manager.add(HealthCheck("db", lambda: True, timeout=GUARD))
    db.run()

    scrape = Scrape(registry)
    assert state_of(scrape, "payments") == "closed"
    assert state_of(scrape, "search") == "open"
    assert scrape("resilience_ratelimit_requests_total") == {
        L(name="api", outcome="allowed"): 1.0,
        L(name="api", outcome="rejected"): 1.0,
        L(name="api", outcome="refunded"): 0.0,
    }
    assert scrape("resilience_bulkhead_max_concurrent") == {L(name="pool"): 3.0}
    assert scrape("resilience_retry_attempts_total") == {
        L(name="fetch", outcome="success"): 0.0,
        L(name="fetch", outcome="failure"): 0.0,
    }
    assert scrape("resilience_error_budget_remaining") == {L(name="availability"): 1.0}
    assert scrape("resilience_latency_budget_threshold_seconds") == {L(name="p99"): 0.25}
    assert status_of(scrape, "db") == "up"


def test_every_scrape_reads_the_figures_afresh(policy_impl):
    manager = ResilienceManager(clock=FakeClock())
    registry, _ = registry_with(manager)
    breaker = manager.circuit_breaker("b")
    values = []
    for _ in range(3):
        breaker.call(ok)
        values.append(
            Scrape(registry).value("resilience_circuit_calls_total", name="b", outcome="success")
        )
    assert values == [1.0, 2.0, 3.0]


# -- registering, namespace, bad arguments ----------------------------------------------------


def test_registering_a_manager_source_reads_no_policy(policy_impl, monkeypatch):
    manager = ResilienceManager({"circuit_breakers": {"b": {}}})
    reads = []
    real = manager.policies

    def counting(kind: str | None = None) -> dict[str, Any]:
        reads.append(kind)
        return real(kind)

    monkeypatch.setattr(manager, "policies", counting)
    registry = CollectorRegistry()
    collector = PrometheusCollector(manager)
    registry.register(collector)
    assert reads == []
    assert all(family.samples == [] for family in collector.describe())
    assert state_of(Scrape(registry), "b") == "closed"
    assert reads != []


def test_registering_an_iterable_source_reads_no_stats(policy_impl):
    class CountedBreaker(CircuitBreaker):
        reads = 0

        @property
        def stats(self) -> Any:
            type(self).reads += 1
            return super().stats

    breaker = CountedBreaker("b")
    registry = CollectorRegistry()
    registry.register(PrometheusCollector([breaker]))
    assert CountedBreaker.reads == 0
    assert state_of(Scrape(registry), "b") == "closed"
    assert CountedBreaker.reads >= 1


def test_describe_names_every_family_so_a_second_collector_clashes():
    registry = CollectorRegistry()
    registry.register(PrometheusCollector([]))
    with pytest.raises(ValueError, match="Duplicated"):
        registry.register(PrometheusCollector(ResilienceManager()))
    registry.register(PrometheusCollector([], namespace="other"))  # no clash
    names = {family.name for family in PrometheusCollector([]).describe()}
    for required in (
        "resilience_circuit_state",
        "resilience_circuit_calls",
        "resilience_ratelimit_requests",
        "resilience_bulkhead_active",
        "resilience_bulkhead_rejected",
        "resilience_retry_attempts",
        "resilience_error_budget_remaining",
        "resilience_health_status",
    ):
        assert required in names


def test_the_namespace_prefixes_every_metric(policy_impl):
    breaker = CircuitBreaker("b")
    registry, _ = registry_with([breaker, RateLimiter(1.0, name="l")], namespace="shop")
    scrape = Scrape(registry)
    assert all(name.startswith("shop_") for name in scrape.families)
    assert state_of(scrape, "b", ns="shop") == "closed"
    assert scrape.value("shop_ratelimit_requests_total", name="l", outcome="allowed") == 0.0
    assert "resilience_" not in scrape.text


@pytest.mark.parametrize("namespace", ["", "1st", "my-app", "my app", "a.b", "__x"])
def test_a_bad_namespace_is_a_value_error(namespace):
    with pytest.raises(ValueError, match="namespace"):
        PrometheusCollector([], namespace=namespace)


@pytest.mark.parametrize("namespace", [None, 3, b"ns"])
def test_a_namespace_that_is_not_a_str_is_a_type_error(namespace):
    with pytest.raises(TypeError, match="namespace"):
        PrometheusCollector([], namespace=namespace)


def test_two_unnamed_policies_of_one_kind_are_refused(policy_impl):
    with pytest.raises(ValueError, match="name them apart"):
        PrometheusCollector([CircuitBreaker(), CircuitBreaker()])


@pytest.mark.parametrize("source", [None, 42, 3.5, object()])
def test_a_source_that_is_neither_is_a_type_error(source):
    with pytest.raises(TypeError, match="source"):
        PrometheusCollector(source)


@pytest.mark.parametrize("member", [object(), "payments", 7])
def test_an_iterable_holding_something_else_is_a_type_error(policy_impl, member):
    with pytest.raises(TypeError, match="policy"):
        PrometheusCollector([CircuitBreaker("b"), member])


def test_the_collector_never_registers_itself(policy_impl):
    from prometheus_client import REGISTRY  # only read, never written

    manager = ResilienceManager({"circuit_breakers": {"never_registered": {}}})
    collector = PrometheusCollector(manager)
    PrometheusCollector([manager.circuit_breaker("never_registered")])
    assert b"never_registered" not in generate_latest(REGISTRY)
    registry = CollectorRegistry()
    registry.register(collector)
    assert b"never_registered" in generate_latest(registry)


def test_no_non_finite_sample_after_the_policies_run(policy_impl):
    clock = FakeClock()
    manager = ResilienceManager(clock=clock)
    manager.circuit_breaker("b")
    manager.rate_limiter("l", rate=5.0)
    manager.bulkhead("p", max_concurrent=1, max_wait=math.inf)
    manager.error_budget("e", slo=0.9)
    manager.latency_budget("t", threshold=1.0)
    registry, _ = registry_with(manager)
    scrape = Scrape(registry)
    for name, by_labels in scrape.samples.items():
        for labels, value in by_labels.items():
            assert math.isfinite(value), (name, labels, value)


# -- bugs found and fixed --


@pytest.mark.parametrize("namespace", ["ñ", "résumé", "名前"], ids=["n-tilde", "accents", "kanji"])
def test_a_namespace_that_is_not_an_ascii_metric_name_is_a_value_error(namespace):
    with pytest.raises(ValueError, match="namespace"):
        PrometheusCollector([], namespace=namespace)
