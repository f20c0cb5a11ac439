"""State changes are logged once each on the ``resilience`` logger, with their fields
in ``extra`` under ``resilience_`` names; nothing is logged per call.

A WARNING for a change for the worse (a breaker refusing, a check going
DEGRADED or DOWN, a higher degradation level, an exhausted error budget), an
INFO for any other change. Records are read from this test's thread only: a
thread left by another test (a health checker, a timeout's worker) may log
meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    DegradationManager,
    ErrorBudget,
    HealthCheck,
    HealthStatus,
)
from resilience.testing import FakeClock

INFO, WARNING = logging.INFO, logging.WARNING


@pytest.fixture(autouse=True)
def twin(policy_impl: Any, caplog: pytest.LogCaptureFixture) -> Any:
    """Every test runs on both twins, capturing the library's INFO records and up."""
    caplog.set_level(logging.INFO, logger="resilience")
    return policy_impl


class Boom(Exception):
    pass


def changes(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    """The state-change records of ``event`` logged from this test's thread."""
    here = threading.get_ident()
    return [
        r
        for r in caplog.records
        if r.name == "resilience"
        and r.thread == here
        and getattr(r, "resilience_event", None) == event
    ]


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """What the record carries beyond a plain LogRecord's attributes."""
    plain = logging.LogRecord("x", INFO, __file__, 1, "msg", None, None).__dict__
    return {k: v for k, v in record.__dict__.items() if k not in plain and k != "message"}


def summary(records: list[logging.LogRecord]) -> list[tuple[int, Any, Any]]:
    return [(r.levelno, r.resilience_from_state, r.resilience_to_state) for r in records]


# -- circuit breaker --------------------------------------------------------------


def fail() -> None:
    raise Boom


def test_a_breakers_transitions_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("db", failure_threshold=2, reset_timeout=5.0, clock=clock)
    heard: list[tuple[CircuitState, CircuitState]] = []
    breaker.on_state_change(lambda b, old, new: heard.append((old, new)))

    @breaker
    def ok() -> str:
        return "ok"

    for _ in range(50):  # calls that change nothing log nothing, on every form
        assert ok() == "ok"
        assert breaker.call(ok) == "ok"
    with pytest.raises(Boom):
        breaker.call(fail)
    assert changes(caplog, "circuit_breaker.state") == []

    with pytest.raises(Boom):
        breaker.call(fail)  # CLOSED -> OPEN
    for _ in range(10):
        with pytest.raises(CircuitOpenError):
            ok()  # refusals are no changes
    clock.advance(5.0)
    assert ok() == "ok"  # OPEN -> HALF_OPEN -> CLOSED
    breaker.force_open()
    breaker.disable()
    breaker.reset()

    records = changes(caplog, "circuit_breaker.state")
    assert summary(records) == [
        (WARNING, "CLOSED", "OPEN"),
        (INFO, "OPEN", "HALF_OPEN"),
        (INFO, "HALF_OPEN", "CLOSED"),
        (WARNING, "CLOSED", "FORCED_OPEN"),
        (INFO, "FORCED_OPEN", "DISABLED"),
        (INFO, "DISABLED", "CLOSED"),
    ]
    assert [(r.resilience_from_state, r.resilience_to_state) for r in records] == [
        (old.value, new.value) for old, new in heard
    ]
    first = records[0]
    assert fields(first) == {
        "resilience_event": "circuit_breaker.state",
        "resilience_name": "db",
        "resilience_from_state": "CLOSED",
        "resilience_to_state": "OPEN",
    }
    assert first.getMessage() == "circuit breaker 'db': CLOSED -> OPEN"


def test_a_failed_probe_reopening_the_breaker_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    with pytest.raises(Boom):
        breaker.call(fail)
    clock.advance(5.0)
    with pytest.raises(Boom):
        breaker.call(fail)  # the probe fails: back to OPEN
    records = changes(caplog, "circuit_breaker.state")
    assert summary(records) == [
        (WARNING, "CLOSED", "OPEN"),
        (INFO, "OPEN", "HALF_OPEN"),
        (WARNING, "HALF_OPEN", "OPEN"),
    ]
    assert all(r.resilience_name is None for r in records)


def test_async_calls_log_the_transitions_they_cause(caplog: pytest.LogCaptureFixture) -> None:
    breaker = CircuitBreaker(failure_threshold=1, clock=FakeClock())

    @breaker
    async def afail() -> None:
        raise Boom

    @breaker
    async def aok() -> str:
        return "ok"

    async def main() -> None:
        for _ in range(20):
            assert await aok() == "ok"
        with pytest.raises(Boom):
            await afail()
        with pytest.raises(CircuitOpenError):
            await aok()

    asyncio.run(main())
    assert summary(changes(caplog, "circuit_breaker.state")) == [(WARNING, "CLOSED", "OPEN")]


# -- health checks ----------------------------------------------------------------


class Script:
    """A probe returning its results in turn."""

    def __init__(self, *results: bool | HealthStatus) -> None:
        self.results = list(results)

    def __call__(self) -> bool | HealthStatus:
        return self.results.pop(0)


def test_a_checks_status_changes_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    U, D, G = True, False, HealthStatus.DEGRADED
    probe = Script(U, U, D, D, D, U, U, G, G, D, D, G, U, U)
    check = HealthCheck(
        "db", probe, failure_threshold=2, success_threshold=2, clock=FakeClock(), timeout=60.0
    )
    heard: list[tuple[HealthStatus, HealthStatus]] = []
    check.on_change(lambda name, old, new: heard.append((old, new)))
    while probe.results:
        check.run()

    records = changes(caplog, "health_check.status")
    assert summary(records) == [
        (INFO, "UNKNOWN", "UP"),
        (WARNING, "UP", "DOWN"),
        (INFO, "DOWN", "UP"),
        (WARNING, "UP", "DEGRADED"),
        (WARNING, "DEGRADED", "DOWN"),
        (INFO, "DOWN", "DEGRADED"),
        (INFO, "DEGRADED", "UP"),
    ]
    assert [(r.resilience_from_state, r.resilience_to_state) for r in records] == [
        (old.value, new.value) for old, new in heard
    ]
    assert fields(records[1]) == {
        "resilience_event": "health_check.status",
        "resilience_name": "db",
        "resilience_from_state": "UP",
        "resilience_to_state": "DOWN",
    }
    assert records[1].getMessage() == "health check 'db': UP -> DOWN"


def test_a_check_first_found_down_or_degraded_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = HealthCheck("a", lambda: False, failure_threshold=1, clock=FakeClock(), timeout=60.0)
    degraded = HealthCheck("b", lambda: HealthStatus.DEGRADED, clock=FakeClock(), timeout=60.0)
    down.run()
    degraded.run()
    assert summary(changes(caplog, "health_check.status")) == [
        (WARNING, "UNKNOWN", "DOWN"),
        (WARNING, "UNKNOWN", "DEGRADED"),
    ]


# -- degradation ------------------------------------------------------------------


def test_level_changes_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    mgr = DegradationManager(clock=clock, recovery=10.0, check_interval=0, name="api")
    heard: list[tuple[str, str]] = []
    mgr.on_change(lambda old, new: heard.append((old, new)))
    state = {"on": False}
    mgr.trigger_when(lambda: state["on"], "critical")

    for _ in range(5):
        assert mgr.level == "normal"  # readings that change nothing log nothing
    state["on"] = True
    assert mgr.level == "critical"
    assert mgr.level == "critical"
    state["on"] = False
    clock.advance(10.0)
    assert mgr.level == "degraded"  # down one step
    clock.advance(10.0)
    assert mgr.level == "normal"
    mgr.set_level("degraded")
    mgr.set_level("degraded")  # no change

    records = changes(caplog, "degradation.level")
    assert summary(records) == [
        (WARNING, "normal", "critical"),
        (INFO, "critical", "degraded"),
        (INFO, "degraded", "normal"),
        (WARNING, "normal", "degraded"),
    ]
    assert [(r.resilience_from_state, r.resilience_to_state) for r in records] == heard
    assert fields(records[0]) == {
        "resilience_event": "degradation.level",
        "resilience_name": "api",
        "resilience_from_state": "normal",
        "resilience_to_state": "critical",
    }
    assert records[0].getMessage() == "degradation 'api': normal -> critical"


# -- error budget -----------------------------------------------------------------


def test_exhaustion_is_logged_once_each_time(caplog: pytest.LogCaptureFixture) -> None:
    budget = ErrorBudget(0.9, window=3600.0, clock=FakeClock(), name="checkout")
    for _ in range(9):
        budget.record(True)
    assert changes(caplog, "error_budget.exhausted") == []
    budget.record(False)  # 1 bad in 10 at a 10 % allowance: exhausted
    budget.record(False)
    budget.record(True)  # good events exhaust nothing
    budget.record(False)  # still exhausted: no new record
    records = changes(caplog, "error_budget.exhausted")
    assert [r.levelno for r in records] == [WARNING]
    assert fields(records[0]) == {
        "resilience_event": "error_budget.exhausted",
        "resilience_name": "checkout",
        "resilience_remaining": pytest.approx(0.0, abs=1e-9),
        "resilience_slo": 0.9,
    }
    assert "error budget 'checkout' exhausted" in records[0].getMessage()

    budget.reset()
    for _ in range(9):
        budget.record(True)
    budget.record(False, n=2)  # exhausted again, past zero
    records = changes(caplog, "error_budget.exhausted")
    assert len(records) == 2
    assert records[1].resilience_remaining == budget.remaining < 0.0
