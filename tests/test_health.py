"""Health: statuses, thresholds, timeouts and non-overlap, probes, the checker, reports.

Every expectation comes from the docstrings of ``resilience.health`` and the
design in docs/architecture.md. Threshold tests script the probe's results
and run on a ``FakeClock``. Probes talk to real sockets on 127.0.0.1 started
here: a TCP listener, an HTTP server answering 200 and 503, and a closed
port.

Timeouts are real time, so the real waits here are short (``TINY``). Hanging
probes block on a ``threading.Event`` that each test sets before it ends.
``GUARD`` bounds joins and polls so that a hang fails the test instead of
stalling it; it is never an assertion on speed.

Every test runs twice, on the compiled core and on the pure one
(``policy_impl``): the breakers that checks isolate are built on that twin.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import math
import socket
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import resilience
from resilience import (
    CircuitBreaker,
    CircuitState,
    HealthCheck,
    HealthChecker,
    HealthStatus,
    http_probe,
    tcp_probe,
    threshold_probe,
)
from resilience.errors import CircuitOpenError, TimeoutExceeded
from resilience.testing import FakeClock

UP, DEGRADED, DOWN, UNKNOWN = (
    HealthStatus.UP,
    HealthStatus.DEGRADED,
    HealthStatus.DOWN,
    HealthStatus.UNKNOWN,
)
GUARD = 5.0  # seconds: deadlock guard for joins, polls and waits
TINY = 0.05  # seconds: the timeouts and intervals the real-time tests use
CHECKER_THREAD = "resilience-health-checker"

pytestmark = pytest.mark.usefixtures("policy_impl")


class Boom(Exception):
    """What failing probes and listeners raise."""


# -- helpers ---------------------------------------------------------------------


def wait_until(predicate: Callable[[], object], guard: float = GUARD) -> None:
    """Poll ``predicate`` until it is true; fail after ``guard`` seconds."""
    limit = time.monotonic() + guard
    while not predicate():
        if time.monotonic() > limit:
            pytest.fail(f"condition not reached within {guard}s")
        time.sleep(0.002)


class Script:
    """A sync probe returning (or raising) the given results in order, then the last one."""

    def __init__(self, *results: object, clock: FakeClock | None = None, step: float = 0.0):
        self.results = list(results)
        self.calls = 0
        self.clock = clock
        self.step = step

    def __call__(self) -> Any:
        result = self.results[min(self.calls, len(self.results) - 1)]
        self.calls += 1
        if self.clock is not None:
            self.clock.advance(self.step)
        if isinstance(result, BaseException):
            raise result
        return result


def scripted(
    *results: object, clock: FakeClock | None = None, **kwargs: Any
) -> tuple[HealthCheck, Script]:
    probe = Script(*results)
    check = HealthCheck("svc", probe, clock=clock or FakeClock(), **kwargs)
    return check, probe


def statuses(check: HealthCheck, runs: int) -> list[HealthStatus]:
    return [check.run() for _ in range(runs)]


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event hanging probes wait on; set at the end so no probe thread outlives the test."""
    event = threading.Event()
    yield event
    event.set()


class Hanging:
    """A sync probe whose first call blocks until ``gate`` is set; later calls return at once."""

    def __init__(self, gate: threading.Event, result: object = True) -> None:
        self.gate = gate
        self.result = result
        self.calls = 0
        self.entered = threading.Event()
        self.ended = threading.Event()

    def __call__(self) -> object:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            self.gate.wait(GUARD * 4)
            self.ended.set()
        return self.result


# -- servers -----------------------------------------------------------------------


@pytest.fixture
def tcp_port() -> Iterator[int]:
    """A port with a real listener on 127.0.0.1."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound once to get a free number, then closed)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


class Handler(http.server.BaseHTTPRequestHandler):
    """``/ok`` answers 200, ``/unavailable`` 503, anything else 404."""

    def do_GET(self) -> None:
        code = {"/ok": 200, "/unavailable": 503}.get(self.path, 404)
        body = b"fine" if code == 200 else b"nope"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_base() -> Iterator[str]:
    """The base URL of a real HTTP server on 127.0.0.1, serving on a thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(GUARD)


# -- HealthStatus --------------------------------------------------------------------


def test_status_is_a_str_enum_whose_values_are_its_names():
    assert [s.value for s in HealthStatus] == ["UP", "DEGRADED", "DOWN", "UNKNOWN"]
    for status in HealthStatus:
        assert isinstance(status, str)
        assert status == status.name
        assert str(status) == status.name
        assert HealthStatus(status.name) is status
    assert json.dumps({"s": DOWN}) == '{"s": "DOWN"}'


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ((), UNKNOWN),
        ((UNKNOWN,), UNKNOWN),
        ((UNKNOWN, UNKNOWN), UNKNOWN),
        ((UP,), UP),
        ((UP, UNKNOWN), UP),
        ((UNKNOWN, UP, UP), UP),
        ((UP, DEGRADED), DEGRADED),
        ((DEGRADED, UNKNOWN, UP), DEGRADED),
        ((UP, DOWN, DEGRADED), DOWN),
        ((DOWN, UNKNOWN), DOWN),
        (("UP", "DEGRADED"), DEGRADED),
    ],
)
def test_worst(given, expected):
    assert HealthStatus.worst(*given) is expected


def test_worst_rejects_what_is_not_a_status():
    with pytest.raises(ValueError, match="SICK"):
        HealthStatus.worst(UP, "SICK")


# -- thresholds ----------------------------------------------------------------------


def test_a_check_starts_unknown_with_nothing_measured():
    clock = FakeClock(7.0)
    check = HealthCheck("db", lambda: True, clock=clock)
    assert check.status is UNKNOWN
    assert check.last_error is None
    assert check.last_duration is None
    assert check.since == 7.0
    assert check.runs == 0
    assert not check.running


