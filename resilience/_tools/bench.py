"""``python -m resilience bench``: the core and the policies, compiled vs pure, and their targets.

Every figure is a median over rounds, in nanoseconds per operation, taken
by the one timing loop (``timing``). Within a row, each round times the
compiled twin, the pure twin and the row's baseline (a bare call of
``f()``, or for an async row a bare ``await af()`` on the same event loop)
back to back; the speed-up and the cost over the baseline are medians of
per-round ratios and differences: on a noisy machine the absolute times
drift, but what is compared is measured side by side.

Policy rows carry the compiled twin's target (see docs/architecture.md):
a cost over the baseline, or a whole cost for ``absolute`` rows. The
``met`` column and the last lines say which targets the run met. The Redis
rows (``redisbench``) follow, against a redis-server started for the run,
then the ASGI rows (``asgibench``): the rate-limit middleware's cost against
a loopback request and against slowapi's, and the HTTP client rows
(``httpbench``): ``ResilientTransport``'s cost against a loopback request
and against httpx-retries'.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from .. import __version__
from .._core import IMPLEMENTATION
from ..bulkhead import Bulkhead
from ..errors import CircuitOpenError
from ..pipeline import Pipeline
from ..ratelimit import RateLimiter
from ..retry import Retry
from . import asgibench, httpbench, memory, redisbench, timing, workload
from .twins import load_twins, running_on

Setup = Callable[[SimpleNamespace], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    """One operation: ``setup(classes)`` builds the namespace ``stmt`` runs in.

    ``target`` is the compiled twin's budget in ns for policy rows: over the
    baseline, or in all when ``absolute``. An ``is_async`` statement awaits:
    it is timed in one coroutine against a bare await.
    """

    name: str
    stmt: str
    setup: Setup
    target: float = 0.0
    absolute: bool = False
    is_async: bool = False

    @property
    def goal(self) -> str:
        over = " over bare await" if self.is_async else " over bare"
        return f"<= {self.target:.0f} ns" + ("" if self.absolute else over)


def _decorated(make: Callable[[], Any], is_async: bool = False) -> Setup:
    """A setup: ``g`` is ``f`` (or ``af``) decorated by the policy ``make()`` on the twin."""

    def setup(classes: SimpleNamespace) -> dict[str, Any]:
        with running_on(classes):
            policy = make()
            return {"g": policy(timing.af if is_async else timing.f), "policy": policy}

    return setup


def _rejecting(is_async: bool) -> Setup:
    """A setup: ``g`` behind a breaker opened by real failures, ``E`` what it raises."""

    def setup(classes: SimpleNamespace) -> dict[str, Any]:
        with running_on(classes):
            return workload.opened(workload.breaker(), CircuitOpenError, is_async)

    return setup


def _breaker_instrumented(classes: SimpleNamespace) -> dict[str, Any]:
    """A breaker exported to Prometheus: registered, and scraped once before timing."""
    from prometheus_client import CollectorRegistry, generate_latest

    from ..metrics.prometheus import PrometheusCollector

    namespace = _decorated(workload.breaker)(classes)
    registry = CollectorRegistry()
    registry.register(PrometheusCollector([namespace["policy"]]))
    generate_latest(registry)
    return namespace


def _breaker_otel(classes: SimpleNamespace) -> dict[str, Any]:
    """A breaker instrumented for OpenTelemetry (an SDK provider), collected once before timing."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from ..metrics.otel import instrument

    namespace = _decorated(workload.breaker)(classes)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    instrument([namespace["policy"]], meter_provider=provider)
    reader.get_metrics_data()
    namespace["provider"] = provider  # kept, with its reader, for as long as the timing
    return namespace


def _bulkhead(classes: SimpleNamespace) -> dict[str, Any]:
    with running_on(classes):
        return {"b": Bulkhead(10)}


