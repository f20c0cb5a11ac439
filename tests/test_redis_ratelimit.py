"""RedisRateLimiter against a real redis-server (fixtures in conftest.py).

The server's clock is real, so time-dependent figures are asserted with
tolerances that hold however slow the machine is: a burst drawn within a
few round trips, a retry_after between what the rate allows and that less
the time the test took. Nothing asserts speed. Waits go through the
limiter's ``sleep`` hook, recorded instead of slept. The lease tests run on
both core twins (``policy_impl``): the lease is spent through a core bucket.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis_server import RedisCluster, RedisServer

from resilience import (
    CircuitState,
    Pipeline,
    RateLimitExceeded,
    ResilienceError,
    Retry,
    backoff,
)
from resilience.ratelimit import RateDecision, RateLimiterStats
from resilience.redis import KeyedRedisRateLimiter, RedisRateLimiter, RedisStore
from resilience.redis import ratelimit as redis_ratelimit
from resilience.redis._store import GUARD_FAILURES, Script

GUARD = 10.0  # seconds: bounds polls on real time; never asserted

# A rate so slow that no token comes back while a test runs: counts are exact.
SLOW = {"rate": 1.0, "per": 3600.0}


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStore]:
    with RedisStore.from_url(redis_url, timeout=1.0) as built:
        yield built


def keys_of(store: RedisStore) -> list[bytes]:
    assert store.client is not None
    return sorted(store.client.scan_iter("*"))


class Sleeps:
    """A sleep hook that records instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class AsyncSleeps(Sleeps):
    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


# -- GCRA ---------------------------------------------------------------------------------


def test_burst_then_refusal_with_retry_after(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "api", 1.0, burst=3)  # a token a second
    started = time.monotonic()
    decisions = [limiter.decide() for _ in range(3)]
    refused = limiter.decide()
    took = time.monotonic() - started
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    assert all(d.limit == 3.0 and d.retry_after == 0.0 for d in decisions)
    # Full again 1 s per token taken, less what has refilled since.
    for taken, d in enumerate(decisions, 1):
        assert taken - took - 1e-6 <= d.reset_after <= taken + 1e-6
    assert not refused.allowed and refused.remaining == 0
    # One token takes 1 / rate = 1 s, less what came back while the test ran.
    assert 1.0 - took - 1e-6 <= refused.retry_after <= 1.0 + 1e-6
    assert refused.retry_after > 0.0
    assert limiter.stats == RateLimiterStats("api", 1.0, 1.0, 3.0, 0.0, 3, 1)
    assert limiter.available == 0.0


def test_tokens_come_back_at_the_rate(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "refill", 20.0, burst=2)
    assert limiter.try_acquire(2)
    refused = limiter.decide()
    assert not refused.allowed
    time.sleep(refused.retry_after + 0.01)  # waiting for the server's clock, not timing
    assert limiter.try_acquire()


def test_more_than_the_burst_is_never_granted(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "big", 5.0, burst=4)
    over = limiter.decide(5)
    assert not over.allowed and over.retry_after == math.inf and over.remaining == 4
    with pytest.raises(RateLimitExceeded) as caught:
        limiter.acquire(5, timeout=100.0)
    assert caught.value.retry_after == math.inf
    assert keys_of(store) == []  # a refusal writes nothing


def test_several_tokens_per_decision(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "multi", **SLOW, burst=10)
    assert limiter.decide(4).remaining == 6
    assert limiter.decide(6).remaining == 0
    assert not limiter.decide(0.5).allowed
    assert limiter.decide(0).allowed


def test_keys_isolate_tenants(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "per-tenant", **SLOW, burst=2)
    assert [limiter.try_acquire(key="a") for _ in range(3)] == [True, True, False]
    assert limiter.try_acquire(key="b")
    assert limiter.try_acquire()  # the unkeyed bucket is one more of its own
    assert limiter.decide(key="b").remaining == 0
    assert len(keys_of(store)) == 3