def test_failure_threshold_failures_in_a_row_make_it_down_from_unknown():
    check, probe = scripted(False, failure_threshold=3)
    assert statuses(check, 3) == [UNKNOWN, UNKNOWN, DOWN]
    assert probe.calls == 3
    assert check.consecutive_failures == 3


def test_the_first_success_from_unknown_is_enough_whatever_success_threshold():
    check, _ = scripted(True, success_threshold=3)
    assert check.run() is UP


def test_success_threshold_successes_in_a_row_bring_it_back_up():
    check, _ = scripted(False, True, True, True, failure_threshold=1, success_threshold=3)
    assert statuses(check, 4) == [DOWN, DOWN, DOWN, UP]


def test_a_failure_restarts_the_success_streak_and_a_success_the_failure_streak():
    check, _ = scripted(
        False,
        True,
        False,
        True,
        True,  # down, then S F S S: up only after 2 in a row
        failure_threshold=1,
        success_threshold=2,
    )
    assert statuses(check, 5) == [DOWN, DOWN, DOWN, DOWN, UP]
    check, _ = scripted(True, False, False, True, False, False, False, failure_threshold=3)
    assert statuses(check, 7) == [UP, UP, UP, UP, UP, UP, DOWN]


def test_status_results_count_like_bools():
    check, _ = scripted(UP, DOWN, DOWN, failure_threshold=2)
    assert statuses(check, 3) == [UP, UP, DOWN]
    assert check.last_error is None  # the probe returned: no error
    check, _ = scripted("UP", "DOWN", failure_threshold=1)  # their plain str values too
    assert statuses(check, 2) == [UP, DOWN]


def test_degraded_is_set_at_once_and_ends_both_streaks():
    check, _ = scripted(
        True,
        DEGRADED,
        True,
        True,
        False,
        False,
        DEGRADED,
        False,
        False,
        False,
        failure_threshold=3,
        success_threshold=2,
    )
    assert statuses(check, 10) == [
        UP,  # first success
        DEGRADED,  # at once
        DEGRADED,  # one success of two
        UP,
        UP,  # failures under the threshold: unchanged
        UP,
        DEGRADED,  # at once, and the failure streak is gone
        DEGRADED,
        DEGRADED,
        DOWN,  # three failures counted from the DEGRADED result
    ]


def test_degraded_from_unknown_and_from_down():
    check, _ = scripted(DEGRADED, False, DEGRADED, failure_threshold=1)
    assert statuses(check, 3) == [DEGRADED, DOWN, DEGRADED]


def test_a_raising_probe_fails_and_keeps_its_error():
    check, _ = scripted(Boom("db gone"), True, failure_threshold=1)
    assert check.run() is DOWN
    assert isinstance(check.last_error, Boom)
    assert str(check.last_error) == "db gone"
    assert check.run() is UP
    assert check.last_error is None


@pytest.mark.parametrize("value", [None, 1, 0, "up", "SICK", object()])
def test_a_probe_returning_neither_a_bool_nor_a_status_fails(value):
    check, _ = scripted(value, failure_threshold=1)
    assert check.run() is DOWN
    assert isinstance(check.last_error, TypeError)
    assert "bool or a HealthStatus" in str(check.last_error)


def test_an_unknown_result_changes_neither_the_status_nor_the_streaks():
    check, _ = scripted(True, False, UNKNOWN, False, failure_threshold=2)
    assert statuses(check, 2) == [UP, UP]
    assert check.consecutive_failures == 1
    assert check.run() is UP  # UNKNOWN: "cannot tell"
    assert check.consecutive_failures == 1
    assert check.run() is DOWN  # the second failure in a row


def test_never_failures_raised_by_a_probe_count_nothing():
    check, _ = scripted(KeyboardInterrupt(), asyncio.CancelledError(), failure_threshold=1)
    assert statuses(check, 2) == [UNKNOWN, UNKNOWN]
    assert check.runs == 0
    assert check.consecutive_failures == 0


def test_duration_and_since_are_read_on_the_checks_clock():
    clock = FakeClock(100.0)
    probe = Script(True, True, False, clock=clock, step=0.25)
    check = HealthCheck("db", probe, failure_threshold=1, clock=clock)
    assert check.since == 100.0
    assert check.run() is UP
    assert check.last_duration == pytest.approx(0.25)
    assert check.since == pytest.approx(100.25)  # changed when the result was counted
    clock.advance(10.0)
    assert check.run() is UP
    assert check.since == pytest.approx(100.25)  # no change, no new date
    assert check.run() is DOWN
    assert check.since == pytest.approx(110.75)


def test_isolate_holds_the_breaker_while_down_and_lifts_the_hold_after():
    breaker = CircuitBreaker("db")
    check, _ = scripted(
        True, False, False, True, False, DEGRADED, True, failure_threshold=2, isolate=breaker
    )
    assert check.isolate is breaker
    assert check.run() is UP
    assert breaker.state is CircuitState.CLOSED
    assert check.run() is UP
    assert breaker.state is CircuitState.CLOSED  # one failure: not down yet
    assert check.run() is DOWN
    assert breaker.state is CircuitState.FORCED_OPEN
    assert breaker.holds == {"svc"}  # held by the check, by its name
    assert not breaker.allow()
    assert check.run() is UP
    assert breaker.state is CircuitState.CLOSED
    assert breaker.holds == frozenset()
    assert breaker.allow()
    breaker.release()
    check.run()
    assert check.run() is DEGRADED
    assert breaker.state is CircuitState.CLOSED  # never DOWN: untouched
    check2, _ = scripted(False, DEGRADED, failure_threshold=1, isolate=breaker)
    assert check2.run() is DOWN
    assert breaker.state is CircuitState.FORCED_OPEN
    assert check2.run() is DEGRADED  # leaving DOWN for DEGRADED lifts the hold too
    assert breaker.state is CircuitState.CLOSED


