"""RedisBulkhead and the store's worker, against real redis-servers (fixtures in conftest.py).

What is checked: the cap holds across spawned processes; a SIGKILLed
holder's permits come back after ``lease_ttl`` while a live holder's lease
is renewed; waiters wake on a release (pub/sub, so without polling: counted
in round trips) and at the earliest expiry; permits come back on
exceptions and cancellation; ``on_error`` during an outage and the recovery
after it; keys (one hash slot, a TTL each) on a server and on a cluster;
bad input and bad replies; the worker's life. Server time is real: waits
are bounded polls (``GUARD``), never assertions on speed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.cluster
from redis_server import RedisCluster, RedisServer

from resilience import (
    BulkheadFullError,
    BulkheadStats,
    CircuitState,
    Pipeline,
    ResilienceError,
    deadline,
)
from resilience.redis import RedisStore
from resilience.redis import _worker as worker_module
from resilience.redis import bulkhead as redis_bulkhead
from resilience.redis._store import GUARD_FAILURES, Script, Unreachable
from resilience.redis.bulkhead import RedisBulkhead, RedisBulkheadStats

GUARD = 10.0  # seconds: bounds polls and waits on real time; never asserted
# A short lease life, renewed every third of it: a renewal may come a third
# of a second late (a loaded machine) before the lease runs out.
LEASE = 0.6


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStore]:
    with RedisStore.from_url(redis_url, timeout=1.0) as built:
        yield built


def holders(store: RedisStore, name: str) -> int:
    """The leases in the server's set (live or not yet dropped)."""
    assert store.client is not None
    return int(store.client.zcard(store.key("bulkhead", name, None, "holders")))


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


async def auntil(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.01)


# -- one process --------------------------------------------------------------------------


def test_limit_and_release(store: RedisStore) -> None:
    bulkhead = RedisBulkhead(store, "db", 2)
    assert [bulkhead.try_acquire() for _ in range(3)] == [True, True, False]
    assert holders(store, "db") == 2
    with pytest.raises(BulkheadFullError) as caught:
        bulkhead.acquire()
    assert caught.value.name == "db" and caught.value.retry_after is None
    bulkhead.release()
    assert holders(store, "db") == 1
    assert bulkhead.try_acquire()
    stats = bulkhead.stats
    assert isinstance(stats, RedisBulkheadStats) and isinstance(stats, BulkheadStats)
    assert stats == RedisBulkheadStats(
        name="db", max_concurrent=2, max_queue=0, active=2, waiting=0,
        acquired=3, rejected=2, fallbacks=0, lost=0,
    )
    bulkhead.release()
    bulkhead.release()
    with pytest.raises(RuntimeError, match="no permit held"):
        bulkhead.release()
    assert holders(store, "db") == 0


def test_two_stores_share_the_cap(redis_url: str) -> None:
    # Two stores are two fleet members (each its own process id).
    with RedisStore.from_url(redis_url) as one, RedisStore.from_url(redis_url) as two:
        first = RedisBulkhead(one, "shared", 3)
        second = RedisBulkhead(two, "shared", 3)
        assert [first.try_acquire(), second.try_acquire(), first.try_acquire()] == [True] * 3
        assert not second.try_acquire() and not first.try_acquire()
        first.release()
        assert second.try_acquire()


def test_every_key_has_a_ttl_and_one_hash_slot(store: RedisStore) -> None:
    bulkhead = RedisBulkhead(store, "ttl:{x}", 5, lease_ttl=20.0)
    for _ in range(3):
        assert bulkhead.try_acquire()
    assert store.client is not None
    keys = list(store.client.scan_iter("*"))
    assert keys
    for key in keys:
        assert 0 < store.client.pttl(key) <= 20_000
    # The channel and the set share the policy's hash tag (one slot).
    tags = {key.decode()[: key.decode().index("}") + 1] for key in keys}
    tags.add(bulkhead._channel[: bulkhead._channel.index("}") + 1])
    assert len(tags) == 1
    for _ in range(3):
        bulkhead.release()
    assert list(store.client.scan_iter("*")) == []  # an empty set is no key at all