def test_processes_share_one_bucket(redis_url: str) -> None:
    # Two stores are two processes' views: each has its own clients and id.
    with RedisStore.from_url(redis_url) as one, RedisStore.from_url(redis_url) as two:
        first = RedisRateLimiter(one, "shared", **SLOW, burst=5)
        second = RedisRateLimiter(two, "shared", **SLOW, burst=5)
        granted = sum(first.try_acquire() + second.try_acquire() for _ in range(5))
        assert granted == 5
        assert one.process_id != two.process_id


def test_every_key_has_a_ttl_and_one_slot(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "ttl", 1.0, per=10.0, burst=4)
    for key in (None, "x", "y:z", "{w}"):
        limiter.decide(3, key=key)
    names = keys_of(store)
    assert len(names) == 4
    assert store.client is not None
    for name in names:
        ttl = store.client.pttl(name)
        # Held only until the bucket is full again: 3 tokens at 0.1 a second.
        assert 0 < ttl <= 30_000
        tag = name[name.index(b"{") + 1 : name.index(b"}")]
        assert redis.cluster.key_slot(name) == redis.cluster.key_slot(tag)
    assert b"{resilience:v1:ratelimit:ttl:y%3Az}:tat" in names


def test_reservation_waits_in_the_sleep_hook(store: RedisStore) -> None:
    sleeps = Sleeps()
    limiter = RedisRateLimiter(store, "wait", 1.0, burst=1, max_wait=10.0, sleep=sleeps)
    started = time.monotonic()
    for _ in range(4):
        limiter.acquire()
    took = time.monotonic() - started
    # The first token is there; each next one is reserved 1 s after the one before.
    assert len(sleeps.waits) == 3
    for n, wait in enumerate(sleeps.waits, 1):
        assert n - took - 1e-6 <= wait <= n + 1e-6
    # A wait longer than the timeout is refused at once, taking nothing.
    with pytest.raises(RateLimitExceeded) as caught:
        limiter.acquire(timeout=0.5)
    assert caught.value.retry_after is not None and caught.value.retry_after > 0.5
    assert len(sleeps.waits) == 3


def test_a_wait_without_limit(store: RedisStore) -> None:
    sleeps = Sleeps()
    limiter = RedisRateLimiter(store, "forever", 1.0, burst=1, max_wait=math.inf, sleep=sleeps)
    limiter.acquire()
    limiter.acquire(timeout=math.inf)
    limiter.acquire()
    assert len(sleeps.waits) == 2 and sleeps.waits[1] > sleeps.waits[0] > 0.0


def test_async_acquire_waits_in_the_async_hook(store: RedisStore) -> None:
    sleeps = AsyncSleeps()
    limiter = RedisRateLimiter(store, "await", 1.0, burst=1, max_wait=10.0, sleep=sleeps.asleep)

    async def main() -> None:
        await limiter.aacquire()
        await limiter.aacquire()
        with pytest.raises(RateLimitExceeded):
            await limiter.aacquire(timeout=0.0)

    asyncio.run(main())
    assert len(sleeps.waits) == 1 and 0.0 < sleeps.waits[0] <= 1.0 + 1e-6


# -- batching -----------------------------------------------------------------------------


def test_concurrent_async_decisions_share_round_trips(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "batched", **SLOW, burst=30)

    async def main() -> list[RateDecision]:
        return await asyncio.gather(*(limiter.adecide() for _ in range(50)))

    decisions = asyncio.run(main())
    assert sum(d.allowed for d in decisions) == 30  # exact all the same
    remaining = sorted((d.remaining for d in decisions if d.allowed), reverse=True)
    assert remaining == list(range(29, -1, -1))  # each decided after the one before
    assert store.stats.round_trips < 50
    assert store.stats.round_trips <= 3  # the first batch goes alone; the rest follow as one


def test_batches_are_per_key(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "batched-keys", **SLOW, burst=3)

    async def main() -> list[bool]:
        calls = [limiter.adecide(key=key) for key in "ab" for _ in range(4)]
        return [d.allowed for d in await asyncio.gather(*calls)]

    assert asyncio.run(main()) == [True, True, True, False] * 2


