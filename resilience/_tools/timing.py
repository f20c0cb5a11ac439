"""The one timing loop: every figure of ``bench``, ``bench --peers`` and ``--scaling``.

An operation is a statement (``g()``, ``await g()``, ``async with b: pass``)
run ``BATCH`` times in a loop compiled into one function: a plain ``def``
for a sync statement, an ``async def`` driven by ``run_until_complete`` on
one event loop (``event_loop()``) for an async one, so the cost of entering
the loop is shared by the batch. The pytest-benchmark suite times the same
functions (``batch()``); the commands time them with ``loop()`` and
``interleaved()``.

Every figure is set against a bare call of ``f()`` (sync) or a bare
``await af()`` (async) in the same kind of loop. ``interleaved()`` times
every loop once per round, in turn (order reversed every other round), so
drift on a noisy machine hits all of them alike; figures are medians over
rounds, and differences and ratios are medians of per-round differences and
ratios: what is compared is measured side by side.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import gc
import os
import platform
import statistics
import sys
import timeit
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from textwrap import indent
from typing import Any

from .. import __version__
from .._core import IMPLEMENTATION

BATCH = 1000  # operations per call of a batch function


def f() -> int:
    """The bare call every sync figure is set against."""
    return 1


async def af() -> int:
    """The bare coroutine every async figure is set against."""
    return 1


BARE_CALL = "f()"
BARE_AWAIT = "await af()"


@functools.cache
def event_loop() -> asyncio.AbstractEventLoop:
    """The one loop every async figure runs on: a loop per batch would swamp the figures."""
    loop = asyncio.new_event_loop()
    atexit.register(loop.close)
    return loop


def run(awaitable: Any) -> Any:
    """Run ``awaitable`` to completion on ``event_loop()`` (setups and checks)."""
    return event_loop().run_until_complete(awaitable)


def batch(stmt: str, namespace: Mapping[str, Any], is_async: bool = False) -> Callable[[], Any]:
    """A function of no arguments that runs ``stmt`` BATCH times.

    ``stmt`` sees the names of ``namespace`` as globals, and ``f`` and ``af``.

    ``stmt`` contains ``await`` (or ``async with``) when ``is_async``: it then
    runs in one coroutine, driven to completion on ``event_loop()``.
    """
    source = (
        f"{'async ' if is_async else ''}def batch():\n"
        f"    for _ in range({BATCH}):\n" + indent(stmt, " " * 8) + "\n"
    )
    scope = {"f": f, "af": af, **namespace}
    exec(compile(source, f"<timed: {stmt!r}>", "exec"), scope)
    function: Callable[[], Any] = scope["batch"]
    if not is_async:
        return function
    complete = event_loop().run_until_complete
    return lambda: complete(function())


@dataclass(frozen=True)
class Loop:
    """``number`` calls of a batch function: one timing of one operation."""

    timer: timeit.Timer
    number: int

    def ns_per_operation(self) -> float:
        return self.timer.timeit(self.number) / self.number / BATCH * 1e9


def loop(
    stmt: str, namespace: Mapping[str, Any], target: float, is_async: bool = False
) -> Loop:
    """``stmt`` in a batch, with the number of batches that takes about ``target`` seconds."""
    timer = timeit.Timer(batch(stmt, namespace, is_async))
    number, elapsed = 1, timer.timeit(1)
    while elapsed < target / 10:  # calibrate: grow the loop to a tenth of the target
        number *= 10
        elapsed = timer.timeit(number)
    return Loop(timer, max(1, int(number * target / elapsed)))


def bare(target: float, is_async: bool = False) -> Loop:
    """The baseline: ``f()``, or ``await af()`` when ``is_async``."""
    return loop(BARE_AWAIT if is_async else BARE_CALL, {}, target, is_async)


def interleaved(
    loops: Mapping[str, Loop],
    repeat: int,
    progress: Callable[[str], object] | None = None,
) -> dict[str, list[float]]:
    """``repeat`` rounds, each timing every loop once, in turn: ns per operation.

    The order is reversed every other round; garbage is collected before each
    round (and timeit keeps the collector off while it times).
    """
    samples: dict[str, list[float]] = {name: [] for name in loops}
    order = list(loops.items())
    for i in range(repeat):
        if progress is not None:
            progress(f"round {i + 1}/{repeat}")
        gc.collect()
        for name, timed in order if i % 2 == 0 else order[::-1]:
            samples[name].append(timed.ns_per_operation())
    return samples


def medians(samples: Mapping[str, Sequence[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in samples.items()}


def difference(values: Sequence[float], baseline: Sequence[float]) -> float:
    """Median of the per-round differences: the cost over the baseline."""
    return statistics.median(v - b for v, b in zip(values, baseline, strict=True))


def ratio(values: Sequence[float], reference: Sequence[float]) -> float:
    """Median of the per-round ratios."""
    return statistics.median(v / r for v, r in zip(values, reference, strict=True))


def environment() -> dict[str, Any]:
    """Machine, interpreter, date and version a figure was measured on, for ``--json``."""
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


def platform_line(env: Mapping[str, Any]) -> str:
    """``CPython 3.11.7, Linux x86_64``."""
    machine = env["machine"]
    return f"{env['python']}, {machine['system']} {machine['machine']}"