def test_every_form_takes_one_permit_and_gives_it_back(store: RedisStore) -> None:
    bulkhead = RedisBulkhead(store, "forms", 1)
    seen: list[int] = []

    @bulkhead
    def decorated(x: int) -> int:
        seen.append(holders(store, "forms"))
        return x * 2

    class Service:
        @bulkhead
        def method(self) -> int:
            seen.append(holders(store, "forms"))
            return 7

    assert decorated(21) == 42
    assert Service().method() == 7
    def noted(value: int) -> int:
        seen.append(holders(store, "forms"))
        return value

    assert bulkhead.call(noted, 3) == 3
    with bulkhead:
        seen.append(holders(store, "forms"))
    with pytest.raises(KeyError), bulkhead:  # the caller's exception, unchanged
        raise KeyError("inside")
    with pytest.raises(ZeroDivisionError):
        bulkhead.call(lambda: 1 / 0)
    assert Pipeline(bulkhead).call(noted, 4) == 4
    assert seen == [1, 1, 1, 1, 1]
    assert holders(store, "forms") == 0 and bulkhead.active == 0
    assert bulkhead.stats.acquired == 7


def test_async_forms(store: RedisStore) -> None:
    bulkhead = RedisBulkhead(store, "aforms", 1)

    @bulkhead
    async def decorated() -> int:
        await asyncio.sleep(0)
        return holders(store, "aforms")

    async def main() -> list[int]:
        seen = [await decorated()]
        async with bulkhead:
            seen.append(holders(store, "aforms"))
        seen.append(holders(store, "aforms"))  # back when the block is over
        seen.append(await bulkhead.acall(decorated.__wrapped__))  # type: ignore[attr-defined]
        await bulkhead.aacquire()
        bulkhead.release()  # in the loop: sent by a task, landed before the next acquisition
        seen.append(await Pipeline(bulkhead).acall(decorated.__wrapped__))  # type: ignore[attr-defined]
        with pytest.raises(ValueError):
            await bulkhead.acall(_raises_value_error)
        seen.append(holders(store, "aforms"))
        await store.aclose()
        return seen

    assert asyncio.run(main()) == [1, 1, 0, 1, 1, 0]
    assert bulkhead.active == 0


async def _raises_value_error() -> None:
    raise ValueError("inside")


# -- waiting ------------------------------------------------------------------------------


def test_a_waiter_is_woken_by_a_release_from_another_process(redis_url: str) -> None:
    with RedisStore.from_url(redis_url) as holder_store, RedisStore.from_url(
        redis_url
    ) as waiter_store:
        # A lease lives 30 s (the earliest expiry is far): only a release can wake the waiter.
        holder = RedisBulkhead(holder_store, "wake", 1)
        # It would wait longer than the test does: only a wake-up lets it in in time.
        waiter = RedisBulkhead(waiter_store, "wake", 1, max_queue=1, max_wait=3 * GUARD)
        assert holder.try_acquire()
        order: list[str] = []

        def wait() -> None:
            waiter.acquire()
            order.append("acquired")

        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        until(lambda: waiter.waiting == 1 and waiter_store.stats.round_trips == 1, "waiting")
        assert order == []
        order.append("released")
        holder.release()
        thread.join(GUARD)
        assert order == ["released", "acquired"]
        # Woken by the announcement, not by polling: one refused attempt, one granted.
        assert waiter_store.stats.round_trips == 2
        assert waiter.stats.waiting == 0 and waiter.active == 1
        waiter.release()


