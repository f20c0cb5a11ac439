"""Shared policies in the registry and the exporter: ``"shared": true`` config
entries, and the Prometheus metrics of their Redis stores.

Against real servers (the ``redis_url`` and ``fresh_redis_server`` fixtures).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from redis_server import RedisServer
from test_prometheus import L, Scrape

from resilience import Bulkhead, RateLimiter, ResilienceManager
from resilience.errors import RateLimitExceeded
from resilience.metrics.prometheus import PrometheusCollector
from resilience.redis import RedisBulkhead, RedisRateLimiter, RedisStore


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStore]:
    with RedisStore.from_url(redis_url, prefix="svc") as store:
        yield store


def test_a_shared_entry_is_made_in_redis_and_the_others_locally(
    store: RedisStore, redis_url: str
) -> None:
    config = {
        "rate_limiters": {"api": {"rate": 2, "per": 60.0, "shared": True}, "cpu": {"rate": 5}}
    }
    manager = ResilienceManager(config, store=store)
    shared, local = manager.rate_limiter("api"), manager.rate_limiter("cpu")
    assert type(shared) is RedisRateLimiter and shared.store is store
    assert type(local) is RateLimiter
    stats = shared.stats
    assert (stats.name, stats.rate, stats.per) == ("api", 2.0, 60.0)
    # The same name is the same object, and its settings are checked as for local ones.
    assert manager.rate_limiter("api", rate="2/minute", shared=True) is shared
    with pytest.raises(ValueError, match="other settings"):
        manager.rate_limiter("api", burst=9)
    # Two managers on one server share the bucket, as two processes would.
    other = ResilienceManager(config, store=RedisStore.from_url(redis_url, prefix="svc"))
    assert [shared.try_acquire(), other.rate_limiter("api").try_acquire()] == [True, True]
    with pytest.raises(RateLimitExceeded):
        other.rate_limiter("api").call(lambda: None)
    assert manager.snapshot()["rate_limiters"]["api"]["allowed"] == 1


def test_bad_shared_entries_are_refused_at_start_up(store: RedisStore) -> None:
    with pytest.raises(ValueError, match="give the manager a store"):
        ResilienceManager({"rate_limiters": {"api": {"rate": 1, "shared": True}}})
    with pytest.raises(ValueError, match=r"only \[.*'rate_limiters'.*\] can be shared"):
        ResilienceManager({"retries": {"r": {"shared": True}}}, store=store)
    with pytest.raises(TypeError, match="shared must be True or False, got 'yes'"):
        ResilienceManager({"rate_limiters": {"api": {"rate": 1, "shared": "yes"}}}, store=store)
    with pytest.raises(TypeError, match="store"):
        ResilienceManager({"rate_limiters": {"api": {"rate": 1, "shared": True}}}, store="redis://")


def test_the_manager_imports_redis_only_for_a_shared_entry() -> None:
    check = (
        "import sys, resilience, resilience.manager;"
        "from resilience import ResilienceManager;"
        "ResilienceManager({'rate_limiters': {'a': {'rate': 1}}});"
        "print(sorted(m for m in sys.modules if m == 'redis' or m.startswith('resilience.redis')))"
    )
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_the_exporter_shows_shared_limiters_and_their_store(
    fresh_redis_server: RedisServer,
) -> None:
    store = RedisStore.from_url(fresh_redis_server.url, prefix="svc", on_error="deny")
    manager = ResilienceManager(
        {"rate_limiters": {"api": {"rate": 1, "per": 60.0, "shared": True}}}, store=store
    )
    registry = CollectorRegistry()
    registry.register(PrometheusCollector(manager))
    limiter = manager.rate_limiter("api")
    assert [limiter.try_acquire() for _ in range(3)] == [True, False, False]
    scrape = Scrape(registry)
    assert scrape("resilience_ratelimit_requests_total", name="api") == {
        L(name="api", outcome="allowed"): 1.0,
        L(name="api", outcome="rejected"): 2.0,
        L(name="api", outcome="refunded"): 0.0,
    }
    assert scrape.value("resilience_redis_round_trips_total", prefix="svc") == 3.0
    assert scrape.value("resilience_redis_fallback_decisions_total", prefix="svc") == 0.0
    assert scrape.value("resilience_redis_guard_state", prefix="svc", state="closed") == 1.0

    fresh_redis_server.stop()  # an outage: every decision falls back, and is counted
    for _ in range(5):
        assert not limiter.try_acquire()  # on_error="deny"
    scrape = Scrape(registry)
    assert scrape.value("resilience_redis_fallback_decisions_total", prefix="svc") == 5.0
    assert scrape.value("resilience_redis_errors_total", prefix="svc") >= 1.0
    assert scrape.value("resilience_redis_guard_state", prefix="svc", state="open") == 1.0
    store.close()


def test_a_shared_bulkhead_takes_the_local_settings(store: RedisStore) -> None:
    config = {
        "bulkheads": {"db": {"max_concurrent": 2, "shared": True}, "cpu": {"max_concurrent": 3}}
    }
    manager = ResilienceManager(config, store=store)
    shared, local = manager.bulkhead("db"), manager.bulkhead("cpu")
    assert type(shared) is RedisBulkhead and type(local) is Bulkhead
    assert [shared.try_acquire(), shared.try_acquire(), shared.try_acquire()] == [True, True, False]
    shared.release()
    shared.release()
    assert manager.snapshot()["bulkheads"]["db"]["max_concurrent"] == 2
