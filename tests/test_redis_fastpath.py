"""The store's own path to a plain client (``_Lane``), against a real redis-server.

A store on a plain ``redis.Redis`` / ``redis.asyncio.Redis`` sends EVALSHA
itself on connections it keeps out of the pool between calls. What is
checked: it is taken only where it loses nothing (not for clusters, clients
with retries of their own, a single connection, RESP3); its replies are
redis-py's, argument for argument and error for error, with either parser
(hiredis or redis-py's own), each call with its own keys (heads are packed
once per script and keys; their cache stays bounded); NOSCRIPT reloads
and the reply after it is the script's; a server stopped and started again
(with or without calls in between) gives an outage, then answers again on
the same connections; a cancelled async call leaves no reply for the next
call to read; the connections it holds are as many as its calls at once,
whatever the errors, and all go back to the pool on close; threads and
tasks sharing a store each get their own answers; a forked child uses
none of the parent's. And the bench's Redis rows run on a server of their
own, stopped at the end.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis._parsers.hiredis
import redis._parsers.resp2
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.backoff
import redis.cluster
import redis.exceptions
import redis.retry
from redis_server import RedisCluster, RedisServer
from test_redis_store import ECHO, until_guard_lets_through

from resilience._tools import redisbench
from resilience.redis import RedisRateLimiter, RedisStore
from resilience.redis._store import GUARD_FAILURES, PACKED_HEADS, Script, Unreachable

# Every kind of value a script can give, from every kind of argument.
SHAPES = Script(
    "shapes",
    "return {KEYS[1], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), -7, false,"
    " {1, {2, 'x'}}, #ARGV, redis.status_reply('OK')}",
)
NAMES = Script(
    "names",
    "local out = {} for i, k in ipairs(KEYS) do out[i] = k end out[#out + 1] = ARGV[1] return out",
)
FAILS = Script("fails", "return redis.error_reply('ERR the script says no')")
# Spins on the server for about 0.3 s (its own clock), then answers ARGV[1]:
# a reply that arrives long after the caller gave up.
SLOW = Script(
    "slow",
    "local t = redis.call('TIME') local s = t[1] * 1000000 + t[2]"
    " repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - s > 300000"
    " return {tonumber(ARGV[1])}",
)
ARGS = (b"raw\x00\xc3\xa9", "t\u00e9xt", 2.5, 12345678901234)


def in_use(client: redis.Redis | redis.asyncio.Redis) -> int:
    """Connections the client's pool has handed out and not had back."""
    return len(client.connection_pool._in_use_connections)


def no_retries() -> redis.retry.Retry:
    return redis.retry.Retry(redis.backoff.NoBackoff(), 0)


@pytest.fixture
def plain(redis_url: str) -> Iterator[redis.Redis]:
    """A client configured as the README says: no retries of its own."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2.0, retry=no_retries())
    yield client
    client.close()


# -- where it is taken ----------------------------------------------------------------------


def test_taken_for_plain_clients_only(redis_url: str, redis_cluster: RedisCluster) -> None:
    with RedisStore.from_url(redis_url) as built:
        assert built._sync_lane is not None and built._async_lane is not None
    kept = [
        redis.Redis.from_url(redis_url, retry=redis.retry.Retry(redis.backoff.NoBackoff(), 2)),
        redis.Redis.from_url(redis_url, retry=no_retries(), single_connection_client=True),
        redis.Redis.from_url(redis_url, retry=no_retries(), protocol=3),
        redis.cluster.RedisCluster.from_url(redis_cluster.url),
    ]
    callback = redis.Redis.from_url(redis_url, retry=no_retries())
    callback.set_response_callback("EVALSHA", lambda reply, **options: reply)
    kept.append(callback)
    for client in kept:
        store = RedisStore(client=client)
        assert store._sync_lane is None, client
        assert store.run_sync(ECHO, ("{k}:x",), (1,)) == [2]  # through redis-py
        client.close()
    cluster = redis.asyncio.cluster.RedisCluster.from_url(redis_cluster.url)
    assert RedisStore(async_client=cluster)._async_lane is None


# -- either parser -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parser", [redis._parsers.resp2._RESP2Parser, redis._parsers.hiredis._HiredisParser]
)
def test_either_parser(fresh_redis_server: RedisServer, parser: type) -> None:
    """redis-py's pure parser and hiredis: the same replies, reloads and reconnections."""
    client = redis.Redis.from_url(
        fresh_redis_server.url, socket_timeout=2.0, retry=no_retries(), parser_class=parser
    )
    store = RedisStore(client=client)
    assert store._sync_lane is not None
    client.script_load(SHAPES.source)
    assert store.run_sync(SHAPES, ("{k}:s",), ARGS) == client.evalsha(SHAPES.sha, 1, "{k}:s", *ARGS)
    client.script_flush()
    assert store.run_sync(ECHO, ("{k}:x",), (1,)) == [2]
    fresh_redis_server.stop()
    fresh_redis_server.start()
    assert store.run_sync(ECHO, ("{k}:x",), (2,)) == [3]
    assert store.stats.errors == 0
    store.close()
    client.close()