def test_the_queue_is_bounded_per_process(store: RedisStore) -> None:
    bulkhead = RedisBulkhead(store, "queue", 1, max_queue=1, max_wait=GUARD)
    assert bulkhead.try_acquire()
    thread = threading.Thread(target=bulkhead.acquire)
    thread.start()
    until(lambda: bulkhead.waiting == 1, "one waiter")
    with pytest.raises(BulkheadFullError):  # the one place is taken: refused at once
        bulkhead.acquire()
    with pytest.raises(BulkheadFullError):
        bulkhead.acquire(timeout=0.0)
    bulkhead.release()
    thread.join(GUARD)
    assert bulkhead.active == 1 and bulkhead.stats.rejected == 2
    bulkhead.release()


def test_a_wait_runs_out(store: RedisStore) -> None:
    bulkhead = RedisBulkhead(store, "out", 1, max_queue=2)
    assert bulkhead.try_acquire()
    with pytest.raises(BulkheadFullError):
        bulkhead.acquire(timeout=0.05)
    assert bulkhead.waiting == 0 and holders(store, "out") == 1


def test_a_wait_ends_at_the_current_deadline(store: RedisStore) -> None:
    bulkhead = RedisBulkhead(store, "deadline", 1, max_queue=1, max_wait=3 * GUARD)
    assert bulkhead.try_acquire()
    raised: list[BaseException] = []

    def wait_within_a_deadline() -> None:
        with deadline(0.2):
            try:
                bulkhead.acquire()
            except BulkheadFullError as error:
                raised.append(error)

    thread = threading.Thread(target=wait_within_a_deadline, daemon=True)
    thread.start()
    thread.join(GUARD)
    assert not thread.is_alive() and len(raised) == 1
    assert bulkhead.waiting == 0 and bulkhead.active == 1
    bulkhead.release()


def test_waiters_poll_without_a_subscription(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_bulkhead, "_subscribe_sync", lambda store, channel: None)
    with RedisStore.from_url(redis_url) as store, RedisStore.from_url(redis_url) as other:
        holder = RedisBulkhead(other, "poll", 1)
        waiter = RedisBulkhead(store, "poll", 1, max_queue=1)
        assert holder.try_acquire()
        thread = threading.Thread(target=waiter.acquire, args=(GUARD,))
        thread.start()
        until(lambda: store.stats.round_trips >= 3, "a few polls")
        holder.release()
        thread.join(GUARD)
        assert waiter.active == 1
        waiter.release()


# -- leases ---------------------------------------------------------------------------------


def test_renewal_keeps_a_long_holders_lease(redis_url: str) -> None:
    with RedisStore.from_url(redis_url) as one, RedisStore.from_url(redis_url) as two:
        holder = RedisBulkhead(one, "renew", 1, lease_ttl=LEASE)
        other = RedisBulkhead(two, "renew", 1, lease_ttl=LEASE)
        assert holder.try_acquire()
        worker = worker_module.worker_for(one)
        assert worker.running
        started = time.monotonic()
        while time.monotonic() - started < 3 * LEASE:  # three lease lives
            assert not other.try_acquire()
            time.sleep(0.1)
        assert holder.stats.lost == 0
        holder.release()
        assert other.try_acquire()
        other.release()


def lease_scores(client: redis.Redis, key: str) -> dict[bytes, float]:
    """The leases of a set and when each runs out (server microseconds)."""
    pairs: Any = client.zrange(key, 0, -1, withscores=True)
    return dict(pairs)


def test_renewal_with_only_an_async_client(redis_url: str) -> None:
    # The worker has no client of its own to use: it hands the renewal to the holder's loop.
    watcher = redis.Redis.from_url(redis_url)
    key = "{resilience:v1:bulkhead:arenew}:holders"

    async def main() -> None:
        store = RedisStore(async_client=redis.asyncio.Redis.from_url(redis_url), timeout=1.0)
        bulkhead = RedisBulkhead(store, "arenew", 1, lease_ttl=LEASE)
        await bulkhead.aacquire()
        [(lease, first)] = lease_scores(watcher, key).items()
        await asyncio.sleep(3 * LEASE)  # three lease lives: the lease is still there, renewed
        assert lease_scores(watcher, key)[lease] > first
        assert bulkhead.stats.lost == 0
        bulkhead.release()
        await bulkhead._landed()
        assert watcher.zcard(key) == 0
        assert store.async_client is not None
        await store.async_client.aclose()

    asyncio.run(main())
    watcher.close()


