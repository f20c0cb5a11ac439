"""The implementation fixture: every core test runs on both twins.

The compiled parameter fails (it does not skip) when the extension cannot be
imported, so a broken build cannot pass as a green run of the pure twin.
``--no-c-extensions`` drops it, for interpreters without a compiler.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, settings

from resilience import _core
from resilience._core import load

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


MISSING_HINT = "build it (pip install -e .) or pass --no-c-extensions"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-c-extensions",
        action="store_true",
        default=False,
        help="test only the pure-Python twins (for interpreters without the compiled core)",
    )


def implementations(config: pytest.Config) -> list[str]:
    if config.getoption("--no-c-extensions"):
        return ["python"]
    return ["cython", "python"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "impl" in metafunc.fixturenames:
        metafunc.parametrize("impl", implementations(metafunc.config), indirect=True)


@pytest.fixture(scope="session")
def impl(request: pytest.FixtureRequest) -> SimpleNamespace:
    """The classes of one twin: ``impl.TokenBucket``, ``impl.BreakerCore`` ..."""
    try:
        return load(request.param)
    except ImportError as exc:  # only the compiled twin can be missing
        pytest.fail(f"the compiled extension did not import: {exc}; {MISSING_HINT}")


@pytest.fixture(scope="session")
def twins(request: pytest.FixtureRequest) -> tuple[SimpleNamespace, SimpleNamespace]:
    """(compiled, pure), for tests that drive both side by side."""
    if request.config.getoption("--no-c-extensions"):
        pytest.skip("differential tests need the compiled twin (--no-c-extensions given)")
    try:
        return load("cython"), load("python")
    except ImportError as exc:
        pytest.fail(f"the compiled extension did not import: {exc}; {MISSING_HINT}")


@pytest.fixture
def policy_impl(impl: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Policies built in this test run on the twin ``impl``.

    They take their core classes from ``resilience._core.SELECTED`` when
    constructed, so replacing it for the test is enough.
    """
    monkeypatch.setattr(_core, "SELECTED", impl)
    return impl
