"""Prometheus metrics, read from the policies' own counters when scraped.

``PrometheusCollector(source)`` is a custom ``prometheus_client`` collector:
it keeps nothing and counts nothing per call; each scrape reads the C
counters and windows the policies already keep. Register it yourself::

    from prometheus_client import REGISTRY
    REGISTRY.register(PrometheusCollector(manager))

``source`` is a ``ResilienceManager`` (re-read at every scrape, so policies
made later appear) or an iterable of policies, ``HealthCheck``s and
``HealthChecker``s (fixed when the collector is made). Policies without a
name are labelled ``name=""``. Metric names, with the default namespace
``resilience``, are listed in the README.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..budget import firing
from ..manager import KINDS, ResilienceManager
from ._read import (
    Source,
    circuit_calls,
    circuit_states,
    circuit_transitions,
    health_statuses,
    label,
    one_hot,
    ratelimit_requests,
    retry_attempts,
)

__all__ = ["PrometheusCollector"]

# Prometheus's metric names, ASCII only; names starting with __ are reserved.
METRIC_PREFIX = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class PrometheusCollector(Collector):
    """Exposes every policy of ``source`` at scrape time; see the module docstring."""

    def __init__(
        self, source: ResilienceManager | Iterable[Any], namespace: str = "resilience"
    ) -> None:
        if not isinstance(namespace, str):
            raise TypeError(f"namespace must be a str, got {namespace!r}")
        if not METRIC_PREFIX.fullmatch(namespace) or namespace.startswith("__"):
            raise ValueError(
                f"namespace must match [a-zA-Z_:][a-zA-Z0-9_:]* and not start with __,"
                f" got {namespace!r}"
            )
        self._namespace = namespace
        self._source = Source(source)

    def describe(self) -> Iterator[Metric]:
        """The metric families, empty: registering never reads the policies."""
        return self._families({kind: [] for kind in KINDS})

    def collect(self) -> Iterator[Metric]:
        """Every metric, read now."""
        return self._families(self._source.policies())

    def _families(self, policies: dict[str, list[Any]]) -> Iterator[Metric]:
        ns = self._namespace

        def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{ns}_{name}", doc, labels=labels)

        def counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
            return CounterMetricFamily(f"{ns}_{name}", doc, labels=labels)

        # -- circuit breakers
        state = gauge(
            "circuit_state",
            "1 for the breaker's current state, 0 for the others",
            ["name", "state"],
        )
        calls = counter(
            "circuit_calls", "Calls through the breaker by outcome", ["name", "outcome"]
        )
        transitions = counter(
            "circuit_transitions", "Changes of state", ["name", "from_state", "to_state"]
        )
        failure_rate = gauge(
            "circuit_failure_rate", "Failure rate over the breaker's window", ["name"]
        )
        for breaker in policies.get("circuit_breakers", []):
            name = label(breaker)
            stats = breaker.stats
            for s, on in circuit_states(stats):
                state.add_metric([name, s], on)
            for outcome, value in circuit_calls(stats):
                calls.add_metric([name, outcome], value)
            for old, new, n in circuit_transitions(breaker):
                transitions.add_metric([name, old, new], n)
            failure_rate.add_metric([name], stats.failure_rate)
        yield from (state, calls, transitions, failure_rate)

        # -- rate limiters
        requests = counter(
            "ratelimit_requests",
            "Permits asked for, by outcome (refunded: allowed, then handed back unused)",
            ["name", "outcome"],
        )
        available = gauge("ratelimit_available_tokens", "Tokens in the bucket now", ["name"])
        for limiter in policies.get("rate_limiters", []):
            name = label(limiter)
            stats = limiter.stats
            for outcome, value in ratelimit_requests(stats):
                requests.add_metric([name, outcome], value)
            available.add_metric([name], stats.available)
        yield from (requests, available)

        # -- bulkheads
        active = gauge("bulkhead_active", "Calls holding a slot", ["name"])
        queued = gauge("bulkhead_queued", "Calls waiting for a slot", ["name"])
        limit = gauge("bulkhead_max_concurrent", "Slots in all", ["name"])
        rejected = counter(
            "bulkhead_rejected", "Permits refused, failed try_acquire included", ["name"]
        )
        for bulkhead in policies.get("bulkheads", []):
            name = label(bulkhead)
            stats = bulkhead.stats
            active.add_metric([name], stats.active)
            queued.add_metric([name], stats.waiting)
            limit.add_metric([name], stats.max_concurrent)
            rejected.add_metric([name], stats.rejected)
        yield from (active, queued, limit, rejected)

        # -- retries
        attempts = counter("retry_attempts", "Attempts by outcome", ["name", "outcome"])
        retry_calls = counter("retry_calls", "Calls by how they ended", ["name", "outcome"])
        for retry in policies.get("retries", []):
            name = label(retry)
            stats = retry.stats
            for outcome, value in retry_attempts(stats):
                attempts.add_metric([name, outcome], value)
            retry_calls.add_metric([name, "success"], stats.successes)
            retry_calls.add_metric([name, "failure"], stats.failures)
        yield from (attempts, retry_calls)

        # -- error budgets
        remaining = gauge("error_budget_remaining", "Fraction of the error budget left", ["name"])
        burn = gauge(
            "error_budget_burn_rate", "Burn rate over a trailing window", ["name", "window"]
        )
        alerts = gauge(
            "error_budget_alert",
            "1 while a burn-rate alert rule fires",
            ["name", "severity", "long_window", "short_window"],
        )
        for budget in policies.get("error_budgets", []):
            name = label(budget)
            remaining.add_metric([name], budget.remaining)
            windows = sorted(
                {w for rule in budget.rules for w in (rule.long_window, rule.short_window)}
            )
            rates = dict(zip(windows, budget.burn_rates(*windows), strict=True))  # one moment
            for seconds, rate in rates.items():
                burn.add_metric([name, seconds_label(seconds)], rate)
            fired = {
                (a.severity, a.long_window, a.short_window) for a in firing(budget.rules, rates)
            }
            for rule in budget.rules:
                key = (rule.severity, rule.long_window, rule.short_window)
                alerts.add_metric(
                    [
                        name,
                        rule.severity,
                        seconds_label(rule.long_window),
                        seconds_label(rule.short_window),
                    ],
                    1.0 if key in fired else 0.0,
                )
        yield from (remaining, burn, alerts)

        # -- latency budgets
        observed = gauge(
            "latency_budget_observed_seconds",
            "Latency at the budget's target quantile",
            ["name", "quantile"],
        )
        threshold = gauge(
            "latency_budget_threshold_seconds", "The budget's latency threshold", ["name"]
        )
        for budget in policies.get("latency_budgets", []):
            name = label(budget)
            stats = budget.stats
            if stats.observed is not None:
                observed.add_metric([name, repr(stats.target_quantile)], stats.observed)
            threshold.add_metric([name], stats.threshold)
        yield from (observed, threshold)

        # -- health checks
        health = gauge(
            "health_status",
            "1 for the check's current status, 0 for the others",
            ["check", "status"],
        )
        for check in policies.get("health_checks", []):
            for status, on in health_statuses(check):
                health.add_metric([check.name, status], on)
        yield health

        # -- Redis stores, those of the shared policies (each once)
        round_trips = counter(
            "redis_round_trips", "Commands and scripts sent to Redis (a batch is one)", ["prefix"]
        )
        errors = counter("redis_errors", "Round trips that found Redis unreachable", ["prefix"])
        fallbacks = counter(
            "redis_fallback_decisions",
            "Decisions made by on_error instead of Redis (an outage, the guard open)",
            ["prefix"],
        )
        guard = gauge(
            "redis_guard_state",
            "1 for the state of the breaker guarding Redis",
            ["prefix", "state"],
        )
        for store in stores_of(policies):
            stats = store.stats
            prefix = store.prefix
            round_trips.add_metric([prefix], stats.round_trips)
            errors.add_metric([prefix], stats.errors)
            fallbacks.add_metric([prefix], stats.fallbacks)
            for s, on in one_hot(stats.guard):
                guard.add_metric([prefix, s], on)
        yield from (round_trips, errors, fallbacks, guard)


def stores_of(policies: dict[str, list[Any]]) -> list[Any]:
    """The ``RedisStore`` of every shared policy, each once, in order."""
    stores: dict[int, Any] = {}
    for members in policies.values():
        for policy in members:
            store = getattr(policy, "store", None)
            if store is not None:
                stores.setdefault(id(store), store)
    return list(stores.values())


def seconds_label(seconds: float) -> str:
    """``300.0`` -> ``"300"``: windows are labelled in whole seconds where they are whole."""
    return str(int(seconds)) if seconds == int(seconds) else repr(seconds)