def test_a_breaker_isolated_by_two_checks_stays_held_until_both_leave_down():
    breaker = CircuitBreaker("db")
    primary = HealthCheck("primary", Script(False, True), failure_threshold=1, isolate=breaker)
    replica = HealthCheck("replica", Script(False, True), failure_threshold=1, isolate=breaker)
    assert primary.run() is DOWN
    assert replica.run() is DOWN
    assert breaker.holds == {"primary", "replica"}
    assert primary.run() is UP
    assert breaker.holds == {"replica"}
    assert breaker.state is CircuitState.FORCED_OPEN  # the replica is still DOWN
    assert not breaker.allow()
    assert replica.run() is UP
    assert breaker.holds == frozenset()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allow()
    breaker.release()


def test_a_recovering_check_leaves_an_operators_force_open_alone():
    breaker = CircuitBreaker("db")
    check, _ = scripted(False, True, failure_threshold=1, isolate=breaker)
    breaker.force_open()
    assert check.run() is DOWN
    assert check.run() is UP
    assert breaker.holds == frozenset()
    assert breaker.state is CircuitState.FORCED_OPEN  # the operator's, not the check's
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED


def test_a_recovering_check_leaves_a_breaker_opened_by_traffic_open_with_its_timer():
    clock = FakeClock()
    breaker = CircuitBreaker("db", failure_threshold=1, reset_timeout=10.0, clock=clock)
    check, _ = scripted(False, True, failure_threshold=1, isolate=breaker)

    def fail() -> None:
        raise Boom("down")

    with pytest.raises(Boom):
        breaker.call(fail)  # traffic opens it
    assert check.run() is DOWN
    clock.advance(4.0)
    assert check.run() is UP
    assert breaker.state is CircuitState.OPEN  # not CLOSED: half-open is not skipped
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: None)
    assert info.value.retry_after == pytest.approx(6.0)  # its timer ran on beneath the hold
    clock.advance(6.0)
    assert breaker.state is CircuitState.HALF_OPEN


def test_check_listeners_hear_every_change_and_a_raising_one_is_logged(caplog):
    caplog.set_level(logging.DEBUG, logger="resilience")
    check, _ = scripted(True, True, False, DEGRADED, True, failure_threshold=1)
    heard: list[tuple[str, HealthStatus, HealthStatus]] = []

    @check.on_change
    def broken(name: str, old: HealthStatus, new: HealthStatus) -> None:
        raise Boom("listener")

    check.on_change(lambda *change: heard.append(change))
    statuses(check, 5)
    assert heard == [
        ("svc", UNKNOWN, UP),
        ("svc", UP, DOWN),
        ("svc", DOWN, DEGRADED),
        ("svc", DEGRADED, UP),
    ]
    failures = [r for r in caplog.records if r.name == "resilience" and r.exc_info]
    assert len(failures) == 4
    assert all(r.exc_info[0] is Boom for r in failures)


# -- sync and async probes, run and arun ------------------------------------------------


async def async_true() -> bool:
    await asyncio.sleep(0)
    return True


async def async_degraded() -> HealthStatus:
    await asyncio.sleep(0)
    return DEGRADED


async def async_boom() -> bool:
    await asyncio.sleep(0)
    raise Boom("async")


class AsyncCallable:
    async def __call__(self) -> HealthStatus:
        await asyncio.sleep(0)
        return HealthStatus.UP


PROBES: list[tuple[str, Callable[[], Any], HealthStatus, type[BaseException] | None]] = [
    ("sync true", lambda: True, UP, None),
    ("sync degraded", lambda: DEGRADED, DEGRADED, None),
    ("sync raises", Script(Boom("sync")), DOWN, Boom),
    ("async true", async_true, UP, None),
    ("async degraded", async_degraded, DEGRADED, None),
    ("async raises", async_boom, DOWN, Boom),
    ("async __call__", AsyncCallable(), UP, None),
    ("sync returning a coroutine", lambda: async_true(), UP, None),
]


@pytest.mark.parametrize(
    ("probe", "expected", "error"), [p[1:] for p in PROBES], ids=[p[0] for p in PROBES]
)
def test_run_takes_sync_and_async_probes(probe, expected, error):
    check = HealthCheck("p", probe, failure_threshold=1, timeout=GUARD)
    assert check.run() is expected
    assert check.status is expected
    assert type(check.last_error) is (error or type(None))
    assert check.last_duration is not None and check.last_duration >= 0.0


@pytest.mark.parametrize(
    ("probe", "expected", "error"), [p[1:] for p in PROBES], ids=[p[0] for p in PROBES]
)
def test_arun_takes_sync_and_async_probes(probe, expected, error):
    check = HealthCheck("p", probe, failure_threshold=1, timeout=GUARD)
    assert asyncio.run(check.arun()) is expected
    assert type(check.last_error) is (error or type(None))


def test_run_calls_a_sync_probe_on_a_worker_thread_and_arun_an_async_one_on_the_loop():
    seen: dict[str, Any] = {}

    def sync_probe() -> bool:
        seen["sync"] = threading.current_thread()
        return True

    async def async_probe() -> bool:
        seen["loop"] = asyncio.get_running_loop()
        return True

    HealthCheck("s", sync_probe).run()
    assert seen["sync"] is not threading.current_thread()
    assert seen["sync"].daemon

    async def main() -> None:
        await HealthCheck("a", async_probe).arun()
        assert seen["loop"] is asyncio.get_running_loop()

    asyncio.run(main())


def test_arun_does_not_block_the_loop_on_a_sync_probe(gate):
    probe = Hanging(gate)
    check = HealthCheck("slow", probe, timeout=GUARD)

    async def main() -> HealthStatus:
        run = asyncio.ensure_future(check.arun())
        # The loop keeps turning while the probe blocks on its thread.
        while not probe.entered.is_set():
            await asyncio.sleep(0.001)
        assert not run.done()
        gate.set()
        return await asyncio.wait_for(run, GUARD)

    assert asyncio.run(main()) is UP


# -- timeouts and non-overlap -------------------------------------------------------------


