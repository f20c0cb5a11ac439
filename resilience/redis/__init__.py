"""Shared state across processes, kept in Redis (or Valkey).

Install with the extra: ``pip install 'resilience-primitives[redis]'``.

``RedisStore`` holds the clients and what to do when Redis cannot answer;
the policies built on it share their state with every process using the
same server and prefix. ``redis_probe(store)`` is a health probe. Importing
this package imports redis-py (``import resilience`` never does).
"""

from __future__ import annotations

from ..manager import SHARED_KINDS
from ._store import RedisStore, RedisStoreStats, redis_probe
from .breaker import RedisCircuitBreaker
from .bulkhead import RedisBulkhead, RedisBulkheadStats
from .ratelimit import KeyedRedisRateLimiter, RedisRateLimiter

# What a ResilienceManager makes for a config entry with "shared": true.
SHARED_KINDS["rate_limiters"] = RedisRateLimiter
SHARED_KINDS["bulkheads"] = RedisBulkhead
SHARED_KINDS["circuit_breakers"] = RedisCircuitBreaker

__all__ = [
    "KeyedRedisRateLimiter",
    "RedisBulkhead",
    "RedisBulkheadStats",
    "RedisCircuitBreaker",
    "RedisRateLimiter",
    "RedisStore",
    "RedisStoreStats",
    "redis_probe",
]
