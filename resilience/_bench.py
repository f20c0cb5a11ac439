"""``python -m resilience bench``: the core primitives and the policies, compiled vs pure.

Every figure is the median over repeats of a timeit loop, in nanoseconds per
operation, beside a bare call of ``def f(): return 1`` measured in the same
run, so the ratios hold on a noisy machine even when the absolute times drift.
Policy rows also show the cost over the bare call and DESIGN.md's target.
"""

from __future__ import annotations

import asyncio
import gc
import platform
import statistics
import sys
import timeit
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
        return {"g": CircuitBreaker()(f)}


def _limiter_decorated(classes: SimpleNamespace) -> dict[str, Any]:
    with _running_on(classes):
        return {"g": RateLimiter(1e12)(f)}  # never runs dry: every call is allowed


def _bulkhead(classes: SimpleNamespace) -> dict[str, Any]:
    with _running_on(classes):
        return {"b": Bulkhead(10)}


def _bulkhead_async(classes: SimpleNamespace) -> dict[str, Any]:
    # One event loop runs a batch of ``async with`` blocks; the bare row is
    # the same loop awaiting a coroutine that returns at once.
    with _running_on(classes):
        bulkhead = Bulkhead(10)

    async def held() -> None:
        for _ in range(ASYNC_BATCH):
            async with bulkhead:
                await af()

    return {"run": asyncio.run, "main": held}


def _bare_async(_: SimpleNamespace) -> dict[str, Any]:
    async def bare() -> None:
        for _ in range(ASYNC_BATCH):
            await af()

    return {"run": asyncio.run, "main": bare}


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
)

POLICY_CASES = (
    Case("CircuitBreaker decorator, closed", "g()", _breaker_decorated, target=60.0),
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


def _measure(
    case: Case, twins: dict[str, SimpleNamespace], repeat: int, target: float
) -> dict[str, float]:
    return {
        name: time_ns(case.stmt, case.setup(classes), repeat, target) / case.batch
        for name, classes in twins.items()
    }


def time_ns(stmt: str, namespace: dict[str, Any], repeat: int, target: float) -> float:
    """Median ns per run of ``stmt`` over ``repeat`` loops of about ``target`` seconds."""
    timer = timeit.Timer(stmt, globals=namespace)
    number, elapsed = 1, timer.timeit(1)
    while elapsed < target / 10:  # calibrate: grow the loop to a tenth of the target
        number *= 10
        elapsed = timer.timeit(number)
    number = max(1, int(number * target / elapsed))
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        samples = [timer.timeit(number) / number * 1e9 for _ in range(repeat)]
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(samples)


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
    bare = time_ns("f()", _bare(SimpleNamespace()), repeat, target)
    out(f"bare call f(): {bare:.1f} ns (median of {repeat})")
    header = f"{'operation':<40}" + "".join(f"{n + ' ns':>12}" for n in twins)
    if len(twins) == 2:
        header += f"{'speedup':>10}"
    out(header)
    results: dict[str, Any] = {"bare_ns": bare, "cases": {}}
    for case in CASES:
        row = _measure(case, twins, repeat, target)
        results["cases"][case.name] = row
        line = f"{case.name:<40}" + "".join(f"{row[n]:>12.1f}" for n in twins)
        if len(twins) == 2:
            line += f"{row['python'] / row['cython']:>9.1f}x"
        out(line)
    out("")
    out(f"{'policy':<40}" + "".join(f"{n + ' ns':>12}" for n in twins)
        + f"{'over bare':>11}   target (compiled)")
    for case in POLICY_CASES:
        row = _measure(case, twins, repeat, target)
        results["cases"][case.name] = row
        best = row.get("cython", row["python"])
        base = bare
        if case.baseline is not None:
            base = time_ns(case.stmt, case.baseline(SimpleNamespace()), repeat, target) / case.batch
        line = f"{case.name:<40}" + "".join(f"{row[n]:>12.1f}" for n in twins)
        goal = f"<= {case.target:.0f} ns" + ("" if case.absolute else " over bare")
        out(line + f"{best - base:>+11.1f}   {goal}")
    for name, classes in twins.items():
        size = breaker_memory(classes)
        results[f"breaker_bytes_{name}"] = size
        out(f"memory per BreakerCore() (CountWindow(100)), {name}: {size:.0f} bytes (tracemalloc)")
    return results