def test_a_hanging_sync_probe_times_out_and_its_next_runs_are_skipped_as_failures(gate):
    probe = Hanging(gate)
    check = HealthCheck("hang", probe, timeout=TINY, failure_threshold=2)
    assert check.run() is UNKNOWN  # one failure of two
    assert isinstance(check.last_error, TimeoutExceeded)
    assert check.running
    assert check.run() is DOWN  # skipped, counted as a failure: a hung dependency goes down
    assert isinstance(check.last_error, TimeoutExceeded)
    assert check.run() is DOWN
    assert probe.calls == 1  # never called again while it hangs
    assert check.skipped == 2
    assert check.runs == 3
    gate.set()
    wait_until(lambda: not check.running)
    assert check.run() is UP  # runs resume once the hung probe has ended
    assert probe.calls == 2
    assert check.runs == 4  # the late result of the hung probe was not counted


def test_a_run_finding_one_in_flight_within_its_timeout_is_skipped_and_counts_nothing(gate):
    probe = Hanging(gate)
    check = HealthCheck("busy", probe, timeout=GUARD * 2, failure_threshold=1)
    first: list[HealthStatus] = []
    thread = threading.Thread(target=lambda: first.append(check.run()))
    thread.start()
    assert probe.entered.wait(GUARD)
    assert check.run() is UNKNOWN  # skipped: no overlap, and no failure either
    assert check.skipped == 1
    assert check.runs == 0
    assert probe.calls == 1
    gate.set()
    thread.join(GUARD)
    assert first == [UP]
    assert check.runs == 1


def test_a_hanging_async_probe_is_cancelled_at_the_timeout(gate):
    events: list[str] = []

    async def probe() -> bool:
        events.append("start")
        try:
            await asyncio.sleep(GUARD * 4)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        return True

    check = HealthCheck("hang", probe, timeout=TINY, failure_threshold=1)

    async def main() -> tuple[HealthStatus, HealthStatus]:
        first = await check.arun()
        await asyncio.sleep(0.01)  # the cancelled task ends, which frees the check
        return first, await check.arun()

    assert asyncio.run(main()) == (DOWN, DOWN)
    assert events == ["start", "cancelled", "start", "cancelled"]  # cancelled, not skipped
    assert isinstance(check.last_error, TimeoutExceeded)
    assert check.skipped == 0


def test_a_hanging_async_probe_under_run_times_out_too():
    async def probe() -> bool:
        await asyncio.sleep(GUARD * 4)
        return True

    check = HealthCheck("hang", probe, timeout=TINY, failure_threshold=1)
    assert check.run() is DOWN
    assert isinstance(check.last_error, TimeoutExceeded)
    wait_until(lambda: not check.running)  # its own loop cancels it, and the thread ends


def test_a_hanging_sync_probe_under_arun_times_out_and_skips_until_it_ends(gate):
    probe = Hanging(gate)
    check = HealthCheck("hang", probe, timeout=TINY, failure_threshold=1)

    async def main() -> list[HealthStatus]:
        return [await check.arun(), await check.arun()]

    assert asyncio.run(main()) == [DOWN, DOWN]  # and asyncio.run did not wait for the thread
    assert probe.calls == 1
    assert check.skipped == 1
    gate.set()
    wait_until(lambda: not check.running)
    assert asyncio.run(check.arun()) is UP
    assert probe.calls == 2


def test_cancelling_arun_cancels_an_async_probe_and_counts_nothing():
    cancelled = threading.Event()
    entered = asyncio.Event

    async def main() -> None:
        started = entered()

        async def probe() -> bool:
            started.set()
            try:
                await asyncio.sleep(GUARD * 4)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return True

        check = HealthCheck("c", probe, timeout=GUARD * 4, failure_threshold=1)
        run = asyncio.ensure_future(check.arun())
        await asyncio.wait_for(started.wait(), GUARD)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        await asyncio.sleep(0.01)
        assert check.runs == 0
        assert check.status is UNKNOWN
        assert not check.running

    asyncio.run(main())
    assert cancelled.is_set()


def test_timeout_zero_leaves_the_probe_no_time():
    probe = Script(True)
    check = HealthCheck("none", probe, timeout=0, failure_threshold=1)
    assert check.run() is DOWN
    assert asyncio.run(check.arun()) is DOWN
    assert probe.calls == 0
    assert isinstance(check.last_error, TimeoutExceeded)


def test_timeout_inf_waits_as_long_as_it_takes():
    check = HealthCheck("slow", lambda: time.sleep(TINY) or True, timeout=math.inf)
    assert check.run() is UP


# -- probes ---------------------------------------------------------------------------


def test_tcp_probe_connects_to_a_listener(tcp_port):
    probe = tcp_probe("127.0.0.1", tcp_port, timeout=GUARD)
    assert probe() is True
    assert f"{tcp_port}" in repr(probe)
    assert HealthCheck("tcp", probe, timeout=GUARD).run() is UP


def test_tcp_probe_on_a_closed_port_raises_and_the_check_goes_down(closed_port):
    probe = tcp_probe("127.0.0.1", closed_port, timeout=GUARD)
    with pytest.raises(ConnectionRefusedError):
        probe()
    check = HealthCheck("tcp", probe, timeout=GUARD, failure_threshold=1)
    assert check.run() is DOWN
    assert isinstance(check.last_error, ConnectionRefusedError)


def test_http_probe_compares_the_status_with_expect(http_base):
    ok = http_probe(f"{http_base}/ok", timeout=GUARD)
    unavailable = http_probe(f"{http_base}/unavailable", timeout=GUARD)
    assert ok() is True
    assert ok.last_status == 200
    assert unavailable() is False
    assert unavailable.last_status == 503
    assert http_probe(f"{http_base}/unavailable", expect=503, timeout=GUARD)() is True
    assert http_probe(f"{http_base}/unavailable", expect=range(200, 600), timeout=GUARD)()
    assert http_probe(f"{http_base}/ok", expect={204}, timeout=GUARD)() is False
    assert http_probe(f"{http_base}/missing", expect=[404], timeout=GUARD)() is True


