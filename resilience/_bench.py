"""``python -m resilience bench``: the core primitives and the policies, compiled vs pure.

Every figure is a median over rounds of timeit loops, in nanoseconds per
operation. Within a row, each round times the compiled twin, the pure twin
and the row's baseline (a bare call of ``def f(): return 1``, or a bare
await) back to back, and the speed-up and the cost over the baseline are
medians of per-round ratios and differences: on a noisy machine the
absolute times drift, but what is compared is measured side by side.
Policy rows also show DESIGN.md's target.
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
