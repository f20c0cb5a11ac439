"""``python -m resilience bench``: the core primitives and the policies, compiled vs pure.

Every figure is a median over rounds of timeit loops, in nanoseconds per
operation. Within a row, each round times the compiled twin, the pure twin
and the row's baseline (a bare call of ``def f(): return 1``, or a bare
await) back to back, and the speed-up and the cost over the baseline are
medians of per-round ratios and differences: on a noisy machine the
absolute times drift, but what is compared is measured side by side.
Policy rows also show DESIGN.md's target.

``--peers`` (``_peers.py``) compares with other libraries, ``--scaling``
measures cost against window size, idle time and threads; ``--json FILE``
and ``--plot FILE.png`` (matplotlib) record any of them.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import functools
import gc
import importlib
import importlib.util
import itertools
import json
import os
import platform
import statistics
import sys
import threading
import time
import timeit
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from . import __version__, _core
from ._core import IMPLEMENTATION, load
from .breaker import CircuitBreaker
from .bulkhead import Bulkhead
from .errors import CircuitOpenError
from .pipeline import Pipeline
from .ratelimit import RateLimiter
from .retry import Retry


@dataclass(frozen=True)
class Case:
    """One operation: ``setup(classes)`` builds the namespace ``stmt`` runs in.

    ``target`` is DESIGN.md's budget in ns for policy rows: over the bare call,
    or in all when ``absolute``.
    """

    name: str
    stmt: str
    setup: Callable[[SimpleNamespace], dict[str, Any]]
    target: float = 0.0
    absolute: bool = False
    # ``stmt`` runs ``batch`` operations; ``baseline`` (same stmt) is their bare cost.
    batch: int = 1
    baseline: Callable[[SimpleNamespace], dict[str, Any]] | None = None


def f() -> int:
    """The bare call every figure is set against."""
    return 1


def _bare(_: SimpleNamespace) -> dict[str, Any]:
    return {"f": f}


@contextmanager
def _running_on(classes: SimpleNamespace) -> Iterator[None]:
    """Policies built inside take their core classes from ``classes``."""
    saved = _core.SELECTED
    _core.SELECTED = classes
    try:
        yield
    finally:
        _core.SELECTED = saved


def _breaker_decorated(classes: SimpleNamespace) -> dict[str, Any]:
    with _running_on(classes):
        breaker = CircuitBreaker(name="bench")
        return {"g": breaker(f), "breaker": breaker}


def _limiter_decorated(classes: SimpleNamespace) -> dict[str, Any]:
    with _running_on(classes):
        return {"g": RateLimiter(1e12)(f)}  # never runs dry: every call is allowed


def _bulkhead(classes: SimpleNamespace) -> dict[str, Any]:
    with _running_on(classes):
        return {"b": Bulkhead(10)}


def _bulkhead_async(classes: SimpleNamespace) -> dict[str, Any]:
    # One event loop runs a batch of empty ``async with`` blocks; the bare
    # row is the same loop awaiting a coroutine that returns at once, so the
    # difference is what entering and leaving costs beyond one bare await
    # (DESIGN's measure; the peers comparison times it the same way).
    with _running_on(classes):
        bulkhead = Bulkhead(10)

    async def held() -> None:
        for _ in range(ASYNC_BATCH):
            async with bulkhead:
                pass

    return {"run": _event_loop().run_until_complete, "main": held}


def _bare_async(_: SimpleNamespace) -> dict[str, Any]:
    async def bare() -> None:
        for _ in range(ASYNC_BATCH):
            await af()

    return {"run": _event_loop().run_until_complete, "main": bare}


@functools.cache
def _event_loop() -> asyncio.AbstractEventLoop:
    """One loop for every async row: starting a loop per batch would swamp the figures."""
    loop = asyncio.new_event_loop()
    atexit.register(loop.close)
    return loop


async def af() -> int:
    """The bare coroutine ``async with`` rows are set against."""
    return 1


ASYNC_BATCH = 1000


def _retry_decorated(classes: SimpleNamespace) -> dict[str, Any]:
    with _running_on(classes):
        return {"g": Retry()(f)}


def _pipeline_decorated(classes: SimpleNamespace) -> dict[str, Any]:
    with _running_on(classes):
        pipeline = Pipeline(CircuitBreaker(), RateLimiter(1e12), Bulkhead(10), Retry())
        return {"g": pipeline(f)}


def _breaker_instrumented(classes: SimpleNamespace) -> dict[str, Any]:
    """A breaker exported to Prometheus: registered, and scraped once before timing."""
    from prometheus_client import CollectorRegistry, generate_latest

    from .metrics.prometheus import PrometheusCollector

    namespace = _breaker_decorated(classes)
    registry = CollectorRegistry()
    registry.register(PrometheusCollector([namespace["breaker"]]))
    generate_latest(registry)
    return namespace


def _breaker_open(classes: SimpleNamespace) -> dict[str, Any]:
    with _running_on(classes):
        breaker = CircuitBreaker()
    breaker.force_open()
    return {"g": breaker(f), "E": CircuitOpenError}


CASES = (
    Case(
        "TokenBucket.try_acquire()",
        "b.try_acquire()",
        # A rate this high never runs dry, so every call takes the grant path.
        lambda c: {"b": c.TokenBucket(1e12, 1e12)},
    ),
    Case(
        "BreakerCore acquire + record_success",
        "b.record_success(0.0, None, b.acquire())",
        lambda c: {"b": c.BreakerCore()},
    ),
    Case(
        "BreakerCore.acquire() while open",
        "b.acquire()",
        lambda c: _forced_open(c.BreakerCore()),
    ),
    Case(
        "SemaphoreCore try_acquire + release",
        "s.try_acquire(); s.release()",
        lambda c: {"s": c.SemaphoreCore(10)},
    ),
    Case(
        "CountWindow.record(False)",
        "w.record(False)",
        lambda c: {"w": c.CountWindow(100)},
    ),
    Case(
        "TimeWindow.record(False)",
        "w.record(False)",
        lambda c: {"w": c.TimeWindow(60.0)},
    ),
    Case(
        "LatencySketch.add(0.0123)",
        "s.add(0.0123)",
        lambda c: {"s": c.LatencySketch()},
    ),
)

POLICY_CASES = (
    Case("CircuitBreaker decorator, closed", "g()", _breaker_decorated, target=60.0),
    *(
        # The same call with the breaker exported: the collector adds nothing per call.
        [Case("  the same, exported to Prometheus", "g()", _breaker_instrumented, target=60.0)]
        if importlib.util.find_spec("prometheus_client")
        else []
    ),
    Case(
        "CircuitBreaker rejection while open",
        "try:\n    g()\nexcept E:\n    pass",
        _breaker_open,
        target=350.0,
        absolute=True,
    ),
    Case("RateLimiter decorator, allowed", "g()", _limiter_decorated, target=80.0),
    Case("Bulkhead sync with, free", "with b:\n    pass", _bulkhead, target=120.0, absolute=True),
    Case("Retry decorator, success first try", "g()", _retry_decorated, target=120.0),
    Case(
        "Pipeline breaker+limiter+bulkhead+retry",
        "g()",
        _pipeline_decorated,
        target=300.0,
    ),
    Case(
        "Bulkhead async with, free (vs bare await)",
        "run(main())",
        _bulkhead_async,
        target=150.0,
        batch=ASYNC_BATCH,
        baseline=_bare_async,
    ),
)


def _forced_open(breaker: Any) -> dict[str, Any]:
    breaker.force_open()
    return {"b": breaker}


def _sample(
    case: Case, twins: dict[str, SimpleNamespace], repeat: int, target: float
) -> dict[str, list[float]]:
    """Per-round ns per operation of the case on each twin and of its baseline."""
    loops = {
        name: _loop(case.stmt, case.setup(classes), target) for name, classes in twins.items()
    }
    baseline = case.baseline or _bare
    bare_stmt = case.stmt if case.baseline else "f()"
    loops["bare"] = _loop(bare_stmt, baseline(SimpleNamespace()), target)
    return interleaved(loops, repeat, case.batch)


def _loop(stmt: str, namespace: dict[str, Any], target: float) -> tuple[timeit.Timer, int]:
    """A timer for ``stmt`` and the loop count that takes about ``target`` seconds."""
    timer = timeit.Timer(stmt, globals=namespace)
    number, elapsed = 1, timer.timeit(1)
    while elapsed < target / 10:  # calibrate: grow the loop to a tenth of the target
        number *= 10
        elapsed = timer.timeit(number)
    return timer, max(1, int(number * target / elapsed))


def interleaved(
    loops: dict[str, tuple[timeit.Timer, int]], repeat: int, batch: int = 1
) -> dict[str, list[float]]:
    """``repeat`` rounds, each timing every loop once, in turn: ns per operation."""
    samples: dict[str, list[float]] = {name: [] for name in loops}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            for name, (timer, number) in loops.items():
                samples[name].append(timer.timeit(number) / number / batch * 1e9)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def _figures(row: dict[str, float], twins: dict[str, SimpleNamespace]) -> str:
    return "".join(f"{row[name]:>12.1f}" for name in twins)


def median_of(pairs: Iterator[float]) -> float:
    return statistics.median(list(pairs))


def breaker_memory(classes: SimpleNamespace, count: int = 2000) -> float:
    """Bytes per ``BreakerCore()`` (count window of 100), measured with tracemalloc."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        breakers = [classes.BreakerCore() for _ in range(count)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # The list holding them is not part of a breaker.
    return (after - before - sys.getsizeof(breakers)) / count