def _pipeline() -> Pipeline:
    return Pipeline(workload.breaker(), RateLimiter(workload.HUGE), Bulkhead(10), Retry())


def _forced_open(breaker: Any) -> dict[str, Any]:
    breaker.force_open()
    return {"b": breaker}


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

WITH = "with b:\n    pass"
ASYNC_WITH = "async with b:\n    pass"

POLICY_CASES = (
    Case("CircuitBreaker decorator, closed", workload.CALL, _decorated(workload.breaker), 60.0),
    *(
        # The same call with the breaker exported: the collector adds nothing per call.
        [Case("  the same, exported to Prometheus", workload.CALL, _breaker_instrumented, 60.0)]
        if importlib.util.find_spec("prometheus_client")
        else []
    ),
    *(
        # Instrumented: the callbacks read the breaker's counters only when collected.
        [Case("  the same, instrumented (OTel)", workload.CALL, _breaker_otel, 60.0)]
        # (find_spec of a submodule raises, rather than answer None, without its parent)
        if importlib.util.find_spec("opentelemetry")
        and importlib.util.find_spec("opentelemetry.sdk")
        else []
    ),
    Case(
        "CircuitBreaker async decorator, closed",
        workload.ACALL,
        _decorated(workload.breaker, is_async=True),
        150.0,
        is_async=True,
    ),
    Case(
        "CircuitBreaker rejection while open",
        workload.REJECT,
        _rejecting(is_async=False),
        350.0,
        absolute=True,
    ),
    Case(
        "CircuitBreaker async rejection while open",
        workload.AREJECT,
        _rejecting(is_async=True),
        500.0,
        absolute=True,
        is_async=True,
    ),
    Case(
        "RateLimiter decorator, allowed",
        workload.CALL,
        _decorated(lambda: RateLimiter(workload.HUGE)),  # never runs dry: every call is allowed
        80.0,
    ),
    Case(
        "RateLimiter async decorator, allowed",
        workload.ACALL,
        _decorated(lambda: RateLimiter(workload.HUGE), is_async=True),
        150.0,
        is_async=True,
    ),
    Case("Bulkhead sync with, free", WITH, _bulkhead, 120.0, absolute=True),
    # Entering and leaving beyond one bare await, the measure the peers comparison uses too.
    Case("Bulkhead async with, free", ASYNC_WITH, _bulkhead, 150.0, is_async=True),
    Case("Retry decorator, success first try", workload.CALL, _decorated(Retry), 120.0),
    Case(
        "Retry async decorator, success first try",
        workload.ACALL,
        _decorated(Retry, is_async=True),
        150.0,
        is_async=True,
    ),
    Case("Pipeline breaker+limiter+bulkhead+retry", workload.CALL, _decorated(_pipeline), 300.0),
)


def sample(
    case: Case, twins: dict[str, SimpleNamespace], repeat: int, target: float
) -> dict[str, list[float]]:
    """Per-round ns per operation of ``case`` on each twin, and of its baseline (``bare``)."""
    loops = {
        name: timing.loop(case.stmt, case.setup(classes), target, case.is_async)
        for name, classes in twins.items()
    }
    loops["bare"] = timing.bare(target, case.is_async)
    return timing.interleaved(loops, repeat)


def breaker_memory(classes: SimpleNamespace, count: int = 2000) -> float:
    """Bytes per ``BreakerCore()`` (count window of 100)."""
    return memory.bytes_per(classes.BreakerCore, count)


KEYED_MAX_KEYS = 10_000


def keyed_memory() -> tuple[float, int]:
    """A KeyedRateLimiter's bytes per kept key after 10 x ``max_keys`` distinct keys."""
    from ..ratelimit import KeyedRateLimiter

    return memory.keyed_bytes(
        lambda n: KeyedRateLimiter(100, max_keys=n), KEYED_MAX_KEYS, 10 * KEYED_MAX_KEYS
    )


NAME_WIDTH = 44