def test_http_probe_in_checks(http_base, closed_port):
    checker = HealthChecker(
        [
            HealthCheck("ok", http_probe(f"{http_base}/ok", timeout=GUARD), timeout=GUARD),
            HealthCheck(
                "unavailable",
                http_probe(f"{http_base}/unavailable", timeout=GUARD),
                timeout=GUARD,
                failure_threshold=1,
            ),
            HealthCheck(
                "refused",
                http_probe(f"http://127.0.0.1:{closed_port}/", timeout=GUARD),
                timeout=GUARD,
                failure_threshold=1,
            ),
        ]
    )
    assert checker.run_once() is DOWN
    assert checker["ok"].status is UP
    assert checker["unavailable"].status is DOWN
    assert checker["unavailable"].last_error is None  # it answered, with the wrong status
    assert checker["refused"].status is DOWN
    assert isinstance(checker["refused"].last_error, urllib.error.URLError)


@pytest.mark.parametrize(
    ("reading", "expected"),
    [
        (-1.0, DOWN),
        (0.0, DEGRADED),  # bounds are inclusive: min is in, degraded_min is not reached
        (9.99, DEGRADED),
        (10.0, UP),
        (50, UP),
        (80.0, UP),
        (80.5, DEGRADED),
        (100.0, DEGRADED),
        (100.01, DOWN),
        (math.inf, DOWN),
    ],
)
def test_threshold_probe_bands(reading, expected):
    probe = threshold_probe(
        lambda: reading, min=0.0, degraded_min=10.0, degraded_max=80.0, max=100.0
    )
    assert probe() is expected


def test_threshold_probe_with_one_bound_and_in_a_check():
    level = [0.5]
    probe = threshold_probe(lambda: level[0], degraded_max=0.8)
    check = HealthCheck("disk", probe, failure_threshold=1)
    assert check.run() is UP
    level[0] = 0.9
    assert check.run() is DEGRADED
    assert threshold_probe(lambda: 5, max=4)() is DOWN
    assert threshold_probe(lambda: 5, min=6)() is DOWN
    assert threshold_probe(lambda: 5, degraded_min=6)() is DEGRADED


@pytest.mark.parametrize(
    ("reading", "error"),
    [(math.nan, ValueError), ("3", TypeError), (None, TypeError), (True, TypeError)],
)
def test_threshold_probe_rejects_readings_that_are_not_numbers(reading, error):
    probe = threshold_probe(lambda: reading, max=10)
    with pytest.raises(error, match=r"read\(\)"):
        probe()
    check = HealthCheck("n", probe, failure_threshold=1)
    assert check.run() is DOWN
    assert isinstance(check.last_error, error)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "at least one"),
        ({"min": 5, "max": 4}, ValueError, "min must be <= max"),
        ({"degraded_max": 11, "max": 10}, ValueError, "degraded_max must be <= max"),
        ({"min": 1, "degraded_min": 0}, ValueError, "min must be <= degraded_min"),
        (
            {"degraded_min": 3, "degraded_max": 2},
            ValueError,
            "degraded_min must be <= degraded_max",
        ),
        ({"min": 3, "degraded_max": 2}, ValueError, "min must be <= degraded_max"),
        ({"max": math.nan}, ValueError, "max must not be NaN"),
        ({"min": "1"}, TypeError, "min must be a real number"),
        ({"degraded_max": True}, TypeError, "degraded_max must be a real number"),
    ],
)
def test_threshold_probe_bad_bounds(kwargs, error, match):
    with pytest.raises(error, match=match):
        threshold_probe(lambda: 1.0, **kwargs)


def test_threshold_probe_needs_a_callable():
    with pytest.raises(TypeError, match="read must be callable"):
        threshold_probe(3.0, max=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("", 80), {}, TypeError, "host"),
        ((None, 80), {}, TypeError, "host"),
        (("localhost", 0), {}, ValueError, "port must be an integer >= 1, got 0"),
        (("localhost", 65536), {}, ValueError, "port must be an integer <= 65535, got 65536"),
        (("localhost", "80"), {}, TypeError, "port must be an integer, got '80'"),
        (("localhost", 80), {"timeout": -1}, ValueError, "timeout must be >= 0, got -1"),
        (("localhost", 80), {"timeout": math.nan}, ValueError, "timeout must not be NaN"),
    ],
)
def test_tcp_probe_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        tcp_probe(*args, **kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((b"http://x",), {}, TypeError, "url must be a str"),
        (("ftp://example.com/",), {}, ValueError, "url must be an http"),
        (("file:///etc/passwd",), {}, ValueError, "url must be an http"),
        (("http://x",), {"expect": "200"}, TypeError, "expect must be a status code"),
        (("http://x",), {"expect": 200.0}, TypeError, "expect must be a status code"),
        (("http://x",), {"expect": True}, TypeError, "expect must be a status code"),
        (("http://x",), {"expect": range(0)}, ValueError, "expect must hold at least one"),
        (("http://x",), {"timeout": "1"}, TypeError, "timeout must be a real number"),
    ],
)
def test_http_probe_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        http_probe(*args, **kwargs)


# -- HealthCheck arguments -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": ""}, TypeError, "name must be a non-empty str"),
        ({"name": None}, TypeError, "name must be a non-empty str, got None"),
        ({"probe": "http://x"}, TypeError, "probe must be callable"),
        ({"interval": 0}, ValueError, "interval must be a finite number > 0, got 0"),
        ({"interval": -1.0}, ValueError, "interval must be a finite number > 0"),
        ({"interval": math.inf}, ValueError, "interval must be a finite number > 0, got inf"),
        ({"interval": math.nan}, ValueError, "interval must not be NaN"),
        ({"interval": "10"}, TypeError, "interval must be a real number, got '10'"),
        ({"timeout": -0.5}, ValueError, r"timeout must be >= 0, got -0.5"),
        ({"timeout": None}, TypeError, "timeout must be a real number, got None"),
        ({"failure_threshold": 0}, ValueError, "failure_threshold must be an integer >= 1"),
        ({"failure_threshold": 2.0}, TypeError, "failure_threshold must be an integer, got 2.0"),
        ({"success_threshold": 0}, ValueError, "success_threshold must be an integer >= 1"),
        ({"success_threshold": True}, TypeError, "success_threshold must be an integer"),
        ({"isolate": object()}, TypeError, "isolate must be a CircuitBreaker"),
        ({"clock": 3.0}, TypeError, "clock must be a callable"),
    ],
)
def test_health_check_bad_arguments(kwargs, error, match):
    arguments: dict[str, Any] = {"name": "db", "probe": lambda: True, **kwargs}
    name = arguments.pop("name")
    probe = arguments.pop("probe")
    with pytest.raises(error, match=match):
        HealthCheck(name, probe, **arguments)


