"""Fixtures of the pytest-benchmark suite (``python -m pytest benchmarks --benchmark-only``).

How a figure is taken, the same for sync and async rows: each benchmark
round runs one statement ``BATCH`` (1000) times in a loop compiled into one
function (an ``async def`` driven by ``loop.run_until_complete`` for async
rows; one event loop serves the whole session). pytest-benchmark times
rounds, so **a round's time in microseconds is the cost of one operation in
nanoseconds** (loop overhead included, as it is in the ``bare`` rows:
``f()`` and ``await af()`` in the same kind of loop, group ``baseline``).
Tables are in microseconds unless ``--benchmark-time-unit`` says otherwise.

Every benchmark that takes ``impl`` runs on both twins, ``[cython]`` and
``[python]``; the compiled one fails (it does not skip) when the extension
did not build. Policies built while ``policies`` is active run on that twin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from textwrap import indent
from types import SimpleNamespace
from typing import Any

import pytest

from resilience import _core
from resilience._core import load

BATCH = 1000
IMPLEMENTATIONS = ("cython", "python")


def pytest_configure(config: pytest.Config) -> None:
    # Rounds in microseconds read as nanoseconds per operation; an explicit
    # --benchmark-time-unit still wins.
    if getattr(config.option, "benchmark_time_unit", "absent") is None:
        config.option.benchmark_time_unit = "us"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "impl" in metafunc.fixturenames:
        metafunc.parametrize("impl", IMPLEMENTATIONS, indirect=True)


@pytest.fixture(scope="session")
def impl(request: pytest.FixtureRequest) -> SimpleNamespace:
    """The core classes of one twin."""
    try:
        return load(request.param)
    except ImportError as exc:
        pytest.fail(f"the compiled extension did not import: {exc}; build it (pip install -e .)")


@pytest.fixture
def policies(impl: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Policies constructed in the test run on the twin ``impl``."""
    monkeypatch.setattr(_core, "SELECTED", impl)
    return impl


@pytest.fixture(scope="session")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


def _compiled(stmt: str, namespace: dict[str, Any], is_async: bool) -> Callable[[], Any]:
    """A function running ``stmt`` BATCH times in a loop, over ``namespace``."""
    source = (
        f"{'async ' if is_async else ''}def batch():\n"
        f"    for _ in range({BATCH}):\n" + indent(stmt, " " * 8) + "\n"
    )
    scope = dict(namespace)
    exec(compile(source, f"<benchmark: {stmt!r}>", "exec"), scope)
    batch: Callable[[], Any] = scope["batch"]
    return batch


@pytest.fixture
def run_sync(benchmark: Any) -> Callable[..., None]:
    """``run_sync(stmt, **names)``: benchmark ``stmt`` (one round = BATCH runs of it)."""

    def run(stmt: str, **namespace: Any) -> None:
        batch = _compiled(stmt, namespace, is_async=False)
        benchmark.extra_info["operations_per_round"] = BATCH
        benchmark(batch)

    return run


@pytest.fixture
def run_async(benchmark: Any, loop: asyncio.AbstractEventLoop) -> Callable[..., None]:
    """``run_async(stmt, **names)``: ``stmt`` contains ``await``; one round = BATCH runs."""

    def run(stmt: str, **namespace: Any) -> None:
        batch = _compiled(stmt, namespace, is_async=True)
        benchmark.extra_info["operations_per_round"] = BATCH
        benchmark(lambda: loop.run_until_complete(batch()))

    return run


@pytest.fixture
def arun(loop: asyncio.AbstractEventLoop) -> Callable[[Any], Any]:
    """Run one awaitable on the session loop (for setups and checks)."""
    return loop.run_until_complete