def run(
    repeat: int = 7, target: float = 0.1, out: Callable[[str], object] = print
) -> dict[str, Any]:
    """Print the table and return the figures (ns per operation)."""
    names = ["cython", "python"]
    twins = {}
    for name in names:
        try:
            twins[name] = load(name)
        except ImportError as exc:
            out(f"note: the {name} twin is not available ({exc})")
    out(
        f"resilience {__version__} (live: {IMPLEMENTATION}) on {platform.python_implementation()}"
        f" {platform.python_version()}, {platform.system()} {platform.machine()}"
    )
    header = f"{'operation':<40}{'bare ns':>9}" + "".join(f"{n + ' ns':>12}" for n in twins)
    out(header + (f"{'speedup':>10}" if len(twins) == 2 else ""))
    results: dict[str, Any] = {"cases": {}}
    for case in CASES:
        samples = _sample(case, twins, repeat, target)
        row = {name: statistics.median(values) for name, values in samples.items()}
        results["cases"][case.name] = row
        line = f"{case.name:<40}{row['bare']:>9.1f}" + _figures(row, twins)
        if len(twins) == 2:
            pairs = zip(samples["python"], samples["cython"], strict=True)
            ratio = median_of(pure / compiled for pure, compiled in pairs)
            row["speedup"] = ratio
            line += f"{ratio:>9.1f}x"
        out(line)
    out("")
    out(f"{'policy':<40}{'bare ns':>9}" + "".join(f"{n + ' ns':>12}" for n in twins)
        + f"{'over bare':>11}   target (compiled)")
    for case in POLICY_CASES:
        samples = _sample(case, twins, repeat, target)
        row = {name: statistics.median(values) for name, values in samples.items()}
        best = "cython" if "cython" in samples else "python"
        pairs = zip(samples["bare"], samples[best], strict=True)
        row["over_bare"] = median_of(ours - bare for bare, ours in pairs)
        results["cases"][case.name] = row
        line = f"{case.name:<40}{row['bare']:>9.1f}" + _figures(row, twins)
        goal = f"<= {case.target:.0f} ns" + ("" if case.absolute else " over bare")
        out(line + f"{row['over_bare']:>+11.1f}   {goal}")
    for name, classes in twins.items():
        size = breaker_memory(classes)
        results[f"breaker_bytes_{name}"] = size
        out(f"memory per BreakerCore() (CountWindow(100)), {name}: {size:.0f} bytes (tracemalloc)")
    return results


