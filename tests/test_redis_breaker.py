"""RedisCircuitBreaker against a real Redis server.

Several ``RedisStore``s stand for several processes (each has its own
process id, as a process would); ``sync()`` makes the exchanges that the
store's worker makes every ``sync_interval``, so most tests decide when the
fleet learns what. One test lets the worker do it, and one runs real OS
processes. Server time moves for real: waits for the fleet's open time are
real sleeps, never timed assertions.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import time
from collections.abc import Iterator
from multiprocessing.queues import Queue
from typing import Any

import pytest
import redis
from redis_server import RedisCluster, RedisServer

from resilience import CircuitState, ResilienceManager
from resilience.errors import CircuitOpenError
from resilience.redis import RedisCircuitBreaker, RedisStore

GUARD = 10.0  # seconds: a hang guard for loops waiting on the worker or server time
RULE: dict[str, Any] = {
    "quorum": 2,
    "minimum_calls": 4,
    "failure_rate": 0.5,
    "reset_timeout": 0.3,
    "failure_threshold": 0,  # only the rate rule, locally as in the fleet
    "sync_interval": 60.0,  # the tests call sync(); the worker stays out of the way
    "fleet_window": 60.0,
}


class Boom(Exception):
    pass


def fail() -> None:
    raise Boom


def ok() -> str:
    return "ok"


@pytest.fixture
def fleet(redis_url: str) -> Iterator[list[RedisCircuitBreaker]]:
    """Three processes' breakers named "payments", each on a store of its own."""
    stores = [RedisStore.from_url(redis_url, timeout=1.0) for _ in range(3)]
    breakers = [RedisCircuitBreaker(store, "payments", **RULE) for store in stores]
    for breaker in breakers:
        breaker.close()  # no exchange but the test's own sync()
    yield breakers
    for store in stores:
        store.close()


