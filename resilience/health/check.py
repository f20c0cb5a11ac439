"""``HealthCheck``: one probe, and the status its results add up to.

Timeouts are enforced in real time even when a probe hangs: a sync probe
runs on a daemon worker thread that the caller waits for at most
``timeout`` seconds (Python cannot stop the thread; it runs on in the
background until the probe returns), an async probe run by ``arun`` is a
task cancelled at the limit. Runs of one check never overlap: while a probe
that timed out is still running, each further run of its check is skipped
and counted as one more failure, so a hung dependency still goes ``DOWN``
after ``failure_threshold`` runs; once the probe ends, runs resume. The
check's ``clock`` (``time.monotonic`` by default) only measures durations and
dates status changes (``since``); intervals and timeouts are real seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from .._bounded import Outcome, Scope, Worker, wait_time
from .._core import _fork
from .._core._clock_py import reader
from .._core._nocopy import NoCopy
from .._core._validate import clock as check_clock
from .._core._validate import count, non_negative, positive
from .._policy import NEVER_FAILURES, add_listener, asyncio_only, logger, notify
from ..breaker import CircuitBreaker
from ..errors import TimeoutExceeded
from .status import HealthStatus

__all__ = ["ChangeListener", "HealthCheck", "Probe", "ProbeResult"]

ProbeResult: TypeAlias = "bool | HealthStatus"
Probe: TypeAlias = Callable[[], "ProbeResult | Awaitable[ProbeResult]"]
ChangeListener: TypeAlias = Callable[[str, HealthStatus, HealthStatus], object]


def _is_coroutine_function(fn: object) -> bool:
    """Whether calling ``fn`` gives a coroutine: ``async def``, its partials, async ``__call__``."""
    if inspect.iscoroutinefunction(fn):
        return True
    # An object whose class has an ``async def __call__``.
    return callable(fn) and inspect.iscoroutinefunction(type(fn).__call__)


def _describe(error: BaseException | None) -> str | None:
    """An error as the report shows it: ``"Type: message"`` (or just the type)."""
    if error is None:
        return None
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


async def _within(awaitable: Awaitable[Any], timeout: float, name: str) -> Any:
    """``await awaitable``; cancelled after ``timeout`` seconds with ``TimeoutExceeded``.

    The probe's own exceptions before the limit pass unchanged (a
    ``TimeoutError`` it raises is not taken for this timeout). ``inf``: no
    limit.
    """
    scope = Scope(timeout)
    scope.enter()
    try:
        return await awaitable
    finally:
        # Once cancelled at the limit, whatever the probe ends with came too late to count.
        if scope.close():
            raise TimeoutExceeded(timeout, name)


class _Run:
    """One run of a probe in flight: who finished it, with what, and who still waits."""

    __slots__ = (
        "abandoned",
        "done",
        "duration",
        "finished",
        "on_done",
        "outcome",
        "real_start",
        "start",
        "task",
        "timed_out",
    )

    def __init__(self, start: float, on_done: Callable[[], object] | None) -> None:
        self.start = start  # on the check's clock
        self.real_start = time.monotonic()  # timeouts are real time
        self.on_done = on_done
        self.done = threading.Event()
        self.finished = False  # the probe returned or raised (under the check's lock)
        self.abandoned = False  # nobody waits for it: its end frees the check
        self.timed_out = False  # counted as a timeout while still running
        self.outcome: Outcome = (False, None)
        self.duration: float | None = None
        self.task: asyncio.Future[Any] | None = None


class HealthCheck(NoCopy):
    """One probe and the status its results add up to.

    ``probe()`` (sync or async) returns ``True`` / ``HealthStatus.UP`` (a
    success), ``False`` / ``HealthStatus.DOWN`` (a failure) or
    ``HealthStatus.DEGRADED``, or raises (a failure); a run longer than
    ``timeout`` seconds is a failure too. The status starts ``UNKNOWN``:

    - ``failure_threshold`` failures in a row -> ``DOWN`` (from UNKNOWN too);
    - ``success_threshold`` successes in a row -> ``UP``, except that from
      ``UNKNOWN`` the first success is enough;
    - a ``DEGRADED`` result sets ``DEGRADED`` at once (and ends both streaks);
    - until a threshold is reached the status stays what it was.

    A probe returning ``HealthStatus.UNKNOWN`` ("cannot tell") changes neither
    the status nor the streaks; one returning anything else that is not a
    bool or a status is a failure (``last_error`` is a ``TypeError``). A probe
    raising ``CancelledError``, ``KeyboardInterrupt`` or ``SystemExit``
    counts as nothing.

    ``timeout`` is in real seconds; ``math.inf`` sets no limit and 0 leaves no
    time (the probe is not started; every run is a failure). While a probe
    that timed out is still running, further runs are skipped and each counts
    as a failure; a run that finds another run of this check still within
    its timeout (say, ``run()`` called while a ``HealthChecker`` is running
    it) is skipped and counts as nothing. Either way it returns the status.

    ``interval`` (real seconds) is how often a started ``HealthChecker``
    runs the check. ``isolate=`` a ``CircuitBreaker``: the check puts a hold
    named after itself on it while ``DOWN`` (every call refused) and lifts
    that hold when it leaves ``DOWN``; the breaker's own state, what traffic
    and an operator made it, is neither touched nor reset, and another
    check's hold stays on (checks isolating one breaker need distinct
    names). ``clock`` measures ``last_duration`` and dates ``since``.
    """

    __slots__ = (
        "__weakref__",
        "_busy",
        "_clock",
        "_failures",
        "_is_async",
        "_isolating",
        "_last_duration",
        "_last_error",
        "_listeners",
        "_lock",
        "_runs",
        "_since",
        "_skipped",
        "_status",
        "_successes",
        "failure_threshold",
        "interval",
        "isolate",
        "name",
        "probe",
        "success_threshold",
        "timeout",
    )

    def __init__(
        self,
        name: str,
        probe: Probe,
        *,
        interval: float = 10.0,
        timeout: float = 1.0,
        failure_threshold: int = 3,
        success_threshold: int = 1,
        isolate: CircuitBreaker | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        if not callable(probe):
            raise TypeError(f"probe must be callable, got {probe!r}")
        if isolate is not None and not isinstance(isolate, CircuitBreaker):
            raise TypeError(f"isolate must be a CircuitBreaker or None, got {isolate!r}")
        self.name = name
        self.probe = probe
        self.interval = positive("interval", interval)
        self.timeout = non_negative("timeout", timeout)
        self.failure_threshold = count("failure_threshold", failure_threshold)
        self.success_threshold = count("success_threshold", success_threshold)
        self.isolate = isolate
        self._clock: Callable[[], float] = reader(check_clock(clock))  # readings checked
        self._is_async = _is_coroutine_function(probe)
        self._lock = _fork.lock()
        self._isolating = _fork.lock()
        self._busy: _Run | None = None
        _fork.register(self)
        self._status = HealthStatus.UNKNOWN
        self._failures = 0
        self._successes = 0
        self._last_error: BaseException | None = None
        self._last_duration: float | None = None
        self._listeners: list[Callable[..., object]] = []
        self._runs = 0
        self._skipped = 0
        self._since = self._clock()

    # -- reading -------------------------------------------------------------------

    @property
    def status(self) -> HealthStatus:
        """The current status (``UNKNOWN`` until a result decides one)."""
        return self._status

    @property
    def last_error(self) -> BaseException | None:
        """What the last counted run raised (a ``TimeoutExceeded`` for a timeout), or None.

        None when the last counted run's probe returned, whatever it returned.
        """
        return self._last_error

    @property
    def last_duration(self) -> float | None:
        """How long the last probe run took, on the check's clock (None before any run).

        A run that timed out took until it was given up; a skipped run leaves
        this as it was.
        """
        return self._last_duration

    @property
    def since(self) -> float:
        """When the status last changed (or the check was made), on the check's clock."""
        return self._since

    @property
    def running(self) -> bool:
        """Whether a probe of this check is running now (a timed-out one included)."""
        return self._busy is not None

    @property
    def runs(self) -> int:
        """Runs that counted: each probe result, timeout or skip counted as a failure."""
        return self._runs

    @property
    def skipped(self) -> int:
        """Runs skipped because a probe of this check was still running."""
        return self._skipped

    @property
    def consecutive_failures(self) -> int:
        """Failures in a row so far (0 after a success or a DEGRADED result)."""
        return self._failures

    @property
    def consecutive_successes(self) -> int:
        """Successes in a row so far (0 after a failure or a DEGRADED result)."""
        return self._successes

    def on_change(self, callback: ChangeListener) -> ChangeListener:
        """Call ``callback(name, old, new)`` on every change of status (usable as a decorator).

        A callback that raises is logged; the others still run.
        """
        return add_listener(self._listeners, callback)

    # -- running -------------------------------------------------------------------

    def run(self) -> HealthStatus:
        """Run the probe once (sync or async) and return the status it leads to.

        The probe runs on a daemon worker thread (an async one in its own
        event loop there); this waits for it at most ``timeout`` seconds.
        """
        run = self._start(None, None)
        if isinstance(run, HealthStatus):
            return run
        try:
            run.done.wait(wait_time(self.timeout))
        except BaseException:
            self._abandon(run)
            raise
        return self._settle(run)

    async def arun(self) -> HealthStatus:
        """Run the probe once and return the status it leads to, without blocking the loop.

        An async probe runs as a task of this loop, cancelled at ``timeout``;
        a sync one runs on a daemon worker thread that this awaits at most
        ``timeout`` seconds. Cancelling ``arun`` cancels an async probe and
        counts nothing. It runs on asyncio only (under Trio: a RuntimeError saying so).
        """
        asyncio_only("HealthCheck.arun")
        loop = asyncio.get_running_loop()
        finished = loop.create_future()

        def wake() -> None:
            if not finished.done():
                finished.set_result(None)

        def wake_threadsafe() -> None:
            # RuntimeError: the loop is closed, nobody waits any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake)

        run = self._start(wake_threadsafe, loop)
        if isinstance(run, HealthStatus):
            return run
        try:
            limit = None if math.isinf(self.timeout) else self.timeout
            await asyncio.wait({finished}, timeout=limit)
        except BaseException:
            self._abandon(run)
            if run.task is not None:
                run.task.cancel()
            raise
        status = self._settle(run)
        if run.task is not None and not run.task.done():
            run.task.cancel()  # timed out: its end (done callback) frees the check
        return status

    def _start(
        self, on_done: Callable[[], object] | None, loop: asyncio.AbstractEventLoop | None
    ) -> _Run | HealthStatus:
        """Start a run, or settle a skipped one and return the status.

        With ``loop``, an async probe becomes a task of that loop; otherwise
        the probe runs on a new daemon thread. ``on_done`` is called (from
        whichever thread) when the probe ends.
        """
        if self.timeout <= 0.0:  # no time at all: the probe is not started
            return self._record(HealthStatus.DOWN, TimeoutExceeded(0.0, self.name), 0.0)
        run = _Run(self._clock(), on_done)
        with self._lock:
            busy = self._busy
            if busy is None:
                self._busy = run
        if busy is not None:
            return self._skip(busy)
        if loop is not None and self._is_async:
            run.task = loop.create_task(self._call_async())
            run.task.add_done_callback(lambda task: self._task_done(run, task))
        else:
            # Not kept: the run's end is followed through on_end, which a
            # timed-out run needs to free the check.
            Worker(
                self._call,
                name=f"resilience-health-{self.name}",
                on_end=functools.partial(self._finish, run),
            )
        return run

    def _skip(self, busy: _Run) -> HealthStatus:
        """A run that found another in flight: a failure if that one is past its timeout."""
        with self._lock:
            self._skipped += 1
        if busy.timed_out or time.monotonic() - busy.real_start >= self.timeout:
            return self._record(HealthStatus.DOWN, TimeoutExceeded(self.timeout, self.name), None)
        return self._status

    async def _call_async(self) -> Any:
        value = self.probe()
        if inspect.isawaitable(value):
            value = await value
        return value

    def _call(self) -> Any:
        """On the worker thread: the probe, and an awaitable it returns run in a loop of its own."""
        value: Any = self.probe()
        if inspect.isawaitable(value):
            value = asyncio.run(_within(value, self.timeout, self.name))
        return value

    def _reset_in_child(self) -> None:
        """In a forked child: a probe run by a parent thread never ends here; the check is free."""
        self._busy = None

    def _task_done(self, run: _Run, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            outcome: Outcome = (False, asyncio.CancelledError())
        else:
            error = task.exception()
            outcome = (True, task.result()) if error is None else (False, error)
        self._finish(run, outcome)

    def _finish(self, run: _Run, outcome: Outcome) -> None:
        """The probe ended: keep its outcome; free the check if nobody waits for it."""
        try:
            duration: float | None = self._clock() - run.start
        except Exception:
            logger.exception("health check %r: clock() failed", self.name)
            duration = None
        with self._lock:
            run.outcome = outcome
            run.duration = duration
            run.finished = True
            if run.abandoned and self._busy is run:
                self._busy = None
        run.done.set()
        if run.on_done is not None:
            try:
                run.on_done()
            except Exception:  # pragma: no cover - the callbacks given here do not raise
                logger.exception("health check %r: waking the waiter failed", self.name)

    def _abandon(self, run: _Run) -> None:
        """Stop waiting for ``run`` and count nothing (stopped or cancelled)."""
        with self._lock:
            run.abandoned = True
            if run.finished and self._busy is run:
                self._busy = None

    def _settle(self, run: _Run) -> HealthStatus:
        """The waiter's end of a run: count its outcome, or a timeout if it is still running."""
        with self._lock:
            finished = run.finished
            if finished:
                if self._busy is run:
                    self._busy = None
            else:
                run.abandoned = run.timed_out = True  # its end frees the check
        if not finished:
            duration = self._clock() - run.start
            return self._record(
                HealthStatus.DOWN, TimeoutExceeded(self.timeout, self.name), duration
            )
        returned, value = run.outcome
        if not returned:
            if isinstance(value, NEVER_FAILURES):
                return self._status
            return self._record(HealthStatus.DOWN, value, run.duration)
        result = _classify(value)
        if isinstance(result, BaseException):
            return self._record(HealthStatus.DOWN, result, run.duration)
        return self._record(result, None, run.duration)

    def _record(
        self,
        result: HealthStatus,
        error: BaseException | None,
        duration: float | None,
    ) -> HealthStatus:
        """Apply one result to the streaks and the status; act on and announce a change."""
        now = self._clock()
        with self._lock:
            self._runs += 1
            self._last_error = error
            if duration is not None:
                self._last_duration = duration
            old = self._status
            new = old
            if result is HealthStatus.UP:
                self._failures = 0
                self._successes += 1
                if old is HealthStatus.UNKNOWN or self._successes >= self.success_threshold:
                    new = HealthStatus.UP
            elif result is HealthStatus.DOWN:
                self._successes = 0
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    new = HealthStatus.DOWN
            elif result is HealthStatus.DEGRADED:
                self._failures = self._successes = 0
                new = HealthStatus.DEGRADED
            if new is not old:
                self._status = new
                # Another thread may have stored a later reading.
                self._since = max(now, self._since)
        if new is not old:
            self._changed(old, new)
        return new

    def _changed(self, old: HealthStatus, new: HealthStatus) -> None:
        worse = new is not HealthStatus.UP and HealthStatus.worst(old, new) is new
        logger.log(
            logging.WARNING if worse else logging.INFO,
            "health check %r: %s -> %s",
            self.name,
            old,
            new,
            extra={
                "resilience_event": "health_check.status",
                "resilience_name": self.name,
                "resilience_from_state": old.value,
                "resilience_to_state": new.value,
            },
        )
        isolate = self.isolate
        if isolate is not None:
            # Changes of overlapping runs can be announced out of order (a
            # timed-out run's DOWN after a newer run's UP): act on the status
            # as it is now, not on ``new``, one announcement at a time, so the
            # hold is on exactly while the check is DOWN.
            with self._isolating:
                try:
                    if self._status is HealthStatus.DOWN:
                        isolate.hold(self.name)
                    else:
                        isolate.lift_hold(self.name)
                except Exception:
                    logger.exception("health check %r: isolating %r failed", self.name, isolate)
        notify(self._listeners, self.name, old, new)

    def report(self) -> dict[str, Any]:
        """``{"status", "error", "duration", "since"}``, JSON-serializable (see HealthChecker)."""
        with self._lock:  # one run's figures together
            return {
                "status": self._status.value,
                "error": _describe(self._last_error),
                "duration": self._last_duration,
                "since": self._since,
            }

    def __repr__(self) -> str:
        return f"<HealthCheck {self.name!r} {self._status.value}>"


def _classify(value: object) -> HealthStatus | BaseException:
    """What a returned value means: a status, or the error that it is not one."""
    if value is True:
        return HealthStatus.UP
    if value is False:
        return HealthStatus.DOWN
    if isinstance(value, HealthStatus):
        return value
    if isinstance(value, str) and value in HealthStatus.__members__:
        return HealthStatus(value)
    return TypeError(f"probe must return a bool or a HealthStatus, got {value!r}")
