"""``python -m resilience bench --scaling``: cost against window size, idle time and threads.

Breaker cost against its count-window size, ``TimeWindow.record`` against
the idle time between records (timed by the one timing loop, ``timing``),
and the total throughput of one limiter or bulkhead shared by 1 to 8
threads.
"""

from __future__ import annotations

import functools
import itertools
import statistics
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from ..breaker import CircuitBreaker
from ..bulkhead import Bulkhead
from ..ratelimit import RateLimiter
from . import memory, timing, workload
from .twins import running_on

WINDOW_SIZES = (10, 100, 1000, 10000)
IDLE_SLICES = (0, 1, 10, 100, 1000)
TIME_WINDOW_SLICES = 100  # TimeWindow(100.0): 100 slices of one second
THREADS = (1, 2, 4, 8)
CHUNK = 1000  # operations between two looks at the stop flag


def _breaker_with_window(classes: SimpleNamespace, size: int) -> dict[str, Any]:
    # failure_rate makes each outcome consult the window's totals.
    with running_on(classes):
        breaker = CircuitBreaker(window=size, failure_rate=0.5, minimum_calls=min(10, size))
        return {"g": breaker(timing.f)}


def _core_with_window(classes: SimpleNamespace, size: int) -> Any:
    return classes.BreakerCore(window=size, failure_rate=0.5, minimum_calls=min(10, size))


def _idle_window(classes: SimpleNamespace, slices: int) -> dict[str, Any]:
    window = classes.TimeWindow(float(TIME_WINDOW_SLICES), TIME_WINDOW_SLICES)
    width = window.duration / window.buckets
    return {"w": window, "t": itertools.count(0.0, slices * width)}


def _throughput(op: Callable[[], None], threads: int, seconds: float) -> float:
    """Operations per second, all threads together, of ``op`` (which runs CHUNK ops)."""
    stop = threading.Event()
    start = threading.Barrier(threads + 1)
    counts = [0] * threads
    ends = [0.0] * threads

    def worker(i: int) -> None:
        start.wait()
        n = 0
        while not stop.is_set():
            op()
            n += CHUNK
        counts[i] = n
        ends[i] = time.perf_counter()

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    start.wait()
    begin = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in workers:
        thread.join()
    return sum(counts) / (max(ends) - begin)


def _limiter_chunk(classes: SimpleNamespace) -> tuple[Callable[[], None], Any]:
    with running_on(classes):
        limiter = RateLimiter(workload.HUGE)
    acquire = limiter.try_acquire

    def chunk() -> None:
        for _ in range(CHUNK):
            acquire()

    return chunk, limiter


def _bulkhead_chunk(classes: SimpleNamespace) -> tuple[Callable[[], None], Any]:
    with running_on(classes):
        bulkhead = Bulkhead(max(THREADS))  # as many permits as threads: none is refused

    def chunk() -> None:
        for _ in range(CHUNK):
            with bulkhead:
                pass

    return chunk, bulkhead


