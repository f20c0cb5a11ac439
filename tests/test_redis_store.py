"""RedisStore and redis_probe against a real redis-server (fixtures in conftest.py).

What is checked: the clients the store builds (no retries of redis-py's own,
socket timeouts of ``timeout``), the key layout (one hash tag, escaped
parts), EVALSHA reloaded after SCRIPT FLUSH, the guard during an outage
(detected, logged once, nothing sent while it is open, recovery when the
server comes back on its port), stats, closing, forking and bad input.
Server time is real: waits are bounded polls, never assertions on speed.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import math
import os
import time
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from redis.crc import key_slot
from redis_server import RedisServer

from resilience import CircuitState, HealthCheck, HealthStatus
from resilience.redis import RedisStore, redis_probe
from resilience.redis._store import GUARD_FAILURES, Script

GUARD = 10.0  # seconds: bounds a poll for the guard's probe (due after 1 s); never asserted

ECHO = Script("echo", "return {tonumber(ARGV[1]) + 1}")
ECHO_SHA = hashlib.sha1(ECHO.source.encode()).hexdigest()


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStore]:
    with RedisStore.from_url(redis_url) as built:
        yield built


def connected_clients(server_url: str, name: str) -> int:
    """Connections of the clients named ``name`` (other tests' may come and go meanwhile)."""
    with redis.Redis.from_url(server_url) as watcher:
        return sum(1 for client in watcher.client_list() if client.get("name") == name)


def named(server_url: str, name: str) -> str:
    """The URL with a client name, which every connection made from it carries."""
    return f"{server_url}{'&' if '?' in server_url else '?'}client_name={name}"


def until_guard_lets_through(store: RedisStore) -> None:
    """Poll the guard (real time: it probes a second after opening)."""
    deadline = time.monotonic() + GUARD
    while store.guard.state is CircuitState.OPEN:
        assert time.monotonic() < deadline, "the guard never let a probe through"
        time.sleep(0.05)


# -- the clients it builds ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["client", "async_client"])
def test_built_clients_have_no_retries_and_the_timeout(redis_url: str, kind: str) -> None:
    store = RedisStore.from_url(redis_url, timeout=0.2)
    client = getattr(store, kind)
    settings = client.connection_pool.connection_kwargs
    assert settings["socket_timeout"] == 0.2
    assert settings["socket_connect_timeout"] == 0.2
    assert settings["retry"].get_retries() == 0
    assert settings["retry_on_error"] == []


def test_a_round_trip_runs_the_script_and_counts(store: RedisStore) -> None:
    assert store.run_sync(ECHO, ("{k}:x",), (41,)) == [42]
    stats = store.stats
    assert (stats.round_trips, stats.errors, stats.fallbacks) == (1, 0, 0)
    assert stats.guard is CircuitState.CLOSED


def test_async_round_trip(store: RedisStore) -> None:
    async def main() -> list[int]:
        reply: list[int] = await store.run_async(ECHO, ("{k}:x",), (1,))
        await store.aclose()
        return reply

    assert asyncio.run(main()) == [2]
    assert store.stats.round_trips == 1


def test_noscript_reloads_after_script_flush(store: RedisStore, redis_url: str) -> None:
    assert store.run_sync(ECHO, ("{k}:x",), (1,)) == [2]
    with redis.Redis.from_url(redis_url) as admin:
        admin.script_flush()
        assert admin.script_exists(ECHO_SHA) == [False]
        assert store.run_sync(ECHO, ("{k}:x",), (2,)) == [3]
        assert admin.script_exists(ECHO_SHA) == [True]

        async def main() -> list[int]:
            reply: list[int] = await store.run_async(ECHO, ("{k}:x",), (5,))
            admin.script_flush()
            reply += await store.run_async(ECHO, ("{k}:x",), (6,))
            return reply

        assert asyncio.run(main()) == [6, 7]
    assert store.stats.errors == 0


# -- keys -------------------------------------------------------------------------------


def test_keys_carry_one_hash_tag_per_policy_and_key(store: RedisStore) -> None:
    assert store.key("ratelimit", "stripe", None, "tat") == "{resilience:v1:ratelimit:stripe}:tat"
    assert (
        store.key("ratelimit", "stripe", "tenant-1", "tat")
        == "{resilience:v1:ratelimit:stripe:tenant-1}:tat"
    )
    # Fields of one policy share the slot; the tag is what is hashed.
    a = store.key("bulkhead", "db", None, "leases")
    b = store.key("bulkhead", "db", None, "queue")
    assert key_slot(a.encode()) == key_slot(b.encode())
    assert key_slot(a.encode()) == key_slot(b"resilience:v1:bulkhead:db")


def test_names_and_keys_are_escaped(store: RedisStore) -> None:
    # Without escaping, name "a:b" and name "a" with key "b" would share a bucket.
    assert store.key("ratelimit", "a:b", None, "tat") != store.key("ratelimit", "a", "b", "tat")
    # A brace in a key cannot end the hash tag early (which would put every
    # tenant whose key starts alike in one slot).
    key = store.key("ratelimit", "n", "x}y{z", "tat")
    assert key.count("{") == 1 and key.count("}") == 1
    assert key == "{resilience:v1:ratelimit:n:x%7Dy%7Bz}:tat"
    assert store.key("ratelimit", "n", "50%", "tat") != store.key("ratelimit", "n", "50%25", "tat")


# -- an outage ------------------------------------------------------------------------------


def test_outage_detected_logged_once_guarded_and_recovered(
    fresh_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore.from_url(fresh_redis_server.url, timeout=0.5)
    assert store.run_sync(ECHO, ("{k}:x",), (1,)) == [2]
    fresh_redis_server.stop()
    caplog.set_level(logging.WARNING, logger="resilience")
    for _ in range(GUARD_FAILURES):
        assert store.run_sync(ECHO, ("{k}:x",), (1,), decisions=2).__class__.__name__ == (
            "Unreachable"
        )
    stats = store.stats
    assert stats.guard is CircuitState.OPEN
    assert (stats.round_trips, stats.errors, stats.fallbacks) == (4, 3, 6)
    warnings = store_warnings(caplog)
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
    # While the guard is open nothing is sent: no round trip, no socket timeout.
    for _ in range(50):
        down = store.run_sync(ECHO, ("{k}:x",), (1,))
        assert 0.0 < down.retry_after <= 1.0
    assert store.stats.round_trips == 4 and store.stats.fallbacks == 56
    fresh_redis_server.start()  # the same port
    until_guard_lets_through(store)
    deadline = time.monotonic() + GUARD
    while store.run_sync(ECHO, ("{k}:x",), (1,)) != [2]:
        assert time.monotonic() < deadline, "the store never reached Redis again"
        time.sleep(0.05)
    assert store.stats.guard is CircuitState.CLOSED
    # Logged once for the whole outage.
    assert len(store_warnings(caplog)) == 1


def test_async_outage_falls_back_without_waiting(fresh_redis_server: RedisServer) -> None:
    store = RedisStore.from_url(fresh_redis_server.url)
    fresh_redis_server.stop()

    async def main() -> None:
        for _ in range(GUARD_FAILURES + 10):
            down = await store.run_async(ECHO, ("{k}:x",), (1,))
            assert down.__class__.__name__ == "Unreachable"

    asyncio.run(main())
    assert store.stats.round_trips == GUARD_FAILURES  # the rest never reached a socket
    assert store.stats.errors == GUARD_FAILURES


def test_script_errors_are_raised_not_outages(store: RedisStore) -> None:
    broken = Script("broken", "return redis.call('NOSUCHCOMMAND')")
    for _ in range(GUARD_FAILURES + 1):
        with pytest.raises(redis.ResponseError):
            store.run_sync(broken, ("{k}:x",), ())
    stats = store.stats
    assert stats.errors == 0 and stats.guard is CircuitState.CLOSED


# -- health -------------------------------------------------------------------------------


def test_redis_probe_in_a_health_check(fresh_redis_server: RedisServer) -> None:
    store = RedisStore.from_url(fresh_redis_server.url, timeout=0.5)
    check = HealthCheck("redis", redis_probe(store), failure_threshold=1, timeout=5.0)
    assert check.run() is HealthStatus.UP
    fresh_redis_server.stop()
    assert check.run() is HealthStatus.DOWN
    assert isinstance(check.last_error, redis.ConnectionError)


def test_redis_probe_is_async_for_an_async_only_store(redis_url: str) -> None:
    async def main() -> bool:
        client = redis.asyncio.Redis.from_url(redis_url)
        probe = redis_probe(RedisStore(async_client=client))
        result = await probe()  # type: ignore[misc]
        await client.aclose()
        return bool(result)

    assert asyncio.run(main()) is True


# -- life cycle ----------------------------------------------------------------------------


def test_close_closes_only_what_it_built(redis_url: str) -> None:
    with RedisStore.from_url(named(redis_url, "built")) as built:
        built.run_sync(ECHO, ("{k}:x",), (1,))
        assert connected_clients(redis_url, "built") == 1
    assert connected_clients(redis_url, "built") == 0
    given = redis.Redis.from_url(redis_url)
    with RedisStore(client=given) as store:
        store.run_sync(ECHO, ("{k}:x",), (1,))
    assert given.ping()  # still the giver's, still open
    given.close()


def test_async_with_closes_both(redis_url: str) -> None:
    async def main() -> None:
        async with RedisStore.from_url(named(redis_url, "both")) as store:
            await store.run_async(ECHO, ("{k}:x",), (1,))
            store.run_sync(ECHO, ("{k}:x",), (1,))
            assert connected_clients(redis_url, "both") == 2
        assert connected_clients(redis_url, "both") == 0

    asyncio.run(main())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_has_its_own_connection_and_id(store: RedisStore, redis_url: str) -> None:
    store.run_sync(ECHO, ("{k}:x",), (1,))
    parent_id = store.process_id
    parent_connection = store.client.client_id()  # type: ignore[union-attr]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running pytest's exit
        try:
            reply = store.run_sync(ECHO, ("{k}:x",), (9,))
            child = (
                f"{store.process_id} {store.client.client_id()} {reply} {store.stats.round_trips}"  # type: ignore[union-attr]
            )
            os.write(write, child.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_id, child_connection, *rest = pipe.read().split(" ", 2)
    os.waitpid(pid, 0)
    assert child_id != parent_id and len(child_id) == 32
    assert int(child_connection) != parent_connection
    assert rest == ["[10] 1"]  # the child's counts start at zero
    assert store.run_sync(ECHO, ("{k}:x",), (1,)) == [2]  # the parent's connection still works
    assert store.client.client_id() == parent_connection  # type: ignore[union-attr]


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"on_error": "ignore"}, ValueError, "on_error"),
        ({"on_error": None}, TypeError, "on_error"),
        ({"local_share": 0}, ValueError, "local_share"),
        ({"local_share": 1.5}, ValueError, "local_share"),
        ({"local_share": math.nan}, ValueError, "local_share"),
        ({"local_share": "1"}, TypeError, "local_share"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": -1}, ValueError, "timeout"),
        ({"timeout": math.inf}, ValueError, "timeout"),
        ({"timeout": True}, TypeError, "timeout"),
        ({"prefix": ""}, TypeError, "prefix"),
        ({"prefix": 7}, TypeError, "prefix"),
        ({"prefix": "a{b}"}, ValueError, "prefix"),
    ],
)
def test_bad_settings(redis_url: str, kwargs: dict[str, object], error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        RedisStore.from_url(redis_url, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(error, match=words):
        RedisStore(client=redis.Redis(), **kwargs)  # type: ignore[arg-type]


def test_bad_clients() -> None:
    with pytest.raises(TypeError, match="client="):
        RedisStore()
    with pytest.raises(TypeError, match="client must be"):
        RedisStore(client=redis.asyncio.Redis())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async_client must be"):
        RedisStore(async_client=redis.Redis())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="url"):
        RedisStore.from_url(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="store"):
        redis_probe("redis://")  # type: ignore[arg-type]


def test_a_missing_client_is_a_type_error(redis_url: str) -> None:
    async_only = RedisStore(async_client=redis.asyncio.Redis.from_url(redis_url))
    with pytest.raises(TypeError, match="no sync client"):
        async_only.run_sync(ECHO, ("{k}:x",), (1,))
    sync_only = RedisStore(client=redis.Redis.from_url(redis_url))
    with pytest.raises(TypeError, match="no async client"):
        asyncio.run(sync_only.run_async(ECHO, ("{k}:x",), (1,)))


def test_a_store_is_not_copied(store: RedisStore) -> None:
    with pytest.raises(TypeError, match="cannot be copied"):
        copy.copy(store)


def store_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The store's own warnings (the guard breaker's changes of state are logged apart)."""
    return [
        r
        for r in caplog.records
        if r.name == "resilience"
        and r.levelno == logging.WARNING
        and not hasattr(r, "resilience_event")
    ]