# -- the same replies ------------------------------------------------------------------------


@pytest.mark.parametrize("decode", [False, True])
def test_replies_and_errors_are_redis_pys(redis_url: str, decode: bool) -> None:
    client = redis.Redis.from_url(redis_url, retry=no_retries(), decode_responses=decode)
    store = RedisStore(client=client)
    assert store._sync_lane is not None
    keys = ("{k}:sh\u00e4pes",)
    client.script_load(SHAPES.source)
    expected = client.evalsha(SHAPES.sha, 1, *keys, *ARGS)
    assert store.run_sync(SHAPES, keys, ARGS) == expected
    assert expected[1] == ("raw\x00\u00e9" if decode else b"raw\x00\xc3\xa9")
    client.script_load(FAILS.source)
    with pytest.raises(redis.exceptions.ResponseError) as theirs:
        client.evalsha(FAILS.sha, 0)
    with pytest.raises(redis.exceptions.ResponseError) as ours:
        store.run_sync(FAILS, (), ())
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)
    assert store.run_sync(ECHO, ("{k}:x",), (7,)) == [8]  # an error reply leaves it clean
    client.close()


def test_every_key_is_its_own_and_the_packed_heads_stay_bounded(redis_url: str) -> None:
    """Heads are packed once per script and keys: each call still names its own keys,
    and more keys than ``PACKED_HEADS`` keep the cache within it."""
    store = RedisStore.from_url(redis_url)
    for n in range(PACKED_HEADS + 100):
        keys = (f"{{t{n}}}:a", f"{{t{n}}}:b") if n % 3 == 0 else (f"{{t{n}}}:a",)
        assert store.run_sync(NAMES, keys, (n,)) == [*(k.encode() for k in keys), b"%d" % n]
    assert store.run_sync(ECHO, ("{t0}:a",), (1,)) == [2]  # another script, the same key
    assert 0 < len(store._sync_lane.heads) <= PACKED_HEADS  # type: ignore[union-attr]
    store.close()


def test_async_replies_are_redis_pys(redis_url: str) -> None:
    async def main() -> None:
        client = redis.asyncio.Redis.from_url(
            redis_url, retry=redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0)
        )
        store = RedisStore(async_client=client)
        assert store._async_lane is not None
        await client.script_load(SHAPES.source)
        expected = await client.evalsha(SHAPES.sha, 1, "{k}:s", *ARGS)
        assert await store.run_async(SHAPES, ("{k}:s",), ARGS) == expected
        with pytest.raises(redis.exceptions.ResponseError, match="the script says no"):
            await store.run_async(FAILS, (), ())
        assert await store.run_async(ECHO, ("{k}:x",), (7,)) == [8]
        await store.aclose()
        await client.aclose()

    asyncio.run(main())


def test_limiter_decisions_match_the_redis_py_path(redis_url: str) -> None:
    """The same bucket shape on both paths: the same decisions, token by token."""
    slow_client = redis.Redis.from_url(redis_url, retry=no_retries(), single_connection_client=True)
    paths = {
        "own": RedisStore.from_url(redis_url),
        "redis-py": RedisStore(client=slow_client),
    }
    assert paths["redis-py"]._sync_lane is None
    seen = {}
    for name, store in paths.items():
        limiter = RedisRateLimiter(store, f"same-{name}", 1, per=3600.0, burst=5)
        seen[name] = [
            (d.allowed, d.remaining, d.retry_after > 0)
            for d in (limiter.decide(t) for t in (1, 2, 1, 3, 1, 1, 9))
        ]
    assert seen["own"] == seen["redis-py"]
    allowed = [True, True, True, False, True, False, False]
    assert [was_allowed for was_allowed, _, _ in seen["own"]] == allowed
    for store in paths.values():
        store.close()
    slow_client.close()


# -- NOSCRIPT -----------------------------------------------------------------------------------