def failures(breaker: RedisCircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises((Boom, CircuitOpenError)):
            breaker.call(fail)


def sync_all(breakers: list[RedisCircuitBreaker]) -> None:
    for breaker in breakers:
        breaker.sync()


def until_half_open_is_due(breaker: RedisCircuitBreaker) -> None:
    """Sleep (server time) past the fleet's open time."""
    time.sleep(RULE["reset_timeout"] + 0.05)


def test_one_failing_process_trips_only_its_own_breaker(
    fleet: list[RedisCircuitBreaker],
) -> None:
    a, b, c = fleet
    failures(a, 4)
    assert a.state is CircuitState.OPEN  # its own local breaker
    sync_all(fleet)
    assert [x.fleet_state for x in fleet] == [CircuitState.CLOSED] * 3
    assert b.call(ok) == "ok" and c.call(ok) == "ok"


def test_a_quorum_of_failing_processes_opens_every_breaker(
    fleet: list[RedisCircuitBreaker],
) -> None:
    a, b, c = fleet
    failures(a, 4)
    a.sync()
    failures(b, 4)
    b.sync()  # two processes failing at >= 50 % of their calls: the fleet opens
    assert b.fleet_state is CircuitState.OPEN
    c.sync()
    assert (c.fleet_state, c.state) == (CircuitState.OPEN, CircuitState.OPEN)
    with pytest.raises(CircuitOpenError) as refused:
        c.call(ok)  # c never failed: the fleet refuses for it
    wait = refused.value.retry_after
    assert wait is not None and 0.0 < wait <= RULE["reset_timeout"] + RULE["sync_interval"]


def test_a_quorum_needs_the_rate_over_the_whole_fleet_too(
    fleet: list[RedisCircuitBreaker],
) -> None:
    a, b, c = fleet
    failures(a, 2)
    failures(b, 2)
    for _ in range(20):
        c.call(ok)
    sync_all([c, a, b])  # two processes at 100 %, but 4 failures of 24 calls overall
    assert [x.fleet_state for x in fleet] == [CircuitState.CLOSED] * 3


def open_fleet(fleet: list[RedisCircuitBreaker]) -> None:
    a, b, _ = fleet
    failures(a, 4)
    failures(b, 4)
    sync_all(fleet)  # a's exchange came before b's: a learns at its next
    a.sync()
    assert all(x.fleet_state is CircuitState.OPEN for x in fleet)


def test_half_open_runs_the_probes_in_one_process_and_a_success_closes_the_fleet(
    fleet: list[RedisCircuitBreaker],
) -> None:
    open_fleet(fleet)
    a, b, c = fleet
    until_half_open_is_due(c)
    c.sync()  # the first to ask after the open time runs the fleet's probes
    assert (c.fleet_state, c.state) == (CircuitState.HALF_OPEN, CircuitState.HALF_OPEN)
    a.sync()
    b.sync()
    assert a.fleet_state is CircuitState.HALF_OPEN and a.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        a.call(ok)  # not the probe owner: refused
    assert c.call(ok) == "ok"  # the probe succeeds: reported at once, the fleet closes
    assert c.fleet_state is CircuitState.CLOSED and c.state is CircuitState.CLOSED
    sync_all(fleet)
    assert [x.state for x in fleet] == [CircuitState.CLOSED] * 3
    assert a.call(ok) == "ok"


def test_a_failed_probe_opens_the_fleet_again(fleet: list[RedisCircuitBreaker]) -> None:
    open_fleet(fleet)
    a, _, c = fleet
    until_half_open_is_due(c)
    c.sync()
    with pytest.raises(Boom):
        c.call(fail)
    assert c.fleet_state is CircuitState.OPEN
    a.sync()
    assert a.fleet_state is CircuitState.OPEN and a.state is CircuitState.OPEN


def test_half_open_never_runs_more_probes_than_half_open_calls_across_the_fleet(
    fleet: list[RedisCircuitBreaker],
) -> None:
    open_fleet(fleet)
    until_half_open_is_due(fleet[0])
    sync_all(fleet)
    sync_all(fleet)
    admitted = sum(breaker.allow() for breaker in fleet for _ in range(5))
    assert admitted == 1  # half_open_calls=1, whichever process owns the probes


def test_a_dead_probe_owners_reservation_lapses(fleet: list[RedisCircuitBreaker]) -> None:
    open_fleet(fleet)
    _a, b, c = fleet
    until_half_open_is_due(c)
    c.sync()
    c.close()  # the owner stops exchanging: as if it died
    b.sync()
    assert b.state is CircuitState.OPEN  # the reservation is c's for a reset_timeout
    time.sleep(RULE["reset_timeout"] + 0.05)
    b.sync()
    assert (b.fleet_state, b.state) == (CircuitState.HALF_OPEN, CircuitState.HALF_OPEN)


def test_during_an_outage_each_breaker_is_its_local_breaker(
    fresh_redis_server: RedisServer,
) -> None:
    store = RedisStore.from_url(fresh_redis_server.url, timeout=0.2)
    breaker = RedisCircuitBreaker(store, "outage", **RULE)
    fresh_redis_server.stop()
    breaker.sync()  # nothing raised: the exchange waits for Redis to come back
    assert breaker.call(ok) == "ok"
    failures(breaker, 4)
    assert breaker.state is CircuitState.OPEN  # the local rule still applies
    fresh_redis_server.start()
    store.close()


def test_every_key_has_a_ttl_and_one_slot(fleet: list[RedisCircuitBreaker]) -> None:
    open_fleet(fleet)
    store = fleet[0].store
    client = store.client
    assert client is not None
    names = client.keys("*breaker*")
    assert names
    for name in names:
        assert client.pttl(name) > 0, name
        tag = name[name.index(b"{") + 1 : name.index(b"}")]
        assert redis.cluster.key_slot(name) == redis.cluster.key_slot(tag)


def test_counts_of_an_older_generation_are_dropped(fleet: list[RedisCircuitBreaker]) -> None:
    open_fleet(fleet)
    a, b, c = fleet
    until_half_open_is_due(c)
    c.sync()
    c.call(ok)  # closes the fleet: a new generation, counted from nothing
    for breaker in (a, b):
        breaker.reset()  # their local breakers, opened by the fleet, as the next sync would
        failures(breaker, 4)  # counted against the generation each last saw: the open one
        breaker.sync()  # so dropped; each learns of the new generation here
    assert all(x.fleet_state is CircuitState.CLOSED for x in (a, b))
    for breaker in (a, b):
        failures(breaker, 4)  # now in the current generation
    sync_all([a, b])
    assert b.fleet_state is CircuitState.OPEN


def test_the_worker_makes_the_exchanges(redis_url: str) -> None:
    stores = [RedisStore.from_url(redis_url, timeout=1.0) for _ in range(3)]
    rule = {**RULE, "sync_interval": 0.05}
    breakers = [RedisCircuitBreaker(store, "worked", **rule) for store in stores]
    failures(breakers[0], 4)
    failures(breakers[1], 4)
    deadline = time.monotonic() + GUARD
    while breakers[2].state is not CircuitState.OPEN:  # no sync() called here
        assert time.monotonic() < deadline, "the worker never brought the fleet's state"
        time.sleep(0.02)
    assert breakers[2].fleet_state is CircuitState.OPEN
    for store in stores:
        store.close()


def test_a_published_change_is_learnt_at_once(redis_url: str) -> None:
    """The fleet's changes are published: a breaker whose worker would next
    exchange in a minute learns of the opening from the channel."""
    stores = [RedisStore.from_url(redis_url, timeout=1.0) for _ in range(3)]
    a, b, c = (RedisCircuitBreaker(store, "heard", **RULE) for store in stores)
    time.sleep(0.3)  # the workers subscribe (LISTEN_SLICE) before the change is published
    failures(a, 4)
    a.sync()
    failures(b, 4)
    b.sync()  # opens the fleet and publishes it
    deadline = time.monotonic() + GUARD
    while c.state is not CircuitState.OPEN:
        assert time.monotonic() < deadline, "the published opening never reached c"
        time.sleep(0.01)
    assert c.fleet_state is CircuitState.OPEN
    for store in stores:
        store.close()


def test_a_shared_config_entry_makes_one(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    config = {"circuit_breakers": {"payments": {**RULE, "shared": True}}}
    breaker = ResilienceManager(config, store=store).circuit_breaker("payments")
    assert type(breaker) is RedisCircuitBreaker and breaker.store is store
    store.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"failure_rate": None}, ValueError, "the fleet rule needs a rate"),
        ({"quorum": 0}, ValueError, "quorum must be an integer >= 1, got 0"),
        ({"quorum": 1.5}, TypeError, "quorum must be an integer, got 1.5"),
        ({"sync_interval": 0}, ValueError, "sync_interval must be a finite number > 0, got 0"),
        ({"sync_interval": math.nan}, ValueError, "sync_interval must not be NaN"),
        ({"fleet_window": -1}, ValueError, "fleet_window must be a finite number > 0, got -1"),
        ({"fleet_window": 0.1, "sync_interval": 1.0}, ValueError, "fleet_window must be >="),
        ({"failure_rate": 2}, ValueError, "failure_rate"),
        ({"minimum_calls": 0}, ValueError, "minimum_calls"),
    ],
)
def test_bad_settings_are_refused(
    redis_url: str, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with RedisStore.from_url(redis_url) as store, pytest.raises(error, match=message):
        RedisCircuitBreaker(store, "bad", **kwargs)


def test_bad_store_and_name_are_refused(redis_url: str) -> None:
    with pytest.raises(TypeError, match="store must be a RedisStore, got 'redis://'"):
        RedisCircuitBreaker("redis://", "x")  # type: ignore[arg-type]
    with (
        RedisStore.from_url(redis_url) as store,
        pytest.raises(TypeError, match="name must be a non-empty str"),
    ):
        RedisCircuitBreaker(store, "")


# -- real processes --------------------------------------------------------------------


def process(url: str, fails: bool, results: Queue[str]) -> None:
    """In a spawned process: a breaker of the fleet; report what it saw."""
    with RedisStore.from_url(url, timeout=1.0) as store:
        breaker = RedisCircuitBreaker(store, "procs", **{**RULE, "sync_interval": 0.05})
        if fails:
            for _ in range(4):
                with contextlib.suppress(Boom, CircuitOpenError):
                    breaker.call(fail)
        deadline = time.monotonic() + GUARD
        while breaker.fleet_state is not CircuitState.OPEN and time.monotonic() < deadline:
            time.sleep(0.02)
        results.put(f"{breaker.fleet_state.value} {breaker.state.value}")


def test_processes_open_the_fleet_together(redis_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    results: Queue[str] = context.Queue()
    processes = [
        context.Process(target=process, args=(redis_url, fails, results))
        for fails in (True, True, False)
    ]
    for each in processes:
        each.start()
    try:
        seen = sorted(results.get(timeout=60.0) for _ in processes)
    finally:
        for each in processes:
            each.join(timeout=10.0)
            if each.is_alive():
                each.kill()
    assert seen == ["OPEN OPEN"] * 3  # the healthy one too


def test_on_a_cluster(redis_cluster: RedisCluster) -> None:
    """The state and the counts share one hash slot, so the scripts run on a cluster."""
    redis_cluster.flushall()
    stores = [
        RedisStore(client=redis.cluster.RedisCluster.from_url(redis_cluster.url))
        for _ in range(2)
    ]
    a, b = (RedisCircuitBreaker(store, "clustered", **RULE) for store in stores)
    for breaker in (a, b):
        breaker.close()
        failures(breaker, 4)
    sync_all([a, b, a])
    assert (a.fleet_state, b.fleet_state) == (CircuitState.OPEN, CircuitState.OPEN)
    client = stores[0].client
    assert client is not None
    names = [stores[0].key("breaker", "clustered", None, f) for f in ("state", "counts:0")]
    assert len({client.keyslot(name) for name in names}) == 1
    for store in stores:
        store.close()