# -- the environment a result was measured in ---------------------------------


def environment() -> dict[str, Any]:
    """Machine, interpreter, date and version, for ``--json``."""
    uname = platform.uname()
    return {
        "resilience": __version__,
        "implementation": IMPLEMENTATION,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_build": sys.version,
        "machine": {
            "system": uname.system,
            "release": uname.release,
            "machine": uname.machine,
            "processor": uname.processor or platform.processor(),
            "cpus": os.cpu_count(),
        },
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# -- scaling -------------------------------------------------------------------

WINDOW_SIZES = (10, 100, 1000, 10000)
IDLE_SLICES = (0, 1, 10, 100, 1000)
TIME_WINDOW_SLICES = 100  # TimeWindow(100.0): 100 slices of one second
THREADS = (1, 2, 4, 8)
CHUNK = 1000  # operations between two looks at the stop flag


def _breaker_with_window(classes: SimpleNamespace, size: int) -> dict[str, Any]:
    # failure_rate makes each outcome consult the window's totals.
    with _running_on(classes):
        breaker = CircuitBreaker(window=size, failure_rate=0.5, minimum_calls=min(10, size))
    return {"g": breaker(f)}


def _core_with_window(classes: SimpleNamespace, size: int) -> dict[str, Any]:
    return {"b": classes.BreakerCore(window=size, failure_rate=0.5, minimum_calls=min(10, size))}


def _idle_window(classes: SimpleNamespace, slices: int) -> dict[str, Any]:
    window = classes.TimeWindow(float(TIME_WINDOW_SLICES), TIME_WINDOW_SLICES)
    width = window.duration / window.buckets
    return {"w": window, "t": itertools.count(0.0, slices * width)}


def _window_memory(classes: SimpleNamespace, size: int, count: int = 200) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        breakers = [classes.BreakerCore(window=size) for _ in range(count)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before - sys.getsizeof(breakers)) / count


def _medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in samples.items()}