def test_noscript_reloads_and_the_next_reply_is_the_scripts(store_and_admin: Any) -> None:
    store, admin = store_and_admin
    for round_ in range(3):
        admin.script_flush()
        assert store.run_sync(ECHO, ("{k}:x",), (round_,)) == [round_ + 1]
        assert store.run_sync(ECHO, ("{k}:x",), (100 + round_,)) == [101 + round_]

    async def main() -> list[int]:
        replies: list[int] = []
        for round_ in range(3):
            admin.script_flush()
            replies += await store.run_async(ECHO, ("{k}:x",), (round_,))
            replies += await store.run_async(ECHO, ("{k}:x",), (100 + round_,))
        await store.aclose()
        return replies

    assert asyncio.run(main()) == [1, 101, 2, 102, 3, 103]
    assert store.stats.errors == 0


@pytest.fixture
def store_and_admin(redis_url: str) -> Iterator[tuple[RedisStore, redis.Redis]]:
    with (
        RedisStore.from_url(redis_url, timeout=2.0) as store,
        redis.Redis.from_url(redis_url) as admin,
    ):
        yield store, admin


# -- outages --------------------------------------------------------------------------------


def test_a_stopped_server_is_an_outage_then_answers_again(
    fresh_redis_server: RedisServer,
) -> None:
    store = RedisStore.from_url(fresh_redis_server.url, timeout=0.5)
    assert store.run_sync(ECHO, ("{k}:x",), (1,)) == [2]
    fresh_redis_server.stop()
    for _ in range(GUARD_FAILURES):
        assert isinstance(store.run_sync(ECHO, ("{k}:x",), (1,)), Unreachable)
    assert store.stats.errors == GUARD_FAILURES
    fresh_redis_server.start()
    until_guard_lets_through(store)
    assert store.run_sync(ECHO, ("{k}:x",), (5,)) == [6]
    assert store.run_sync(ECHO, ("{k}:x",), (6,)) == [7]
    assert store.stats.errors == GUARD_FAILURES
    store.close()
    assert in_use(store.client) == 0  # type: ignore[arg-type]


def test_a_restart_between_calls_is_not_an_outage(fresh_redis_server: RedisServer) -> None:
    """Idle connections the server closed are made again, not failed on."""
    store = RedisStore.from_url(fresh_redis_server.url, timeout=0.5)

    async def call(n: int) -> Any:
        return await store.run_async(ECHO, ("{k}:x",), (n,))

    async def main() -> None:
        assert await call(1) == [2]
        assert store.run_sync(ECHO, ("{k}:x",), (1,)) == [2]
        fresh_redis_server.stop()
        fresh_redis_server.start()
        await asyncio.sleep(0.05)  # the loop sees the closed socket
        assert await call(2) == [3]
        assert store.run_sync(ECHO, ("{k}:x",), (3,)) == [4]
        await store.aclose()

    asyncio.run(main())
    assert store.stats.errors == 0


def test_async_outage_then_recovery(fresh_redis_server: RedisServer) -> None:
    store = RedisStore.from_url(fresh_redis_server.url, timeout=0.5)

    async def main() -> None:
        assert await store.run_async(ECHO, ("{k}:x",), (1,)) == [2]
        fresh_redis_server.stop()
        for _ in range(GUARD_FAILURES):
            assert isinstance(await store.run_async(ECHO, ("{k}:x",), (1,)), Unreachable)
        fresh_redis_server.start()
        await asyncio.to_thread(until_guard_lets_through, store)
        assert await store.run_async(ECHO, ("{k}:x",), (8,)) == [9]
        await store.aclose()
        assert in_use(store.async_client) == 0  # type: ignore[arg-type]

    asyncio.run(main())


def test_a_timeout_drops_the_late_reply(redis_url: str) -> None:
    """A read that times out disconnects: its reply, when it comes, reaches nobody."""
    store = RedisStore.from_url(redis_url, timeout=0.1)
    with redis.Redis.from_url(redis_url) as admin:  # the timeout is on the EVALSHA, not a reload
        admin.script_load(SLOW.source)
        admin.script_load(ECHO.source)
    assert isinstance(store.run_sync(SLOW, ("{k}:x",), (1,)), Unreachable)
    assert store.run_sync(ECHO, ("{k}:x",), (2,)) == [3]
    store.close()


# -- cancellation ----------------------------------------------------------------------------


def test_a_cancelled_async_call_leaves_no_reply_to_read(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, timeout=2.0)

    async def main() -> None:
        await store.run_async(ECHO, ("{k}:x",), (0,))  # loads the scripts first
        await store.run_async(SLOW, ("{k}:y",), (0,))
        slow = asyncio.ensure_future(store.run_async(SLOW, ("{k}:y",), (-1,)))
        await asyncio.sleep(0.05)  # sent: the server is spinning on it
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        # The slow reply arrives while these run; none of them may read it.
        for n in range(20):
            assert await store.run_async(ECHO, ("{k}:x",), (n,)) == [n + 1]
        await store.aclose()
        assert in_use(store.async_client) == 0  # type: ignore[arg-type]

    asyncio.run(main())
    assert store.stats.errors == 0