def test_a_cancelled_caller_does_not_break_its_batch(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "cancel", **SLOW, burst=10)

    async def main() -> list[Any]:
        tasks = [asyncio.ensure_future(limiter.adecide()) for _ in range(5)]
        await asyncio.sleep(0)
        tasks[2].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[2], asyncio.CancelledError)
    assert all(r.allowed for i, r in enumerate(results) if i != 2)


# -- the forms --------------------------------------------------------------------------------


def test_every_form_takes_one_token(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "forms", **SLOW, burst=5)

    @limiter
    def work(x: int) -> int:
        return x * 2

    assert work(2) == 4
    assert limiter.call(work.__wrapped__, 3) == 6  # type: ignore[attr-defined]
    with limiter:
        pass

    async def main() -> None:
        @limiter
        async def awork() -> str:
            return "ok"

        assert await awork() == "ok"
        async with limiter:
            pass

    asyncio.run(main())
    assert limiter.stats.allowed == 5
    with pytest.raises(RateLimitExceeded), limiter:
        pytest.fail("the block ran without a token")
    with pytest.raises(RateLimitExceeded):
        work(1)


def test_in_a_pipeline(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "piped", **SLOW, burst=2)
    runs: list[int] = []
    pipeline = Pipeline(Retry(2, backoff=backoff.constant(0.0), on=OSError), limiter)

    def work() -> int:
        runs.append(1)
        if len(runs) == 1:
            raise OSError("flaky")
        return len(runs)

    assert pipeline.call(work) == 2  # the retry's second attempt takes a second token
    assert limiter.stats.allowed == 2
    with pytest.raises(RateLimitExceeded):
        pipeline.call(work)


def test_keyed_decorator_takes_the_key_from_the_arguments(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "keyed", **SLOW, burst=1)

    @limiter.keyed(lambda tenant, amount: tenant)
    def charge(tenant: str, amount: int) -> int:
        return amount

    assert charge("a", 1) == 1
    assert charge("b", 2) == 2
    with pytest.raises(RateLimitExceeded):
        charge("a", 3)

    async def main() -> None:
        per_user = limiter.keyed(lambda user: user)

        @per_user
        async def fetch(user: str) -> str:
            return user

        assert await fetch("c") == "c"
        with pytest.raises(RateLimitExceeded):
            await fetch("c")
        async with limiter.keyed("d"):
            pass
        with pytest.raises(TypeError, match="with block"):
            async with per_user:
                pass

    asyncio.run(main())
    with limiter.keyed("e"):
        pass
    assert not limiter.try_acquire(key="e")


# -- an outage -------------------------------------------------------------------------------


def outage_store(server: RedisServer, on_error: str, **kwargs: Any) -> RedisStore:
    store = RedisStore.from_url(server.url, timeout=0.5, on_error=on_error, **kwargs)
    server.stop()
    return store


def test_outage_allow_admits_and_counts(fresh_redis_server: RedisServer) -> None:
    store = outage_store(fresh_redis_server, "allow")
    limiter = RedisRateLimiter(store, "down", **SLOW, burst=2)
    decisions = [limiter.decide() for _ in range(10)]
    assert all(d.allowed for d in decisions)
    assert decisions[0] == RateDecision(True, 2.0, 1, 0.0, 0.0)
    stats = store.stats
    assert stats.guard is CircuitState.OPEN
    assert (stats.round_trips, stats.fallbacks) == (GUARD_FAILURES, 10)


def test_outage_deny_refuses_until_the_guard_probes(fresh_redis_server: RedisServer) -> None:
    store = outage_store(fresh_redis_server, "deny")
    limiter = RedisRateLimiter(store, "down", **SLOW, burst=2)
    for _ in range(GUARD_FAILURES):
        assert not limiter.try_acquire()
    with pytest.raises(RateLimitExceeded) as caught:
        limiter.acquire()
    # The guard is open: the refusal says when it lets a probe through.
    assert caught.value.retry_after is not None and 0.0 < caught.value.retry_after <= 1.0
    assert store.stats.round_trips == GUARD_FAILURES


