"""Fixtures of the pytest-benchmark suite (``python -m pytest benchmarks --benchmark-only``).

How a figure is taken, the same for sync and async rows and the same as in
``python -m resilience bench``: each benchmark round is one call of a batch
function from ``resilience._tools.timing``, which runs one statement
``BATCH`` (1000) times in a loop compiled into one function (an ``async
def`` driven by ``run_until_complete`` on the one event loop for async
rows). pytest-benchmark times rounds, so **a round's time in microseconds is
the cost of one operation in nanoseconds** (loop overhead included, as it is
in the ``bare`` rows: ``f()`` and ``await af()`` in the same kind of loop,
group ``baseline``). Tables are in microseconds unless
``--benchmark-time-unit`` says otherwise.

Every benchmark that takes ``impl`` runs on both twins, ``[cython]`` and
``[python]``; the compiled one fails (it does not skip) when the extension
did not build. Policies built while ``policies`` is active run on that twin.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from resilience import _core
from resilience._core import load
from resilience._tools import timing

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


def _benchmark_batch(benchmark: Any, stmt: str, namespace: dict[str, Any], is_async: bool) -> None:
    benchmark.extra_info["operations_per_round"] = timing.BATCH
    benchmark(timing.batch(stmt, namespace, is_async))


@pytest.fixture
def run_sync(benchmark: Any) -> Callable[..., None]:
    """``run_sync(stmt, **names)``: benchmark ``stmt`` (one round = BATCH runs of it)."""

    def run(stmt: str, **namespace: Any) -> None:
        _benchmark_batch(benchmark, stmt, namespace, is_async=False)

    return run


@pytest.fixture
def run_async(benchmark: Any) -> Callable[..., None]:
    """``run_async(stmt, **names)``: ``stmt`` contains ``await``; one round = BATCH runs."""

    def run(stmt: str, **namespace: Any) -> None:
        _benchmark_batch(benchmark, stmt, namespace, is_async=True)

    return run