def run(
    twins: dict[str, SimpleNamespace],
    repeat: int = 7,
    target: float = 0.1,
    out: Callable[[str], object] = print,
) -> dict[str, Any]:
    """Breaker cost vs window size, TimeWindow cost vs idle time, threads sharing a policy."""
    results: dict[str, Any] = {}
    names = list(twins)
    out(f"breaker cost vs CountWindow size (failure_rate=0.5), ns per call; bare f() in the"
        f" same rounds; median of {repeat} rounds")
    loops: dict[str, timing.Loop] = {"bare": timing.bare(target)}
    for size in WINDOW_SIZES:
        for name, classes in twins.items():
            decorated = _breaker_with_window(classes, size)
            loops[f"policy {name} {size}"] = timing.loop(workload.CALL, decorated, target)
            core = {"b": _core_with_window(classes, size)}
            loops[f"core {name} {size}"] = timing.loop(
                "b.record_success(0.0, None, b.acquire())", core, target
            )
    row = timing.medians(timing.interleaved(loops, repeat))
    out(f"{'window':>8}" + "".join(f"{'decorator ' + n:>18}" for n in names)
        + "".join(f"{'core ' + n:>14}" for n in names)
        + "".join(f"{'bytes ' + n:>14}" for n in names))
    table = []
    for size in WINDOW_SIZES:
        entry: dict[str, Any] = {"window": size, "bare_ns": row["bare"]}
        for name, classes in twins.items():
            entry[f"decorator_{name}_ns"] = row[f"policy {name} {size}"]
            entry[f"core_{name}_ns"] = row[f"core {name} {size}"]
            breaker_core = functools.partial(classes.BreakerCore, window=size)
            entry[f"bytes_{name}"] = memory.bytes_per(breaker_core, 200)
        table.append(entry)
        out(f"{size:>8}" + "".join(f"{entry[f'decorator_{n}_ns']:>18.1f}" for n in names)
            + "".join(f"{entry[f'core_{n}_ns']:>14.1f}" for n in names)
            + "".join(f"{entry[f'bytes_{n}']:>14.0f}" for n in names))
    out(f"(bare call f(): {row['bare']:.1f} ns; decorator = CircuitBreaker(window=N)(f)() ;"
        " core = BreakerCore acquire + record_success; bytes per BreakerCore, tracemalloc)")
    results["breaker_window"] = table

    out("")
    out(f"TimeWindow({TIME_WINDOW_SLICES}.0) ({TIME_WINDOW_SLICES} one-second slices):"
        " record(False, False, now) with now advanced by k slices between records, ns per record")
    loops = {"bare": timing.loop("next(t)", _idle_window(next(iter(twins.values())), 1), target)}
    for slices in IDLE_SLICES:
        for name, classes in twins.items():
            loops[f"{name} {slices}"] = timing.loop(
                "w.record(False, False, next(t))", _idle_window(classes, slices), target
            )
    row = timing.medians(timing.interleaved(loops, repeat))
    out(f"{'k slices':>10}" + "".join(f"{n + ' ns':>14}" for n in names)
        + "".join(f"{n + ' - next()':>16}" for n in names))
    table = []
    for slices in IDLE_SLICES:
        entry = {"slices": slices, "bare_ns": row["bare"]}
        for name in names:
            entry[f"{name}_ns"] = row[f"{name} {slices}"]
        table.append(entry)
        out(f"{slices:>10}" + "".join(f"{entry[f'{n}_ns']:>14.1f}" for n in names)
            + "".join(f"{entry[f'{n}_ns'] - row['bare']:>+16.1f}" for n in names))
    out(f"(the statement includes next(t) on an itertools.count, {row['bare']:.1f} ns alone;"
        f" k >= {TIME_WINDOW_SLICES} empties the whole window)")
    results["time_window_idle"] = table

    out("")
    seconds = max(0.05, 2 * target)
    rounds = max(1, min(repeat, 5))
    out(f"throughput, all threads together, Mops/s; each thread loops on one shared object;"
        f" {seconds:g} s per figure, median of {rounds} rounds")
    cells: dict[tuple[str, str, int], list[float]] = {}
    objects: dict[tuple[str, str], Any] = {}
    kinds = {
        "RateLimiter.try_acquire()": _limiter_chunk,
        "with Bulkhead": _bulkhead_chunk,
    }
    chunks: dict[tuple[str, str], Callable[[], None]] = {}
    for kind, make in kinds.items():
        for name, classes in twins.items():
            chunks[kind, name], objects[kind, name] = make(classes)
    for _ in range(rounds):
        for threads in THREADS:
            for (kind, name), chunk in chunks.items():
                rate = _throughput(chunk, threads, seconds)
                cells.setdefault((kind, name, threads), []).append(rate)
    out(f"{'threads':>8}" + "".join(f"{k.split('.')[0].split(' ')[-1] + ' ' + n:>22}"
                                     for k, n in chunks))
    table = []
    for threads in THREADS:
        entry = {"threads": threads}
        line = f"{threads:>8}"
        for kind, name in chunks:
            value = statistics.median(cells[kind, name, threads])
            entry[f"{kind} {name}"] = value
            line += f"{value / 1e6:>22.2f}"
        table.append(entry)
        out(line)
    rejected = {f"{k} {n}": obj.stats.rejected for (k, n), obj in objects.items()}
    out("rejections during the runs: " + ", ".join(f"{k}: {v}" for k, v in rejected.items()))
    results["throughput"] = {"rows": table, "seconds": seconds, "rounds": rounds,
                             "rejected": rejected}
    return results