# -- connections -------------------------------------------------------------------------------


def test_connections_are_held_once_and_given_back(plain: redis.Redis) -> None:
    store = RedisStore(client=plain, timeout=2.0)
    for n in range(300):
        assert store.run_sync(ECHO, ("{k}:x",), (n,)) == [n + 1]
        with pytest.raises(redis.exceptions.ResponseError):
            store.run_sync(FAILS, (), ())
        assert in_use(plain) == 1
    store.close()
    assert in_use(plain) == 0
    assert plain.ping()  # the given client is still the giver's


def test_connections_after_errors_are_given_back(fresh_redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(fresh_redis_server.url, socket_timeout=0.5, retry=no_retries())
    store = RedisStore(client=client)
    assert store.run_sync(ECHO, ("{k}:x",), (1,)) == [2]
    fresh_redis_server.stop()
    for _ in range(GUARD_FAILURES):
        assert isinstance(store.run_sync(ECHO, ("{k}:x",), (1,)), Unreachable)
    assert in_use(client) <= 1
    store.close()
    assert in_use(client) == 0
    client.close()


def test_threads_sharing_a_store_get_their_own_replies(plain: redis.Redis) -> None:
    store = RedisStore(client=plain, timeout=2.0)
    burst = 500
    limiter = RedisRateLimiter(store, "threads", 1, per=3600.0, burst=burst)
    threads, each = 8, 200
    granted = [0] * threads
    wrong: list[tuple[int, object]] = []
    barrier = threading.Barrier(threads)

    def work(index: int) -> None:
        barrier.wait()
        for n in range(each):
            echo = store.run_sync(ECHO, ("{k}:x",), (index * 1000 + n,))
            if echo != [index * 1000 + n + 1]:
                wrong.append((index, echo))
            granted[index] += limiter.try_acquire()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert wrong == []
    assert sum(granted) == burst  # the shared bucket, exactly: 1600 asked
    assert 1 <= in_use(plain) <= threads
    store.close()
    assert in_use(plain) == 0


def test_tasks_sharing_a_store_get_their_own_replies(redis_url: str) -> None:
    async def main() -> None:
        store = RedisStore.from_url(redis_url, timeout=2.0)
        tasks = 64

        async def one(index: int) -> list[int]:
            replies = []
            for n in range(20):
                replies += await store.run_async(ECHO, (f"{{k{index}}}:x",), (index * 100 + n,))
            return replies

        results = await asyncio.gather(*(one(i) for i in range(tasks)))
        for index, replies in enumerate(results):
            assert replies == [index * 100 + n + 1 for n in range(20)]
        assert 1 <= in_use(store.async_client) <= tasks  # type: ignore[arg-type]
        pool = store.async_client.connection_pool  # type: ignore[union-attr]
        await store.aclose()
        assert len(pool._in_use_connections) == 0

    asyncio.run(main())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_uses_none_of_the_parents_connections(plain: redis.Redis) -> None:
    store = RedisStore(client=plain, timeout=2.0)
    assert store.run_sync(ECHO, ("{k}:x",), (1,)) == [2]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            held = len(store._sync_lane.idle)  # type: ignore[union-attr]
            replies = [store.run_sync(ECHO, ("{k}:x",), (n,)) for n in range(50)]
            good = replies == [[n + 1] for n in range(50)]
            os.write(write, f"{held} {good}".encode())
        finally:
            os._exit(0)
    os.close(write)
    # The parent keeps deciding on its own connection meanwhile.
    parent = [store.run_sync(ECHO, ("{k}:x",), (n,)) for n in range(50)]
    with os.fdopen(read) as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    assert child == "0 True"
    assert parent == [[n + 1] for n in range(50)]
    store.close()


# -- the bench's Redis rows ------------------------------------------------------------------------


def test_the_bench_rows_run_against_their_own_server_and_stop_it(redis_server: RedisServer) -> None:
    """The rows measure (every decision allowed: they raise otherwise) and leave no server.

    ``redis_server`` only makes this an integration test: the rows start their own.
    """
    lines: list[str] = []
    results = redisbench.run(repeat=1, target=0.001, out=lines.append)
    assert results["server"] != redis_server.url
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis.from_url(results["server"], socket_timeout=1.0).ping()
    assert set(results["sync_us"]) >= {"redis-py PING (bare)", "resilience decide()"}
    assert all(figure > 0 for figure in results["sync_us"].values())
    assert results["decide_vs_ping"] > 0 and results["lease_ns"] > 0
    assert results["async_per_second"]["resilience adecide()"] > 0
    assert any("decide() / PING" in line for line in lines)
