"""The implementation fixture: every core test runs on both twins.

The compiled parameter fails (it does not skip) when the extension cannot be
imported, so a broken build cannot pass as a green run of the pure twin.
``--no-c-extensions`` drops it, for interpreters without a compiler.

Real Redis servers (``redis_server.py``): ``redis_server``, shared by the
session; ``redis_url``, its URL after FLUSHALL; ``fresh_redis_server``, a
test's own, to stop and start; ``redis_cluster``, three masters shared by the
session. A test that uses one is marked ``integration`` here, so
``-m "not integration"`` runs the suite without a Redis server.

Also here: the Hypothesis profiles (``ci`` when CI is set, ``dev``
otherwise, or ``HYPOTHESIS_PROFILE``), more examples for the differential
tests in CI, and the per-test timeout's plugin, required.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from http_apps import App, Dropper
from http_server import serve
from hypothesis import HealthCheck, settings
from redis_server import RedisCluster, RedisServer

from resilience import _core
from resilience._core import load

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
settings.load_profile(PROFILE)

# The differential tests (test_differential*.py) drive both twins with drawn
# scripts and compare them after every step; a disagreement hides in rare
# scripts, so CI draws more of them there than the profile draws elsewhere
# (600: about a minute more for the whole suite).
DIFFERENTIAL_EXAMPLES = {"ci": 600}

# Hypothesis shrinks a failing example for up to 300 s before it reports it;
# a Hypothesis test gets that much on top of the per-test timeout, so the
# timeout cannot end the run and lose the example.
SHRINKING_SECONDS = 300.0


MISSING_HINT = "build it (pip install -e .) or pass --no-c-extensions"


def pytest_configure(config: pytest.Config) -> None:
    # The per-test timeout ([tool.pytest.ini_options] timeout) is what makes a
    # hang fail; without the plugin that setting is silently ignored.
    if not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError(
            "the tests need pytest-timeout, so that a hang fails instead of stalling"
            " the run: pip install -e '.[test]'"
        )


# The fixtures that need a program from outside Python: the ones below start a
# real redis-server; ``tls_url`` (test_http_httpx.py) makes its certificate
# with the openssl command.
EXTERNAL_FIXTURES = frozenset(
    {"redis_server", "redis_url", "fresh_redis_server", "redis_cluster", "tls_url"}
)


# First, before pytest's own hook deselects by `-m`, which must see the marks.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The integration mark, and time and examples for the Hypothesis tests.

    A test that uses a fixture needing an outside program (a Redis server,
    openssl), directly or through another fixture, is marked
    ``integration``. Each Hypothesis test gets SHRINKING_SECONDS more than
    the per-test timeout (unless it has its own timeout mark).
    Under a profile in DIFFERENTIAL_EXAMPLES, the differential tests that
    draw the profile's own count draw that many instead (one that chose its
    count keeps it).
    """
    shrinking_timeout = float(config.getini("timeout")) + SHRINKING_SECONDS
    examples = DIFFERENTIAL_EXAMPLES.get(PROFILE)
    profile_count = settings.get_profile(PROFILE).max_examples
    for item in items:
        if EXTERNAL_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        test = getattr(item, "obj", None)
        if not getattr(test, "is_hypothesis_test", False):  # set by @given
            continue
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(shrinking_timeout))
        if examples is None or not item.path.name.startswith("test_differential"):
            continue
        # Hypothesis reads a test's settings from this attribute on each run;
        # settings() derives new ones that keep everything else the test set.
        chosen = test._hypothesis_internal_use_settings
        if chosen.max_examples == profile_count:
            test._hypothesis_internal_use_settings = settings(chosen, max_examples=examples)


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


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server shared by the whole session (``redis_url`` gives it empty).

    A test must not stop it: ``fresh_redis_server`` is the one to stop.
    """
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared server's URL, every key deleted first: tests do not see each other's keys."""
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
def fresh_redis_server() -> Iterator[RedisServer]:
    """A running redis-server of the test's own, to stop and start; stopped after the test."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """Three masters shared by the session, started when a test first asks (about 2 s)."""
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    """Threads switch every 10 us, so they interleave inside short methods and
    races get a chance to show."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


# -- the HTTP client tests' servers (test_http_httpx.py, test_http_requests.py) -----------


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, App]]:
    """A counting ``App`` served by uvicorn for the module: its URL and the app."""
    app = App()
    with serve(app) as url:
        yield url, app


@pytest.fixture
def url(server: tuple[str, App]) -> str:
    """The server's base URL (tests count their requests under paths of their own)."""
    return server[0]


@pytest.fixture
def app(server: tuple[str, App]) -> App:
    """The served app, which counts what it saw."""
    return server[1]


@pytest.fixture
def dropper() -> Iterator[Dropper]:
    """A raw server that drops the first connection without an answer."""
    dropping = Dropper(drops=1)
    yield dropping
    dropping.close()