def test_health_check_defaults():
    check = HealthCheck("db", lambda: True)
    assert (check.interval, check.timeout) == (10.0, 1.0)
    assert (check.failure_threshold, check.success_threshold) == (3, 1)
    assert check.isolate is None
    with pytest.raises(TypeError, match="callback must be callable"):
        check.on_change(None)  # type: ignore[arg-type]


# -- HealthChecker -----------------------------------------------------------------------


def fixed(name: str, *results: object, **kwargs: Any) -> HealthCheck:
    kwargs.setdefault("failure_threshold", 1)
    kwargs.setdefault("timeout", GUARD)
    return HealthCheck(name, Script(*results), **kwargs)


def test_checker_arguments():
    a, b = fixed("a", True), fixed("b", True)
    with pytest.raises(ValueError, match="distinct names, got 'a' twice"):
        HealthChecker([a, fixed("a", True)])
    with pytest.raises(TypeError, match="checks must hold HealthCheck"):
        HealthChecker([a, lambda: True])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="checks must be an iterable"):
        HealthChecker(a)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"groups\['ready'\] names no check 'c'"):
        HealthChecker([a, b], groups={"ready": ["a", "c"]})
    with pytest.raises(TypeError, match=r"groups\['ready'\] must be an iterable of check names"):
        HealthChecker([a, b], groups={"ready": "a"})
    with pytest.raises(TypeError, match="groups must be a mapping"):
        HealthChecker([a, b], groups=[("ready", ["a"])])  # type: ignore[arg-type]
    checker = HealthChecker(iter([a, b]), groups={"ready": ("b", "a", "b")})
    assert checker.checks == (a, b)
    assert checker.groups == {"ready": ("b", "a")}
    assert checker["b"] is b
    assert "a" in checker and "c" not in checker
    assert len(checker) == 2
    with pytest.raises(KeyError, match="'c'"):
        checker["c"]
    with pytest.raises(ValueError, match="group must be one of"):
        checker.report("nope")
    with pytest.raises(TypeError, match="callback must be callable"):
        checker.on_change(3)  # type: ignore[arg-type]


def test_an_empty_checker_is_unknown():
    checker = HealthChecker([])
    assert checker.run_once() is UNKNOWN
    assert checker.report() == {"status": "UNKNOWN", "checks": {}}


def test_run_once_runs_every_check_and_aggregates():
    checker = HealthChecker([fixed("a", True), fixed("b", DEGRADED), fixed("c", UNKNOWN)])
    assert checker.status is UNKNOWN
    assert checker.run_once() is DEGRADED
    assert checker.status is DEGRADED
    assert [c.status for c in checker.checks] == [UP, DEGRADED, UNKNOWN]
    assert asyncio.run(checker.arun_once()) is DEGRADED
    assert [c.runs for c in checker.checks] == [2, 2, 2]


def test_a_failing_dependency_fails_readiness_but_not_liveness():
    checker = HealthChecker(
        [fixed("loop", True), fixed("db", Boom("refused")), fixed("cache", True)],
        groups={"liveness": ["loop"], "readiness": ["loop", "db", "cache"]},
    )
    assert checker.run_once() is DOWN
    assert checker.status_of("liveness") is UP
    assert checker.status_of("readiness") is DOWN
    assert checker.status_of() is DOWN
    live = checker.report("liveness")
    assert live["status"] == "UP"
    assert list(live["checks"]) == ["loop"]
    ready = checker.report("readiness")
    assert ready["status"] == "DOWN"
    assert list(ready["checks"]) == ["loop", "db", "cache"]


def test_report_is_json_and_says_what_happened():
    clock = FakeClock(50.0)
    checker = HealthChecker(
        [
            HealthCheck(
                "db",
                Script(Boom("refused"), clock=clock, step=0.5),
                clock=clock,
                failure_threshold=1,
                timeout=GUARD,
            ),
            HealthCheck("api", Script(True, clock=clock, step=0.125), clock=clock, timeout=GUARD),
            HealthCheck("idle", Script(True), clock=clock),
        ]
    )
    before = checker.report()
    assert before == {
        "status": "UNKNOWN",
        "checks": {
            name: {"status": "UNKNOWN", "error": None, "duration": None, "since": 50.0}
            for name in ("db", "api", "idle")
        },
    }
    checker["db"].run()
    checker["api"].run()
    report = checker.report()
    assert json.loads(json.dumps(report)) == report
    assert json.loads(checker.report_json()) == report
    assert report["status"] == "DOWN"
    db = report["checks"]["db"]
    assert db["status"] == "DOWN"
    assert db["error"] == "Boom: refused"
    assert db["duration"] == pytest.approx(0.5)
    assert db["since"] == pytest.approx(50.5)
    api = report["checks"]["api"]
    assert api == {
        "status": "UP",
        "error": None,
        "duration": pytest.approx(0.125),
        "since": pytest.approx(50.625),
    }
    assert type(api["status"]) is str  # a plain str, not the enum
    assert report["checks"]["idle"]["status"] == "UNKNOWN"