def test_outage_local_decides_at_its_share(fresh_redis_server: RedisServer) -> None:
    store = outage_store(fresh_redis_server, "local", local_share=0.5)
    limiter = RedisRateLimiter(store, "down", **SLOW, burst=7)
    # Half of 7, rounded down: 3 tokens locally.
    assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]
    # Each key its own local bucket too.
    assert [limiter.try_acquire(key="k") for _ in range(4)] == [True, True, True, False]
    assert store.stats.fallbacks == 8 and store.stats.round_trips == GUARD_FAILURES


def test_outage_local_waits_on_the_local_twin(fresh_redis_server: RedisServer) -> None:
    sleeps = Sleeps()
    store = outage_store(fresh_redis_server, "local")
    limiter = RedisRateLimiter(store, "down", 1.0, burst=1, max_wait=10.0, sleep=sleeps)
    limiter.acquire()
    limiter.acquire()  # reserved on the local bucket: slept in the hook
    assert len(sleeps.waits) == 1 and 0.0 < sleeps.waits[0] <= 1.0
    with pytest.raises(RateLimitExceeded):
        limiter.acquire(timeout=0.0)
    assert limiter.stats.allowed == 2 and limiter.stats.rejected == 1


def test_async_outage_and_recovery(fresh_redis_server: RedisServer) -> None:
    store = RedisStore.from_url(fresh_redis_server.url, timeout=0.5, on_error="deny")
    limiter = RedisRateLimiter(store, "down", **SLOW, burst=100)

    async def decide_many(n: int) -> list[RateDecision]:
        return await asyncio.gather(*(limiter.adecide() for _ in range(n)))

    async def main() -> None:  # one loop: an async client belongs to the loop it runs on
        assert all(d.allowed for d in await decide_many(5))
        fresh_redis_server.stop()
        for _ in range(GUARD_FAILURES):
            await decide_many(1)
        assert store.stats.guard is CircuitState.OPEN
        sent = store.stats.round_trips
        assert not any(d.allowed for d in await decide_many(20))
        assert store.stats.round_trips == sent  # nothing sent while the guard is open
        fresh_redis_server.start()  # the same port, empty
        deadline = time.monotonic() + GUARD
        while not (await decide_many(1))[0].allowed:
            assert time.monotonic() < deadline, "the limiter never reached Redis again"
            await asyncio.sleep(0.05)
        assert store.stats.guard is CircuitState.CLOSED
        await store.aclose()

    asyncio.run(main())


# -- lease ---------------------------------------------------------------------------------


def test_a_lease_saves_round_trips_and_never_over_admits(redis_url: str) -> None:
    with RedisStore.from_url(redis_url) as one, RedisStore.from_url(redis_url) as two:
        first = RedisRateLimiter(one, "leased", **SLOW, burst=10, lease=3)
        second = RedisRateLimiter(two, "leased", **SLOW, burst=10, lease=3)
        granted = 0
        for _ in range(12):
            granted += first.try_acquire() + second.try_acquire()
        # Never more than the shared bucket; less by at most one lease per process.
        assert 10 - 2 * 3 <= granted <= 10
        assert one.stats.round_trips < 12 and two.stats.round_trips < 12


def test_lease_takes_what_is_left(store: RedisStore, policy_impl: SimpleNamespace) -> None:
    limiter = RedisRateLimiter(store, "lease", **SLOW, burst=5, lease=3, lease_ttl=3600.0)
    assert limiter.try_acquire()  # leases 3, spends 1
    assert limiter.try_acquire() and limiter.try_acquire()
    assert store.stats.round_trips == 1
    assert limiter.try_acquire()  # a new lease: only 2 were left
    assert limiter.decide().remaining == 0  # spent locally: what the lease holds
    assert store.stats.round_trips == 2
    assert not limiter.try_acquire()
    assert store.stats.round_trips == 3


def test_unspent_lease_is_forfeited_after_lease_ttl(
    store: RedisStore, policy_impl: SimpleNamespace
) -> None:
    limiter = RedisRateLimiter(store, "forfeit", **SLOW, burst=6, lease=3, lease_ttl=0.05)
    assert limiter.try_acquire()
    time.sleep(0.1)  # past the lease's time to live (waiting, not timing)
    assert limiter.try_acquire()  # the two left were forfeited: a new lease
    assert store.stats.round_trips == 2