def _throughput(
    op: Callable[[], None], threads: int, seconds: float
) -> float:
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
    with _running_on(classes):
        limiter = RateLimiter(1e12)
    acquire = limiter.try_acquire

    def chunk() -> None:
        for _ in range(CHUNK):
            acquire()

    return chunk, limiter


def _bulkhead_chunk(classes: SimpleNamespace) -> tuple[Callable[[], None], Any]:
    with _running_on(classes):
        bulkhead = Bulkhead(max(THREADS))  # as many permits as threads: none is refused

    def chunk() -> None:
        for _ in range(CHUNK):
            with bulkhead:
                pass

    return chunk, bulkhead


def scaling(
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
    loops: dict[str, tuple[timeit.Timer, int]] = {"bare": _loop("f()", {"f": f}, target)}
    for size in WINDOW_SIZES:
        for name, classes in twins.items():
            decorated = _breaker_with_window(classes, size)
            loops[f"policy {name} {size}"] = _loop("g()", decorated, target)
            loops[f"core {name} {size}"] = _loop(
                "b.record_success(0.0, None, b.acquire())", _core_with_window(classes, size), target
            )
    row = _medians(interleaved(loops, repeat))
    out(f"{'window':>8}" + "".join(f"{'decorator ' + n:>18}" for n in names)
        + "".join(f"{'core ' + n:>14}" for n in names)
        + "".join(f"{'bytes ' + n:>14}" for n in names))
    table = []
    for size in WINDOW_SIZES:
        entry: dict[str, Any] = {"window": size, "bare_ns": row["bare"]}
        for name, classes in twins.items():
            entry[f"decorator_{name}_ns"] = row[f"policy {name} {size}"]
            entry[f"core_{name}_ns"] = row[f"core {name} {size}"]
            entry[f"bytes_{name}"] = _window_memory(classes, size)
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
    loops = {"bare": _loop("next(t)", _idle_window(next(iter(twins.values())), 1), target)}
    for slices in IDLE_SLICES:
        for name, classes in twins.items():
            loops[f"{name} {slices}"] = _loop(
                "w.record(False, False, next(t))", _idle_window(classes, slices), target
            )
    row = _medians(interleaved(loops, repeat))
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


# -- plots ---------------------------------------------------------------------


def _pyplot() -> Any:
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


OURS_COLORS = {"cython": "#1f77b4", "python": "#9ecae1"}
PEER_COLOR = "#999999"
STDLIB_COLOR = "#d6a756"


def plot_peers(results: dict[str, Any], path: str) -> None:
    """Horizontal bars, ns per operation (log scale), grouped by operation.

    A dotted line in each group marks the bare call (or bare await) of the run.
    """
    plt = _pyplot()
    patches = importlib.import_module("matplotlib.patches")
    labels: list[str] = []
    values: list[float] = []
    colors: list[str] = []
    headings: list[int] = []
    spans: list[tuple[int, int, float]] = []  # first row, last row, bare ns of the group
    current = None
    for entry in results["rows"]:
        heading = f"{entry['operation']} ({entry['mode']})"
        if heading != current:
            if current is not None:
                labels.append("")
                values.append(0.0)
                colors.append("none")
            current = heading
            headings.append(len(labels))
            labels.append(heading)
            values.append(0.0)
            colors.append("none")
            spans.append((len(labels), len(labels), results["bare"][entry["mode"]]))
        first, _, bare = spans[-1]
        spans[-1] = (first, len(labels), bare)
        labels.append(f"{entry['label']} {entry['version']}".strip())
        values.append(entry["ns"])
        if entry["library"] == "resilience":
            colors.append(OURS_COLORS.get(entry["variant"], OURS_COLORS["cython"]))
        else:
            colors.append(STDLIB_COLOR if entry["library"] == "stdlib" else PEER_COLOR)
    fig, ax = plt.subplots(figsize=(10, 0.22 * len(labels) + 1.8))
    positions = list(range(len(labels)))
    ax.barh(positions, [v if v > 0 else float("nan") for v in values], color=colors)
    ax.set_yticks(positions)
    ax.set_yticklabels(labels, fontsize=8)
    ax.tick_params(axis="y", length=0)
    for i in headings:
        ax.get_yticklabels()[i].set_fontweight("bold")
    for first, last, bare in spans:
        ax.vlines(bare, first - 0.45, last + 0.45, colors="black", linestyles="dotted", lw=1)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ns per operation (log scale; lower is better)")
    for y, value in zip(positions, values, strict=True):
        if value > 0:
            ax.text(value * 1.05, y, _short_ns(value), va="center", fontsize=7)
    env = environment()
    ax.set_title(
        f"resilience {__version__} vs peers - {env['python']}, {env['machine']['system']}"
        f" {env['machine']['machine']}, median of {results['repeat']} interleaved rounds",
        fontsize=10,
    )
    ax.grid(axis="x", which="both", alpha=0.3)
    shown = [v for v in values if v > 0]
    ax.set_xlim(10.0, max(shown) * 4)
    legend = [
        patches.Patch(color=OURS_COLORS["cython"], label="resilience, compiled"),
        patches.Patch(color=OURS_COLORS["python"], label="resilience, pure Python"),
        patches.Patch(color=PEER_COLOR, label="peer library"),
        patches.Patch(color=STDLIB_COLOR, label="standard library"),
        importlib.import_module("matplotlib.lines").Line2D(
            [], [], color="black", linestyle="dotted", label="bare call / bare await"
        ),
    ]
    ax.legend(handles=legend, loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _short_ns(value: float) -> str:
    if value >= 10000:
        return f"{value / 1000:.0f} us"
    if value >= 1000:
        return f"{value / 1000:.1f} us"
    return f"{value:.0f} ns"


def _style(key: str) -> dict[str, Any]:
    """Colour by twin, line style by kind, the same in every panel."""
    twin = "python" if "python" in key else "cython"
    dashed = "core" in key or "Bulkhead" in key
    return {"color": OURS_COLORS[twin] if twin == "cython" else "#ff7f0e",
            "linestyle": "--" if dashed else "-", "marker": "o"}


def plot_scaling(results: dict[str, Any], path: str) -> None:
    """Three panels: breaker vs window size, TimeWindow vs idle slices, threads."""
    plt = _pyplot()
    ticker = importlib.import_module("matplotlib.ticker")
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.5))
    rows = results["breaker_window"]
    sizes = [r["window"] for r in rows]
    for key in rows[0]:
        if key.endswith("_ns") and key != "bare_ns":
            a.plot(sizes, [r[key] for r in rows], label=key[:-3].replace("_", " "), **_style(key))
    a.set_xscale("log")
    a.set_xticks(sizes)
    a.set_xticklabels([str(n) for n in sizes])
    a.set_xlabel("CountWindow size")
    a.set_ylabel("ns per call (log scale)")
    a.set_title("breaker cost vs window size")
    rows = results["time_window_idle"]
    slices = [r["slices"] for r in rows]
    for key in rows[0]:
        if key.endswith("_ns") and key != "bare_ns":
            b.plot(slices, [r[key] for r in rows], label=f"record, {key[:-3]}", **_style(key))
    b.set_xscale("symlog", linthresh=1)
    b.set_xticks(slices)
    b.set_xticklabels([str(n) for n in slices])
    b.set_xlabel("slices idle between records")
    b.set_ylabel("ns per record (log scale)")
    b.set_title(f"TimeWindow record vs idle time ({TIME_WINDOW_SLICES} slices)")
    rows = results["throughput"]["rows"]
    threads = [r["threads"] for r in rows]
    for key in rows[0]:
        if key != "threads":
            c.plot(threads, [r[key] / 1e6 for r in rows], label=key, **_style(key))
    c.set_xscale("log", base=2)
    c.set_xticks(threads)
    c.set_xticklabels([str(t) for t in threads])
    c.set_xlabel("threads sharing one object")
    c.set_ylabel("Mops/s, all threads (log scale)")
    c.set_title("throughput vs threads")
    for axis in (a, b, c):
        axis.set_yscale("log")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
        axis.xaxis.set_minor_formatter(ticker.NullFormatter())
        axis.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.yaxis.set_minor_formatter(ticker.NullFormatter())
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_twins(results: dict[str, Any], path: str) -> None:
    """Compiled vs pure vs bare, ns per operation (log scale)."""
    plt = _pyplot()
    cases = list(results["cases"].items())
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(cases) + 1.5))
    series = [("bare", "#cccccc"), ("cython", OURS_COLORS["cython"]),
              ("python", OURS_COLORS["python"])]
    width = 0.27
    for i, (name, color) in enumerate(series):
        ys = [j + (i - 1) * width for j in range(len(cases))]
        xs = [row.get(name, float("nan")) for _, row in cases]
        ax.barh(ys, xs, height=width, color=color, label=name)
    ax.set_yticks(range(len(cases)))
    ax.set_yticklabels([name for name, _ in cases], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ns per operation (log scale)")
    ax.legend()
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the command ---------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m resilience bench``."""
    parser.add_argument("--repeat", type=int, default=7, help="timing rounds per figure (median)")
    parser.add_argument("--target", type=float, default=0.1, help="seconds per timing loop")
    parser.add_argument(
        "--peers", action="store_true", help="compare with other libraries (those installed)"
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="breaker vs window size, TimeWindow vs idle time, throughput vs threads",
    )
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument(
        "--plot", metavar="FILE.png", help="draw a bar chart (needs matplotlib: the bench extra)"
    )


def command(args: argparse.Namespace) -> int:
    """``python -m resilience bench [--peers] [--scaling] [--json FILE] [--plot FILE.png]``."""
    if args.repeat < 1 or args.target <= 0:
        print("--repeat must be >= 1 and --target > 0", file=sys.stderr)
        return 2
    if args.plot:
        try:
            _pyplot()
        except ImportError as exc:
            print(f"--plot needs matplotlib ({exc}): pip install matplotlib", file=sys.stderr)
            return 2
    sections: dict[str, dict[str, Any]] = {}
    if not (args.peers or args.scaling):
        sections["twins"] = run(repeat=args.repeat, target=args.target)
    if args.peers:
        from . import _peers

        sections["peers"] = _peers.run(repeat=args.repeat, target=args.target)
    if args.scaling:
        if args.peers:
            print()
        twins = {}
        for name in ("cython", "python"):
            try:
                twins[name] = load(name)
            except ImportError as exc:
                print(f"note: the {name} twin is not available ({exc})")
        sections["scaling"] = scaling(twins, repeat=args.repeat, target=args.target)
    if args.json:
        document = {**environment(), "repeat": args.repeat, "target_seconds": args.target,
                    **sections}
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=1)
            file.write("\n")
        print(f"wrote {args.json}")
    if args.plot:
        for path in _plot_paths(args.plot, list(sections)):
            section, file_name = path
            PLOTS[section](sections[section], file_name)
            print(f"wrote {file_name}")
    return 0


PLOTS: dict[str, Callable[[dict[str, Any], str], None]] = {
    "twins": plot_twins,
    "peers": plot_peers,
    "scaling": plot_scaling,
}


def _plot_paths(path: str, sections: list[str]) -> list[tuple[str, str]]:
    """The first section gets ``path``; any other ``<stem>-<section><suffix>``."""
    stem, dot, suffix = path.rpartition(".")
    if not dot:
        stem, suffix = path, "png"
    paths = [(sections[0], path)]
    paths += [(section, f"{stem}-{section}.{suffix}") for section in sections[1:]]
    return paths