def test_a_lease_lost_during_a_long_outage_is_counted(redis_url: str) -> None:
    with RedisStore.from_url(redis_url) as one:
        holder = RedisBulkhead(one, "lost", 1, lease_ttl=0.3)
        assert holder.try_acquire()
        assert one.client is not None
        one.client.delete(one.key("bulkhead", "lost", None, "holders"))  # as a failover might
        until(lambda: holder.stats.lost == 1, "the renewal finds the lease gone")
        holder.release()  # still the caller's to give back; nothing left to remove
        assert holder.stats.active == 0


def hold_until_killed(url: str, ready: Any) -> None:
    """In a spawned process: take two permits, say so, and hold them until killed."""
    store = RedisStore.from_url(url, timeout=1.0)
    bulkhead = RedisBulkhead(store, "crash", 3, lease_ttl=LEASE)
    bulkhead.acquire()
    bulkhead.acquire()
    ready.set()
    time.sleep(GUARD * 6)


def test_a_killed_holders_permits_come_back_after_lease_ttl(redis_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    child = context.Process(target=hold_until_killed, args=(redis_url, ready), daemon=True)
    child.start()
    try:
        assert ready.wait(GUARD * 3), "the holder never took its permits"
        with RedisStore.from_url(redis_url) as store:
            bulkhead = RedisBulkhead(store, "crash", 3, lease_ttl=LEASE, max_queue=2)
            # A live lease of this process keeps the set (and its TTL) alive: the
            # dead holder's leases must be dropped from it, not just expire with it.
            assert bulkhead.try_acquire()
            time.sleep(2 * LEASE)  # two lease lives: the live holder's worker renews them
            assert not bulkhead.try_acquire()
            os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
            child.join(GUARD)
            # Nobody releases: the waiters wake when the earliest lease runs out
            # (their own waits would last longer than the test waits for them).
            for _ in range(2):
                waiter = threading.Thread(target=bulkhead.acquire, args=(3 * GUARD,), daemon=True)
                waiter.start()
                waiter.join(GUARD)
                assert not waiter.is_alive(), "not woken when the dead holder's lease ran out"
            assert bulkhead.active == 3 and holders(store, "crash") == 3
            for _ in range(3):
                bulkhead.release()
    finally:
        if child.is_alive():
            child.kill()
        child.join(GUARD)


# Counts the holders inside their blocks: the highest number at once.
COUNT_IN = Script(
    "count_in",
    "local n = redis.call('INCR', KEYS[1])"
    " if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end"
    " return n",
)


def hold_often(url: str, rounds: int) -> int:
    """In a spawned process: two threads take and hold a permit ``rounds`` times each."""
    with RedisStore.from_url(url, timeout=1.0) as store:
        bulkhead = RedisBulkhead(store, "fleet", 2, max_queue=2, max_wait=GUARD * 3)
        assert store.client is not None
        client = store.client
        count_in = client.register_script(COUNT_IN.source)
        done = []

        def run() -> None:
            for _ in range(rounds):
                with bulkhead:
                    count_in(keys=["fleet:in", "fleet:most"])
                    time.sleep(0.005)
                    client.decr("fleet:in")
                done.append(1)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(done)


def test_spawned_processes_never_exceed_the_limit(redis_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        held = pool.starmap(hold_often, [(redis_url, 15)] * 3, chunksize=1)
    assert held == [30, 30, 30]
    with redis.Redis.from_url(redis_url) as client:
        most = int(client.get("fleet:most") or 0)
        assert 1 <= most <= 2, most
        assert int(client.get("fleet:in") or 0) == 0
        assert client.zcard("{resilience:v1:bulkhead:fleet}:holders") == 0


# -- async and cancellation --------------------------------------------------------------


def test_a_release_that_overtakes_its_acquisition_leaves_it_refused(store: RedisStore) -> None:
    # The release of a cancelled acquisition goes on another connection and
    # may reach the server first: the id is given up, and its acquisition,
    # arriving later, is refused instead of holding a permit until it runs out.
    bulkhead = RedisBulkhead(store, "overtaken", 2)
    bulkhead._forget("gone:1", None)
    answer = bulkhead._ask_sync("gone:1")
    assert not isinstance(answer, Unreachable) and answer[0] is False
    assert holders(store, "overtaken") == 0
    assert bulkhead.try_acquire()  # other ids are not affected
    assert store.client is not None
    assert all(store.client.pttl(key) > 0 for key in store.client.scan_iter("*"))
    bulkhead.release()


BUSY = (
    "local function now() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end"
    " local stop = now() + tonumber(ARGV[1]) while now() < stop do end return 1"
)


def busy_server(store: RedisStore, seconds: float) -> None:
    """Keep the server busy for ``seconds``: it reads no other client meanwhile."""
    assert store.client is not None
    store.client.eval(BUSY, 0, int(seconds * 1e6))


def test_cancelled_waiter_takes_nothing_and_a_cancelled_call_gives_back(
    store: RedisStore,
) -> None:
    bulkhead = RedisBulkhead(store, "cancel", 1, max_queue=2, max_wait=GUARD)

    async def main() -> None:
        async def hold() -> None:
            async with bulkhead:
                await asyncio.sleep(GUARD * 6)

        holder = asyncio.create_task(hold())
        await auntil(lambda: holders(store, "cancel") == 1, "the holder holds")
        waiter = asyncio.create_task(bulkhead.aacquire())
        await auntil(lambda: bulkhead.waiting == 1, "the waiter waits")
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert bulkhead.waiting == 0 and bulkhead.active == 1
        holder.cancel()  # mid-call: the block's exit gives the permit back
        with pytest.raises(asyncio.CancelledError):
            await holder
        assert holders(store, "cancel") == 0 and bulkhead.active == 0
        # Cancelled mid-round trip: the server is busy (a script of another
        # client), so the acquisition waits in its socket until after the
        # caller is gone, and then runs. Whatever it did is undone, though the
        # release, on another connection, may run before it.
        busy = threading.Thread(target=busy_server, args=(store, 0.3))
        busy.start()
        await asyncio.sleep(0.05)  # the busy script has started
        flying = asyncio.create_task(bulkhead.aacquire(timeout=0.0))
        await asyncio.sleep(0.1)  # the acquisition has been sent
        flying.cancel()
        with pytest.raises(asyncio.CancelledError):
            await flying
        await bulkhead._landed()
        busy.join(GUARD)
        assert holders(store, "cancel") == 0 and bulkhead.active == 0
        await bulkhead.aacquire()
        bulkhead.release()
        await store.aclose()

    asyncio.run(main())


def test_async_waiters_woken_by_releases(redis_url: str) -> None:
    async def main() -> list[str]:
        async with RedisStore.from_url(redis_url) as one, RedisStore.from_url(redis_url) as two:
            holder = RedisBulkhead(one, "await", 1)
            waiter = RedisBulkhead(two, "await", 1, max_queue=3, max_wait=3 * GUARD)
            await holder.aacquire()
            order: list[str] = []

            async def wait(i: int) -> None:
                async with waiter:
                    order.append(f"in {i}")
                    await asyncio.sleep(0.01)

            tasks = [asyncio.create_task(wait(i)) for i in range(3)]
            await auntil(lambda: waiter.waiting == 3, "three waiters")
            order.append("released")
            holder.release()
            await asyncio.wait_for(asyncio.gather(*tasks), GUARD)  # woken, not timed out
            assert waiter.active == 0 and holders(one, "await") == 0
            return order

    order = asyncio.run(main())
    assert order[0] == "released" and sorted(order[1:]) == ["in 0", "in 1", "in 2"]


# -- an outage -----------------------------------------------------------------------------


def test_outage_allow_deny_and_local(fresh_redis_server: RedisServer) -> None:
    url = fresh_redis_server.url
    stores = {
        mode: RedisStore.from_url(url, timeout=0.5, on_error=mode, local_share=0.5)
        for mode in ("allow", "deny", "local")
    }
    allow = RedisBulkhead(stores["allow"], "down", 5)
    deny = RedisBulkhead(stores["deny"], "down", 5)
    local = RedisBulkhead(stores["local"], "down", 5, max_queue=1)
    assert deny.try_acquire()  # before the outage: a lease in Redis
    fresh_redis_server.stop()

    assert all(allow.try_acquire() for _ in range(7))
    assert allow.stats.fallbacks == 7 and allow.stats.active == 7
    for _ in range(7):
        allow.release()

    for _ in range(GUARD_FAILURES):
        with pytest.raises(BulkheadFullError):
            deny.acquire()
    with pytest.raises(BulkheadFullError) as caught:  # the guard is open now
        deny.acquire()
    assert caught.value.retry_after is not None and 0.0 < caught.value.retry_after <= 1.0
    assert deny.stats.fallbacks == GUARD_FAILURES + 1
    deny.release()  # its lease cannot be removed now: it runs out in Redis

    # Half of 5, rounded down: two permits of the in-process twin.
    assert [local.try_acquire() for _ in range(3)] == [True, True, False]
    with pytest.raises(BulkheadFullError):
        local.acquire(timeout=0.05)
    local.release()
    assert local.try_acquire()
    assert local.stats.fallbacks == 5 and local.stats.rejected == 2
    local.release()
    local.release()

    fresh_redis_server.start()  # the same port, empty
    for bulkhead in (allow, deny, local):
        until(functools.partial(decided_by_redis, bulkhead), "Redis deciding again")
        assert bulkhead.store.stats.guard is CircuitState.CLOSED
        assert holders(bulkhead.store, "down") == 0  # given back to Redis too
        bulkhead.store.close()


def decided_by_redis(bulkhead: RedisBulkhead) -> bool:
    """Take a permit and give it back: whether Redis decided (not ``on_error``)."""
    before = bulkhead.stats.fallbacks
    taken = bulkhead.try_acquire()
    if taken:
        bulkhead.release()
    return taken and bulkhead.stats.fallbacks == before


def test_async_outage_local_and_recovery(fresh_redis_server: RedisServer) -> None:
    store = RedisStore.from_url(fresh_redis_server.url, timeout=0.5, on_error="local")
    bulkhead = RedisBulkhead(store, "adown", 2, max_queue=1, max_wait=GUARD)

    async def main() -> None:
        async with bulkhead:
            assert holders(store, "adown") == 1
        fresh_redis_server.stop()
        await bulkhead.aacquire()
        await bulkhead.aacquire()
        assert bulkhead.stats.fallbacks == 2
        waiter = asyncio.create_task(bulkhead.aacquire())  # queued on the local twin
        await auntil(lambda: bulkhead._twin().waiting == 1, "a local waiter")
        bulkhead.release()
        await waiter
        bulkhead.release()
        bulkhead.release()
        fresh_redis_server.start()
        deadline = time.monotonic() + GUARD
        while True:  # local permits until the guard's probe finds Redis back
            await bulkhead.aacquire()
            back = holders(store, "adown") == 1
            bulkhead.release()
            if back:
                break
            assert time.monotonic() < deadline, "never back in Redis"
            await asyncio.sleep(0.05)
        await bulkhead._landed()
        assert holders(store, "adown") == 0 and store.stats.guard is CircuitState.CLOSED
        await store.aclose()

    asyncio.run(main())


# -- a cluster -------------------------------------------------------------------------------


def test_on_a_cluster(redis_cluster: RedisCluster) -> None:
    redis_cluster.flushall()
    client = redis.cluster.RedisCluster.from_url(redis_cluster.url)
    other_client = redis.cluster.RedisCluster.from_url(redis_cluster.url)
    store = RedisStore(client=client, timeout=1.0)
    other = RedisStore(client=other_client, timeout=1.0)
    holder = RedisBulkhead(store, "cluster", 1)
    waiter = RedisBulkhead(other, "cluster", 1, max_queue=1, max_wait=3 * GUARD)
    assert holder.try_acquire()
    key = store.key("bulkhead", "cluster", None, "holders")
    tag = key[1 : key.index("}")]
    assert client.cluster_keyslot(key) == client.cluster_keyslot(tag)
    assert client.pttl(key) > 0
    thread = threading.Thread(target=waiter.acquire, daemon=True)
    thread.start()
    until(lambda: waiter.waiting == 1 and other.stats.round_trips == 1, "waiting")
    holder.release()
    thread.join(GUARD)
    assert waiter.active == 1 and other.stats.round_trips == 2  # woken by the announcement
    waiter.release()
    assert client.zcard(key) == 0
    client.close()
    other_client.close()


# -- forks -----------------------------------------------------------------------------------


def test_a_forked_child_holds_nothing_of_its_parent(store: RedisStore) -> None:
    bulkhead = RedisBulkhead(store, "fork", 2)
    assert bulkhead.try_acquire()
    assert worker_module.worker_for(store).running
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(read)
            seen = [
                bulkhead.active,
                worker_module._workers.by_store.get(store) is None,
                bulkhead.try_acquire(),
                bulkhead.try_acquire(),
                holders(store, "fork"),
            ]
            bulkhead.release()
            os.write(write, repr(seen).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    assert report == "[0, True, True, False, 2]"
    assert bulkhead.active == 1 and holders(store, "fork") == 1
    bulkhead.release()


# -- the worker --------------------------------------------------------------------------------


class Owner:
    """Something a worker job belongs to (held weakly)."""

    def __init__(self) -> None:
        self.runs = 0
        self.ran = threading.Event()

    def job(self) -> None:
        self.runs += 1
        if self.runs >= 3:
            self.ran.set()


class FakeStore:
    prefix = "fake"


def test_worker_runs_jobs_and_ends_with_them() -> None:
    store = FakeStore()
    worker = worker_module.worker_for(store)
    assert worker_module.worker_for(store) is worker and not worker.running
    owner = Owner()
    job = worker.every(0.01, owner.job)
    assert worker.running and job.active
    assert owner.ran.wait(GUARD)
    del owner  # a bound method is held weakly: the job ends with its owner
    until(lambda: not worker.running, "the thread ends when no job is left")
    assert not job.active and worker.jobs == 0
    second = Owner()
    worker.every(0.01, second.job)  # a new thread for a new job
    assert second.ran.wait(GUARD)
    worker_module.stop_worker(store)
    assert not worker.running
    with pytest.raises(RuntimeError, match="stopped"):
        worker.every(1.0, second.job)
    assert worker_module.worker_for(store) is not worker  # a closed store's next worker is new


def test_worker_logs_a_failing_job_and_keeps_it(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    calls: list[int] = []
    done = threading.Event()

    def failing() -> None:
        calls.append(1)
        if len(calls) >= 2:
            done.set()
        raise OSError("boom")

    with caplog.at_level(logging.ERROR, logger="resilience"):
        job = worker_module.worker_for(store).every(0.01, failing)
        assert done.wait(GUARD)
        job.cancel()
    assert not job.active
    assert any("boom" in (r.exc_text or "") for r in caplog.records)
    worker_module.stop_worker(store)


@pytest.mark.parametrize(
    ("interval", "job", "error", "words"),
    [
        (0, print, ValueError, "interval"),
        (math.nan, print, ValueError, "interval"),
        ("1", print, TypeError, "interval"),
        (1.0, 3, TypeError, "job must be callable"),
    ],
)
def test_worker_bad_input(interval: Any, job: Any, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        worker_module.worker_for(FakeStore()).every(interval, job)


# -- bad input and bad replies -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "words"),
    [
        (("x", 0), {}, ValueError, "limit"),
        (("x", -1), {}, ValueError, "limit"),
        (("x", 1.5), {}, TypeError, "limit"),
        (("x", True), {}, TypeError, "limit"),
        (("x", "2"), {}, TypeError, "limit"),
        (("x", 2), {"max_queue": -1}, ValueError, "max_queue"),
        (("x", 2), {"max_queue": 1.0}, TypeError, "max_queue"),
        (("x", 2), {"max_wait": -1}, ValueError, "max_wait"),
        (("x", 2), {"max_wait": math.nan}, ValueError, "max_wait"),
        (("x", 2), {"max_wait": "1"}, TypeError, "max_wait"),
        (("x", 2), {"lease_ttl": 0}, ValueError, "lease_ttl"),
        (("x", 2), {"lease_ttl": math.inf}, ValueError, "lease_ttl"),
        (("x", 2), {"lease_ttl": 0.0001}, ValueError, "lease_ttl must be at least"),
        (("x", 2), {"lease_ttl": None}, TypeError, "lease_ttl"),
        (("", 2), {}, TypeError, "name"),
        ((None, 2), {}, TypeError, "name"),
    ],
)
def test_bad_settings(
    store: RedisStore, args: tuple[Any, ...], kwargs: dict[str, Any], error: type, words: str
) -> None:
    with pytest.raises(error, match=words):
        RedisBulkhead(store, *args, **kwargs)


def test_bad_calls(store: RedisStore) -> None:
    with pytest.raises(TypeError, match="store"):
        RedisBulkhead("redis://", "x", 1)  # type: ignore[arg-type]
    bulkhead = RedisBulkhead(store, "calls", 1)
    with pytest.raises(ValueError, match="timeout"):
        bulkhead.acquire(timeout=-1)
    with pytest.raises(TypeError, match="timeout"):
        bulkhead.acquire(timeout="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        asyncio.run(bulkhead.aacquire(timeout=math.nan))
    assert holders(store, "calls") == 0


@pytest.mark.parametrize(
    ("attribute", "source", "reply"),
    [
        ("ACQUIRE_SCRIPT", "return {1, 2}", r"\[1, 2\]"),
        ("ACQUIRE_SCRIPT", "return 'yes'", "b'yes'"),
        ("RELEASE_SCRIPT", "return {}", r"\[\]"),
    ],
)
def test_a_reply_of_the_wrong_shape_names_the_script(
    store: RedisStore,
    monkeypatch: pytest.MonkeyPatch,
    attribute: str,
    source: str,
    reply: str,
) -> None:
    real = getattr(redis_bulkhead, attribute)
    monkeypatch.setattr(redis_bulkhead, attribute, Script(real.name, source))
    bulkhead = RedisBulkhead(store, "shape", 1)
    with pytest.raises(ResilienceError, match=rf"{real.name!r} replied {reply}"):
        bulkhead.acquire()
        bulkhead.release()
    assert store.stats.guard is CircuitState.CLOSED  # an answer, not an outage


def test_repr(store: RedisStore) -> None:
    bulkhead = RedisBulkhead(store, "shown", 4, max_queue=2, lease_ttl=5)
    assert repr(bulkhead) == "<RedisBulkhead name='shown' limit=4 max_queue=2 lease_ttl=5.0>"
    assert (bulkhead.limit, bulkhead.lease_ttl, bulkhead.store) == (4, 5.0, store)


def test_closing_the_store_stops_its_worker(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, timeout=1.0)
    bulkhead = RedisBulkhead(store, "closing", 2, lease_ttl=3.0)
    bulkhead.acquire()  # a holder: its lease is renewed by the store's worker
    worker = worker_module.worker_for(store)
    assert worker.running
    store.close()
    assert not worker.running  # no thread left renewing leases on a closed client
    with pytest.raises(RuntimeError, match="stopped"):
        worker.every(1.0, lambda: None)