def test_async_lease_fetches_once_for_concurrent_callers(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "alease", **SLOW, burst=20, lease=5)

    async def main() -> list[RateDecision]:
        return await asyncio.gather(*(limiter.adecide() for _ in range(5)))

    assert all(d.allowed for d in asyncio.run(main()))
    assert store.stats.round_trips == 1


def test_threads_on_one_lease_never_over_admit(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "threads", **SLOW, burst=50, lease=4, lease_ttl=3600.0)
    granted: list[int] = []

    def worker() -> None:
        granted.append(sum(limiter.try_acquire() for _ in range(30)))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD)
    assert not any(thread.is_alive() for thread in threads)
    # One process, one lease at a time: every leased token is spent, none twice.
    assert sum(granted) == 50
    assert limiter.stats.allowed == 50 and limiter.stats.rejected == 70


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_does_not_spend_the_parents_lease(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "fork", **SLOW, burst=4, lease=4, lease_ttl=3600.0)
    assert limiter.try_acquire()  # the parent holds 3 more, locally
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running pytest's exit
        try:
            granted = [limiter.try_acquire() for _ in range(4)]
            report = f"{granted} {store.stats.round_trips} {limiter.stats.allowed}"
            os.write(write, report.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    # The shared bucket is empty: the child must ask it, and is refused each time.
    assert report == "[False, False, False, False] 4 0"
    assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]


def spend(url: str, lease: int | None, tries: int) -> int:
    """In a spawned process: how many of ``tries`` one shared limiter admits."""
    with RedisStore.from_url(url) as store:
        limiter = RedisRateLimiter(store, "spawned", **SLOW, burst=30, lease=lease)
        return sum(limiter.try_acquire() for _ in range(tries))


@pytest.mark.parametrize("lease", [None, 3])
def test_spawned_processes_share_one_limit(redis_url: str, lease: int | None) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        admitted = pool.starmap(spend, [(redis_url, lease, 20)] * 3, chunksize=1)
    if lease is None:
        assert sum(admitted) == 30  # exact: every token once, none more
    else:
        # Never more than the bucket; short by at most one lease per process.
        assert 30 - 3 * lease <= sum(admitted) <= 30


# -- a cluster -----------------------------------------------------------------------------


def test_on_a_cluster_tenants_spread_over_the_nodes(redis_cluster: RedisCluster) -> None:
    redis_cluster.flushall()
    client = redis.cluster.RedisCluster.from_url(redis_cluster.url)
    store = RedisStore(client=client)
    limiter = RedisRateLimiter(store, "fleet", **SLOW, burst=2)
    tenants = [f"tenant-{i}" for i in range(12)]
    for tenant in tenants:
        assert [limiter.try_acquire(key=tenant) for _ in range(3)] == [True, True, False]
    slots = {client.keyslot(store.key("ratelimit", "fleet", t, "tat")) for t in tenants}
    nodes = {
        client.get_node_from_key(store.key("ratelimit", "fleet", t, "tat")).port for t in tenants
    }
    assert len(slots) == 12 and len(nodes) > 1
    # The server's own hash of a key is that of its tag.
    key = store.key("ratelimit", "fleet", "tenant-0", "tat")
    assert client.cluster_keyslot(key) == client.cluster_keyslot(key[1 : key.index("}")])
    assert client.pttl(key) > 0
    client.close()


def test_async_cluster_client(redis_cluster: RedisCluster) -> None:
    redis_cluster.flushall()

    async def main() -> list[bool]:
        client = redis.asyncio.cluster.RedisCluster.from_url(redis_cluster.url)
        store = RedisStore(async_client=client)
        limiter = RedisRateLimiter(store, "afleet", **SLOW, burst=2)
        decisions = await asyncio.gather(*(limiter.adecide(key="t") for _ in range(3)))
        await client.aclose()
        return [d.allowed for d in decisions]

    assert asyncio.run(main()) == [True, True, False]