def test_report_names_a_timeout(gate):
    checker = HealthChecker([HealthCheck("hang", Hanging(gate), timeout=TINY)])
    checker.run_once()
    error = checker.report()["checks"]["hang"]["error"]
    assert error.startswith("TimeoutExceeded: 'hang' timed out")


def test_on_change_hears_every_change_of_every_check_and_survives_a_raising_listener(caplog):
    caplog.set_level(logging.DEBUG, logger="resilience")
    checker = HealthChecker([fixed("a", True, False, True), fixed("b", DEGRADED, DEGRADED, True)])
    heard: list[tuple[str, HealthStatus, HealthStatus]] = []
    checker.on_change(lambda *change: (_ for _ in ()).throw(Boom("listener")))
    checker.on_change(lambda *change: heard.append(change))
    for _ in range(3):
        checker.run_once()
    # The checks run concurrently, so only each check's own changes are ordered.
    assert [change[1:] for change in heard if change[0] == "a"] == [
        (UNKNOWN, UP),
        (UP, DOWN),
        (DOWN, UP),
    ]
    assert [change[1:] for change in heard if change[0] == "b"] == [
        (UNKNOWN, DEGRADED),
        (DEGRADED, UP),
    ]
    assert len(heard) == 5
    logged = [r for r in caplog.records if r.name == "resilience" and r.exc_info]
    assert len(logged) == 5
    assert checker.status is UP


def test_run_once_runs_the_checks_concurrently():
    barrier = threading.Barrier(2, timeout=GUARD)

    def probe() -> bool:
        barrier.wait()  # passes only when both probes are running at the same time
        return True

    checker = HealthChecker(
        [HealthCheck("a", probe, timeout=GUARD), HealthCheck("b", probe, timeout=GUARD)]
    )
    assert checker.run_once() is UP


def test_arun_once_runs_the_checks_concurrently():
    async def main() -> HealthStatus:
        a_in, b_in = asyncio.Event(), asyncio.Event()

        async def probe_a() -> bool:
            a_in.set()
            await b_in.wait()
            return True

        async def probe_b() -> bool:
            b_in.set()
            await a_in.wait()
            return True

        checker = HealthChecker(
            [HealthCheck("a", probe_a, timeout=GUARD), HealthCheck("b", probe_b, timeout=GUARD)]
        )
        return await checker.arun_once()

    assert asyncio.run(main()) is UP


def test_run_once_settles_each_check_when_it_ends_or_times_out(gate):
    checker = HealthChecker(
        [HealthCheck("hang", Hanging(gate), timeout=TINY, failure_threshold=1), fixed("ok", True)]
    )
    assert checker.run_once() is DOWN
    assert checker["hang"].status is DOWN
    assert checker["ok"].status is UP


# -- in the background ---------------------------------------------------------------------


def checker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == CHECKER_THREAD]


class Counting:
    """A sync probe that counts its calls and sets ``reached`` at ``target`` calls."""

    def __init__(self, target: int, result: object = True) -> None:
        self.calls = 0
        self.target = target
        self.result = result
        self.reached = threading.Event()

    def __call__(self) -> object:
        self.calls += 1
        if self.calls >= self.target:
            self.reached.set()
        return self.result


def test_start_runs_each_check_every_interval_on_one_thread_until_stop():
    fast, slow = Counting(4), Counting(1, result=False)
    checker = HealthChecker(
        [
            HealthCheck("fast", fast, interval=0.01, timeout=GUARD),
            HealthCheck("slow", slow, interval=3600.0, timeout=GUARD, failure_threshold=1),
        ]
    )
    heard: list[tuple[str, HealthStatus, HealthStatus]] = []
    checker.on_change(lambda *change: heard.append(change))
    assert not checker.running
    checker.start()
    try:
        assert checker.running
        assert len(checker_threads()) == 1
        assert checker_threads()[0].daemon
        with pytest.raises(RuntimeError, match="already running"):
            checker.start()
        assert fast.reached.wait(GUARD)
        assert slow.reached.wait(GUARD)
    finally:
        checker.stop()
    assert not checker.running
    assert checker_threads() == []
    assert fast.calls >= 4
    assert slow.calls == 1  # its interval has not come round again
    assert checker.status is DOWN
    assert sorted(heard) == [("fast", UNKNOWN, UP), ("slow", UNKNOWN, DOWN)]
    calls = fast.calls
    time.sleep(TINY)
    assert fast.calls == calls  # stopped means stopped
    checker.stop()  # stopping again does nothing
    # And it can start again.
    again = Counting(fast.calls + 2)
    checker2 = HealthChecker([HealthCheck("x", again, interval=0.01, timeout=GUARD)])
    checker2.start()
    try:
        assert again.reached.wait(GUARD)
    finally:
        checker2.stop()
    checker.start()
    checker.stop()
    assert checker_threads() == []


def test_stop_does_not_wait_for_a_hanging_probe(gate):
    probe = Hanging(gate)
    checker = HealthChecker([HealthCheck("hang", probe, interval=TINY, timeout=GUARD * 4)])
    checker.start()
    assert probe.entered.wait(GUARD)
    stopper = threading.Thread(target=checker.stop)
    stopper.start()
    stopper.join(GUARD)  # far less than the probe's timeout
    assert not stopper.is_alive()
    assert checker_threads() == []
    assert checker["hang"].runs == 0  # abandoned, not counted
    assert checker["hang"].running  # the probe still hangs on its own thread
    gate.set()
    wait_until(lambda: not checker["hang"].running)
    assert checker["hang"].run() is UP


def test_the_background_thread_survives_raising_listeners_and_probes(caplog):
    caplog.set_level(logging.DEBUG, logger="resilience")
    probe = Counting(3, result=DEGRADED)
    flaky = Script(Boom("x"))
    checker = HealthChecker(
        [
            HealthCheck("p", probe, interval=0.01, timeout=GUARD),
            HealthCheck("f", flaky, interval=0.01, timeout=GUARD),
        ]
    )
    checker.on_change(lambda *change: (_ for _ in ()).throw(Boom("listener")))
    checker.start()
    try:
        assert probe.reached.wait(GUARD)
        wait_until(lambda: checker["f"].status is DOWN)  # three raising runs in a row
        wait_until(lambda: checker["p"].status is DEGRADED)
    finally:
        checker.stop()
    assert checker.status is DOWN
    assert len([r for r in caplog.records if r.name == "resilience" and r.exc_info]) == 2