def run(
    repeat: int = 7, target: float = 0.1, out: Callable[[str], object] = print
) -> dict[str, Any]:
    """Print the table and return the figures (ns per operation)."""
    twins = load_twins(out)
    out(
        f"resilience {__version__} (live: {IMPLEMENTATION}) on"
        f" {timing.platform_line(timing.environment())}"
    )
    columns = f"{'bare ns':>9}" + "".join(f"{n + ' ns':>12}" for n in twins)
    out(f"{'operation':<{NAME_WIDTH}}{columns}" + (f"{'speedup':>10}" if len(twins) == 2 else ""))
    results: dict[str, Any] = {"cases": {}}
    for case in CASES:
        samples = sample(case, twins, repeat, target)
        row: dict[str, Any] = timing.medians(samples)
        results["cases"][case.name] = row
        line = _figures(case, row, twins)
        if len(twins) == 2:
            row["speedup"] = timing.ratio(samples["python"], samples["cython"])
            line += f"{row['speedup']:>9.1f}x"
        out(line)
    out("")
    out(f"{'policy':<{NAME_WIDTH}}{columns}{'over bare':>11}   {'target (compiled)':<28}met")
    for case in POLICY_CASES:
        samples = sample(case, twins, repeat, target)
        row = timing.medians(samples)
        best = "cython" if "cython" in samples else "python"
        row["over_bare"] = timing.difference(samples[best], samples["bare"])
        row["target"] = case.target
        met = _met(case, row) if "cython" in twins else None
        results["cases"][case.name] = {**row, "met": met}
        verdict = {True: "met", False: "MISSED", None: "n/a (no compiled twin)"}[met]
        out(_figures(case, row, twins) + f"{row['over_bare']:>+11.1f}   {case.goal:<28}{verdict}")
    for name, classes in twins.items():
        size = breaker_memory(classes)
        results[f"breaker_bytes_{name}"] = size
        out(f"memory per BreakerCore() (CountWindow(100)), {name}: {size:.0f} bytes (tracemalloc)")
    per_key, kept = keyed_memory()
    results["keyed_bytes_per_key"] = per_key
    out(
        f"memory of KeyedRateLimiter(max_keys={KEYED_MAX_KEYS}) after"
        f" {10 * KEYED_MAX_KEYS} distinct keys: {kept} kept, {per_key:.0f} bytes per key"
    )
    _summary(results["cases"], out)
    results["redis"] = redisbench.run(repeat=repeat, target=target, out=out)
    results["asgi"] = asgibench.run(repeat=repeat, target=target, out=out)
    results["http_clients"] = httpbench.run(repeat=repeat, target=target, out=out)
    return results


def _figures(case: Case, row: dict[str, float], twins: dict[str, SimpleNamespace]) -> str:
    return f"{case.name:<{NAME_WIDTH}}{row['bare']:>9.1f}" + "".join(
        f"{row[name]:>12.1f}" for name in twins
    )


def _met(case: Case, row: dict[str, float]) -> bool:
    """The compiled twin's cost, whole or over the baseline, within the target."""
    return (row["cython"] if case.absolute else row["over_bare"]) <= case.target


def _summary(rows: dict[str, dict[str, Any]], out: Callable[[str], object]) -> None:
    judged = [case for case in POLICY_CASES if rows[case.name]["met"] is not None]
    if not judged:
        out("targets: not judged (they are the compiled twin's, and it did not load)")
        return
    missed = [case for case in judged if not rows[case.name]["met"]]
    out(f"targets (compiled twin): {len(judged) - len(missed)} of {len(judged)} met")
    for case in missed:
        row = rows[case.name]
        cost = (
            f"{row['cython']:.1f} ns"
            if case.absolute
            else f"{row['over_bare']:+.1f} ns over bare{' await' if case.is_async else ''}"
        )
        out(f"  MISSED: {case.name.strip()}: {cost} (target {case.goal})")
