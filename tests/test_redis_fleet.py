"""A fleet on one limit: several OS processes offering far more than the limit.

Four spawned processes, released together by a barrier, take tokens from one
``RedisRateLimiter`` as fast as they can for a few seconds. Each reads the
server's ``TIME`` just before its first decision and just after its last, so
the interval T the fleet was admitted in is the server's, never a client's.
GCRA admits at most ``burst + rate * T`` in any interval T; exact mode lets
almost nothing go unused (the processes offer several times the limit), and
a lease never lets the fleet over-admit.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest
import redis

from resilience.redis import RedisRateLimiter, RedisStore

PROCESSES = 4
SECONDS = 5.0
RATE = 200.0  # tokens a second: the processes offer thousands
BURST = 50  # a quarter second of tokens: a process starved that long loses none

Result = tuple[int, int, float, float, int]


def server_time(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6


def offer(url: str, lease: int | None, barrier: Barrier, results: Queue[Result | str]) -> None:
    """In a spawned process: puts (admitted, offered, server time first, server
    time last, fallback decisions), or what went wrong."""
    try:
        results.put(offered_and_admitted(url, lease, barrier))
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")
        raise


def offered_and_admitted(url: str, lease: int | None, barrier: Barrier) -> Result:
    with RedisStore.from_url(url, timeout=1.0) as store:
        limiter = RedisRateLimiter(store, "fleet", RATE, per=1.0, burst=BURST, lease=lease)
        client = store.client
        assert client is not None
        barrier.wait(timeout=60.0)
        first = server_time(client)
        admitted = offered = 0
        while server_time(client) < first + SECONDS:
            for _ in range(20):
                admitted += limiter.try_acquire()
                offered += 1
        last = server_time(client)
        return admitted, offered, first, last, store.stats.fallbacks


@pytest.mark.parametrize("lease", [None, 10], ids=["exact", "lease"])
def test_a_fleet_never_admits_more_than_the_limit(redis_url: str, lease: int | None) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    queue: Queue[Result | str] = context.Queue()
    processes = [
        context.Process(target=offer, args=(redis_url, lease, barrier, queue))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        results = [queue.get(timeout=90.0) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=10.0)
            if process.is_alive():
                process.kill()
    failed = [result for result in results if isinstance(result, str)]
    assert not failed, failed
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    results = [result for result in results if not isinstance(result, str)]
    assert sum(r[4] for r in results) == 0  # every decision was Redis's, none a fallback
    admitted = sum(r[0] for r in results)
    offered = sum(r[1] for r in results)
    span = max(r[3] for r in results) - min(r[2] for r in results)
    allowed = RATE * span + BURST
    assert offered >= 3 * allowed, (offered, allowed)  # the fleet asked for far more
    assert admitted <= allowed, (admitted, allowed, span)
    if lease is None:
        assert admitted >= 0.99 * RATE * span, (admitted, RATE * span)


def test_the_fleet_demo_shares_one_limit_and_one_breaker(redis_url: str) -> None:
    """``python -m resilience demo --redis URL``: it exits 0 only when the
    fleet stayed within its shared limit and its breaker opened in the outage."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "resilience", "demo", "--redis", redis_url, "--scale", "0.6"],
        capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "one bad node" in run.stdout and "outage" in run.stdout
    summary = run.stdout.strip().splitlines()[-1]
    assert "within it" in summary and "opened in the outage" in summary, summary