# -- bad input and bad replies -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "words"),
    [
        (("x", 0), {}, ValueError, "rate"),
        (("x", -1), {}, ValueError, "rate"),
        (("x", math.nan), {}, ValueError, "rate"),
        (("x", "10"), {}, ValueError, "rate must be a number or a string"),  # no period
        (("x", 0.5), {}, ValueError, "burst=1"),
        (("x", 10), {"per": 0}, ValueError, "per"),
        (("x", 10), {"per": math.inf}, ValueError, "per"),
        (("x", 10), {"burst": 0.5}, ValueError, "burst"),
        (("x", 10), {"burst": True}, TypeError, "burst"),
        (("x", 10), {"max_wait": -1}, ValueError, "max_wait"),
        (("x", 10), {"max_wait": math.nan}, ValueError, "max_wait"),
        (("x", 10), {"lease": 0}, ValueError, "lease"),
        (("x", 10), {"lease": 1.5}, TypeError, "lease"),
        (("x", 10), {"lease": 11}, ValueError, "lease must be <= burst"),
        (("x", 10), {"lease_ttl": 0}, ValueError, "lease_ttl"),
        (("x", 10), {"lease_ttl": math.inf}, ValueError, "lease_ttl"),
        (("x", 10), {"sleep": 3}, TypeError, "sleep"),
        (("", 10), {}, TypeError, "name"),
        ((None, 10), {}, TypeError, "name"),
    ],
)
def test_bad_settings(
    store: RedisStore, args: tuple[Any, ...], kwargs: dict[str, Any], error: type, words: str
) -> None:
    with pytest.raises(error, match=words):
        RedisRateLimiter(store, *args, **kwargs)


def test_bad_calls(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "calls", 10)
    with pytest.raises(TypeError, match="store"):
        RedisRateLimiter("redis://", "x", 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tokens"):
        limiter.decide(-1)
    with pytest.raises(TypeError, match="tokens"):
        limiter.try_acquire("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        limiter.acquire(timeout=-1)
    with pytest.raises(TypeError, match="key"):
        limiter.decide(key=7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key"):
        limiter.keyed(7)  # type: ignore[arg-type]
    leased = RedisRateLimiter(store, "leased", 10, lease=2)
    with pytest.raises(ValueError, match="lease"):
        leased.decide(key="a")
    with pytest.raises(ValueError, match="lease"):
        leased.keyed("a")
    assert keys_of(store) == []


def test_a_reply_of_the_wrong_shape_names_the_script(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_ratelimit, "SCRIPT", Script("gcra", "return {1, 2}"))
    limiter = RedisRateLimiter(store, "shape", 10)
    with pytest.raises(ResilienceError, match=r"'gcra' replied \[1, 2\]"):
        limiter.decide()

    async def main() -> list[Any]:
        # One batch of three: the error reaches every caller of it.
        calls = (limiter.adecide() for _ in range(3))
        return await asyncio.gather(*calls, return_exceptions=True)

    errors = asyncio.run(main())
    assert all(isinstance(e, ResilienceError) and "'gcra'" in str(e) for e in errors)
    assert store.stats.guard is CircuitState.CLOSED  # an answer, not an outage


def test_repr_and_type(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "shown", 10, burst=4)
    assert repr(limiter) == (
        "<RedisRateLimiter name='shown' rate=10.0 per=1.0 burst=4.0 lease=None>"
    )
    assert isinstance(limiter.keyed("a"), KeyedRedisRateLimiter)
    assert limiter.keyed("a").stats == limiter.stats


def test_a_rate_string_says_the_rate_and_its_period(store: RedisStore) -> None:
    limiter = RedisRateLimiter(store, "strings", "120/minute", burst=2)
    stats = limiter.stats
    assert (stats.rate, stats.per) == (120.0, 60.0)
    assert [limiter.try_acquire() for _ in range(3)] == [True, True, False]
    with pytest.raises(TypeError, match="per must not be given with a rate string"):
        RedisRateLimiter(store, "strings", "1/s", per=2.0)
    with pytest.raises(ValueError, match="rate must be a number or a string"):
        RedisRateLimiter(store, "strings", "1 a fortnight")