def test_astart_runs_each_check_every_interval_on_one_task_until_astop():
    async def main() -> None:
        calls = [0]
        reached = asyncio.Event()

        async def probe() -> bool:
            calls[0] += 1
            if calls[0] >= 3:
                reached.set()
            return True

        sync_probe = Counting(3)
        checker = HealthChecker(
            [
                HealthCheck("a", probe, interval=0.01, timeout=GUARD),
                HealthCheck("s", sync_probe, interval=0.01, timeout=GUARD),
            ]
        )
        tasks_before = asyncio.all_tasks()
        await checker.astart()
        assert checker.running
        assert len(asyncio.all_tasks() - tasks_before) == 1
        with pytest.raises(RuntimeError, match="already running"):
            await checker.astart()
        with pytest.raises(RuntimeError, match="already running"):
            checker.start()
        await asyncio.wait_for(reached.wait(), GUARD)
        await asyncio.wait_for(asyncio.to_thread(sync_probe.reached.wait, GUARD), GUARD * 2)
        await checker.astop()  # the task's cancellation does not reach us
        assert not checker.running
        assert asyncio.all_tasks() - tasks_before == set()
        count = calls[0]
        await asyncio.sleep(TINY)
        assert calls[0] == count
        assert checker.status is UP
        await checker.astop()  # stopping again does nothing
        assert checker_threads() == []

    asyncio.run(main())


def test_astop_cancels_a_probe_in_flight_and_counts_nothing():
    async def main() -> None:
        started = asyncio.Event()
        cancelled = asyncio.Event()

        async def probe() -> bool:
            started.set()
            try:
                await asyncio.sleep(GUARD * 4)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return True

        checker = HealthChecker([HealthCheck("a", probe, interval=TINY, timeout=GUARD * 4)])
        await checker.astart()
        await asyncio.wait_for(started.wait(), GUARD)
        await asyncio.wait_for(checker.astop(), GUARD)
        assert cancelled.is_set()
        assert checker["a"].runs == 0
        assert checker["a"].status is UNKNOWN
        await asyncio.sleep(0)
        assert not checker["a"].running

    asyncio.run(main())


def test_the_public_names_are_exported():
    for name in (
        "HealthStatus",
        "HealthCheck",
        "HealthChecker",
        "tcp_probe",
        "http_probe",
        "threshold_probe",
    ):
        assert name in resilience.__all__
        assert getattr(resilience, name) is getattr(resilience.health, name)


def test_isolation_follows_the_latest_status_when_changes_cross():
    """A timed-out run's DOWN is still putting its hold on the breaker when a
    newer run brings the check UP: the breaker must end unheld, as the check is UP."""

    class SlowBreaker(CircuitBreaker):
        def hold(self, name: str) -> None:
            time.sleep(0.3)  # the announcing thread, preempted
            super().hold(name)

    breaker = SlowBreaker("db")
    hang = threading.Event()
    hang.set()
    ended = threading.Event()

    def probe() -> bool:
        if hang.is_set():
            time.sleep(0.15)  # past the timeout, then it ends
            ended.set()
        return True

    check = HealthCheck("db", probe, timeout=0.1, failure_threshold=1, isolate=breaker)
    seen: list[tuple[str, str]] = []
    check.on_change(lambda name, old, new: seen.append((old.value, new.value)))
    first = threading.Thread(target=check.run)
    first.start()
    assert ended.wait(GUARD)  # the hung probe has ended; its DOWN is being announced
    deadline = time.monotonic() + GUARD
    while check.running and time.monotonic() < deadline:
        time.sleep(0.001)  # until its run has let go of the check
    hang.clear()
    assert check.run() is HealthStatus.UP
    first.join(GUARD)
    assert check.status is HealthStatus.UP
    assert breaker.holds == frozenset()
    assert breaker.state is CircuitState.CLOSED
    assert seen == [("UNKNOWN", "DOWN"), ("DOWN", "UP")]


class StallFirstAnnouncement:
    """Stands in for a check's isolation lock: the first thread to take it
    waits for ``go`` before it does, so its announcement comes last."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stalled = threading.Event()
        self.go = threading.Event()
        self.first = True

    def __enter__(self) -> None:
        if self.first:
            self.first = False
            self.stalled.set()
            self.go.wait(GUARD)
        self.lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.lock.release()


def test_a_stale_down_announced_after_a_newer_up_leaves_no_hold(gate):
    """Two runs of one check overlap: the first times out (DOWN), its probe
    ends, a newer run brings the check UP and that is acted on; only then is
    the first run's DOWN announced. The check is UP: no hold may be left.

    The order is forced through the check's isolation lock (no public hook
    sits between a status change and its announcement)."""
    breaker = CircuitBreaker("db")
    probe = Hanging(gate)  # the first call hangs until ``gate``; later ones return True
    check = HealthCheck("db", probe, timeout=TINY, failure_threshold=1, isolate=breaker)
    stall = StallFirstAnnouncement()
    check._isolating = stall  # type: ignore[assignment]
    first = threading.Thread(target=check.run)
    first.start()
    assert stall.stalled.wait(GUARD)  # timed out: DOWN recorded, its announcement held back
    assert check.status is DOWN
    gate.set()  # the hung probe ends, which frees the check
    wait_until(lambda: not check.running)
    assert check.run() is UP  # the newer run, announced and acted on at once
    assert breaker.holds == frozenset()
    stall.go.set()  # now the stale DOWN is announced
    first.join(GUARD)
    assert not first.is_alive()
    assert check.status is UP
    assert breaker.holds == frozenset()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allow()
    breaker.release()
