"""Health checks: probes, thresholds, an aggregate status and a JSON report.

A ``HealthCheck`` runs one probe — a function, sync or async, that returns
``True`` / ``False`` / a ``HealthStatus`` or raises — and turns its results
into a status the way Kubernetes probes do: ``failure_threshold`` failures in
a row make it ``DOWN``, ``success_threshold`` successes in a row make it
``UP`` again, and in between the status stays what it was. A
``HealthChecker`` holds many checks, runs them once (``run_once``,
``arun_once``) or every ``interval`` seconds (``start`` on one background
thread, ``astart`` on one asyncio task), and reports on all of them or on a
group (say ``"readiness"`` and ``"liveness"``).

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

``tcp_probe``, ``http_probe`` and ``threshold_probe`` build common probes
with the standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import json
import math
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping, Sized
from enum import Enum
from typing import Any, TypeAlias

from ._core._validate import clock as check_clock
from ._core._validate import count, non_negative, number, optional, positive
from ._policy import NEVER_FAILURES, add_listener, logger, notify
from .breaker import CircuitBreaker
from .errors import TimeoutExceeded

__all__ = [
    "HealthCheck",
    "HealthChecker",
    "HealthStatus",
    "http_probe",
    "tcp_probe",
    "threshold_probe",
]


class HealthStatus(str, Enum):
    """The health of a check or of a group of checks (a ``str`` enum: values equal names)."""

    UP = "UP"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def worst(cls, *statuses: HealthStatus | str) -> HealthStatus:
        """The worst of ``statuses``: DOWN > DEGRADED > UP.

        UNKNOWN counts only when nothing else is there: ``worst(UP, UNKNOWN)``
        is UP, ``worst(UNKNOWN)`` and ``worst()`` are UNKNOWN. Plain strings
        naming a status are accepted; anything else raises ``ValueError``.
        """
        worst = cls.UNKNOWN
        for status in statuses:
            rank = _RANK[cls(status)]
            if rank > _RANK[worst]:
                worst = cls(status)
        return worst


# How bad each status is, for ``worst``: UNKNOWN is below everything.
_RANK = {
    HealthStatus.UNKNOWN: 0,
    HealthStatus.UP: 1,
    HealthStatus.DEGRADED: 2,
    HealthStatus.DOWN: 3,
}

ProbeResult: TypeAlias = "bool | HealthStatus"
Probe: TypeAlias = Callable[[], "ProbeResult | Awaitable[ProbeResult]"]
ChangeListener: TypeAlias = Callable[[str, HealthStatus, HealthStatus], object]


def _is_coroutine_function(fn: object) -> bool:
    """Whether calling ``fn`` gives a coroutine: ``async def``, its partials, async ``__call__``."""
    if inspect.iscoroutinefunction(fn):
        return True
    # An object whose class has an ``async def __call__``.
    return callable(fn) and inspect.iscoroutinefunction(type(fn).__call__)


def _thread_wait(seconds: float) -> float | None:
    """A timeout for ``Event.wait``: None for waits too long for the platform."""
    return None if seconds > threading.TIMEOUT_MAX else max(0.0, seconds)


def _describe(error: BaseException | None) -> str | None:
    """An error as the report shows it: ``"Type: message"`` (or just the type)."""
    if error is None:
        return None
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


async def _bounded(awaitable: Awaitable[Any], timeout: float, name: str) -> Any:
    """``await awaitable``; cancelled after ``timeout`` seconds with ``TimeoutExceeded``.

    The probe's own exceptions pass unchanged (a ``TimeoutError`` it raises
    is not taken for this timeout). ``inf``: no limit.
    """
    if math.isinf(timeout):
        return await awaitable
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        await asyncio.wait({task})  # let it end (the worker thread's loop closes after)
        if not task.cancelled():
            task.exception()  # retrieved: it came too late to count
        raise TimeoutExceeded(timeout, name)
    return task.result()


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
        self.outcome: tuple[bool, Any] = (False, None)  # (returned, value or exception)
        self.duration: float | None = None
        self.task: asyncio.Future[Any] | None = None


class HealthCheck:
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
    runs the check. ``isolate=`` a ``CircuitBreaker``: it is forced open
    while the check is ``DOWN`` and reset when the check leaves ``DOWN``.
    ``clock`` measures ``last_duration`` and dates ``since``.
    """

    __slots__ = (
        "_busy",
        "_clock",
        "_failures",
        "_is_async",
        "_isolated",
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
        self._clock: Callable[[], float] = check_clock(clock) or time.monotonic
        self._is_async = _is_coroutine_function(probe)
        self._lock = threading.Lock()
        self._isolating = threading.Lock()
        self._isolated = False  # whether this check forced ``isolate`` open
        self._busy: _Run | None = None
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
            run.done.wait(_thread_wait(self.timeout))
        except BaseException:
            self._abandon(run)
            raise
        return self._settle(run)

    async def arun(self) -> HealthStatus:
        """Run the probe once and return the status it leads to, without blocking the loop.

        An async probe runs as a task of this loop, cancelled at ``timeout``;
        a sync one runs on a daemon worker thread that this awaits at most
        ``timeout`` seconds. Cancelling ``arun`` cancels an async probe and
        counts nothing.
        """
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
            context = contextvars.copy_context()
            threading.Thread(
                target=context.run,
                args=(self._work, run),
                name=f"resilience-health-{self.name}",
                daemon=True,
            ).start()
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

    def _work(self, run: _Run) -> None:
        """The worker thread: call the probe (running an awaitable it returns), then finish."""
        try:
            value: Any = self.probe()
            if inspect.isawaitable(value):
                value = asyncio.run(_bounded(value, self.timeout, self.name))
            outcome: tuple[bool, Any] = (True, value)
        except BaseException as exc:  # handed to whoever settles the run
            outcome = (False, exc)
        self._finish(run, outcome)

    def _task_done(self, run: _Run, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            outcome: tuple[bool, Any] = (False, asyncio.CancelledError())
        else:
            error = task.exception()
            outcome = (True, task.result()) if error is None else (False, error)
        self._finish(run, outcome)

    def _finish(self, run: _Run, outcome: tuple[bool, Any]) -> None:
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
                self._since = max(now, self._since)  # never backwards
        if new is not old:
            self._changed(old, new)
        return new

    def _changed(self, old: HealthStatus, new: HealthStatus) -> None:
        isolate = self.isolate
        if isolate is not None:
            # Two changes can be announced at once (a timed-out run settling
            # beside a new one): act on the status as it is now, one at a time,
            # so the breaker ends forced open exactly while the check is DOWN.
            with self._isolating:
                down = self._status is HealthStatus.DOWN
                try:
                    if down and not self._isolated:
                        isolate.force_open()
                    elif not down and self._isolated:
                        isolate.reset()
                    self._isolated = down
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


# -- the checker -----------------------------------------------------------------------


class HealthChecker:
    """Many checks: run them, aggregate their statuses, report on them.

    ``checks`` are ``HealthCheck``s with distinct names; ``groups`` maps a
    group name to the names of its checks, e.g. ``{"readiness": ["db",
    "cache"], "liveness": ["loop"]}`` — so a failing dependency can fail
    readiness without failing liveness.

    ``run_once`` / ``arun_once`` run every check once, concurrently, and
    return the aggregate. ``start`` runs each check every its ``interval``
    (real seconds, from the start of its previous run) on one daemon thread
    until ``stop``; ``astart`` does the same on one task of the running event
    loop until ``astop``. Only one of the two runs at a time.
    """

    __slots__ = (
        "__weakref__",
        "_by_name",
        "_checks",
        "_groups",
        "_listeners",
        "_lock",
        "_stop",
        "_task",
        "_thread",
        "_wake",
    )

    def __init__(
        self,
        checks: Iterable[HealthCheck],
        *,
        groups: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        if not isinstance(checks, Iterable):
            raise TypeError(f"checks must be an iterable of HealthCheck, got {checks!r}")
        self._checks = tuple(checks)
        self._by_name: dict[str, HealthCheck] = {}
        for check in self._checks:
            if not isinstance(check, HealthCheck):
                raise TypeError(f"checks must hold HealthCheck objects, got {check!r}")
            if check.name in self._by_name:
                raise ValueError(f"checks must have distinct names, got {check.name!r} twice")
            self._by_name[check.name] = check
        self._groups = self._check_groups(groups)
        self._listeners: list[Callable[..., object]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        for check in self._checks:
            check.on_change(self._changed)

    def _check_groups(
        self, groups: Mapping[str, Iterable[str]] | None
    ) -> dict[str, tuple[str, ...]]:
        if groups is None:
            return {}
        if not isinstance(groups, Mapping):
            raise TypeError(
                f"groups must be a mapping of group names to check names, got {groups!r}"
            )
        result: dict[str, tuple[str, ...]] = {}
        for group, names in groups.items():
            if not isinstance(group, str):
                raise TypeError(f"groups must have str names, got {group!r}")
            if isinstance(names, str) or not isinstance(names, Iterable):
                raise TypeError(
                    f"groups[{group!r}] must be an iterable of check names, got {names!r}"
                )
            members = tuple(names)
            for name in members:
                if name not in self._by_name:
                    raise ValueError(f"groups[{group!r}] names no check {name!r}")
            result[group] = tuple(dict.fromkeys(members))
        return result

    # -- reading -------------------------------------------------------------------

    @property
    def checks(self) -> tuple[HealthCheck, ...]:
        """The checks, in the order given."""
        return self._checks

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        """A copy of the groups: group name -> names of its checks."""
        return dict(self._groups)

    def __getitem__(self, name: str) -> HealthCheck:
        """The check called ``name`` (``KeyError`` when there is none)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no health check named {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self._checks)

    def _members(self, group: str | None) -> tuple[HealthCheck, ...]:
        if group is None:
            return self._checks
        try:
            names = self._groups[group]
        except (KeyError, TypeError):
            raise ValueError(
                f"group must be one of {sorted(self._groups)!r} or None, got {group!r}"
            ) from None
        return tuple(self._by_name[name] for name in names)

    @property
    def status(self) -> HealthStatus:
        """The worst status of all the checks (``UNKNOWN`` when none has one)."""
        return HealthStatus.worst(*(check.status for check in self._checks))

    def status_of(self, group: str | None = None) -> HealthStatus:
        """The worst status of the checks of ``group`` (of all checks for None)."""
        return HealthStatus.worst(*(check.status for check in self._members(group)))

    def report(self, group: str | None = None) -> dict[str, Any]:
        """A JSON-serializable report on the checks of ``group`` (all checks for None).

        ``{"status": "UP", "checks": {name: {"status": "UP", "error": None,
        "duration": 0.012, "since": 1234.5}}}``: ``error`` is the last error
        as ``"Type: message"`` (None after a run that returned), ``duration``
        the last run's seconds (None before any), ``since`` when the status
        last changed, on the check's clock.
        """
        members = self._members(group)
        entries = {check.name: check.report() for check in members}
        status = HealthStatus.worst(*(entries[check.name]["status"] for check in members))
        return {"status": status.value, "checks": entries}

    def report_json(self, group: str | None = None) -> str:
        """``report(group)`` as a JSON string."""
        return json.dumps(self.report(group))

    def on_change(self, callback: ChangeListener) -> ChangeListener:
        """Call ``callback(check_name, old, new)`` whenever a check's status changes.

        Every change counts, the first one out of ``UNKNOWN`` included. Usable
        as a decorator; a callback that raises is logged and the others still
        run.
        """
        return add_listener(self._listeners, callback)

    def _changed(self, name: str, old: HealthStatus, new: HealthStatus) -> None:
        notify(self._listeners, name, old, new)

    # -- running once --------------------------------------------------------------

    def run_once(self) -> HealthStatus:
        """Run every check once, concurrently (each on its own thread), and return the aggregate."""
        self._run_batch(self._checks, None)
        return self.status

    async def arun_once(self) -> HealthStatus:
        """Run every check once, concurrently, on this event loop; return the aggregate."""
        await asyncio.gather(*(check.arun() for check in self._checks))
        return self.status

    def _run_batch(self, checks: Iterable[HealthCheck], stop: threading.Event | None) -> None:
        """Start a run of each check, then settle each as it ends or times out.

        With ``stop``: when it is set, runs still in flight are abandoned and
        count nothing.
        """
        wake = self._wake if stop is not None else threading.Event()
        pending: list[tuple[HealthCheck, _Run, float]] = []
        for check in checks:
            run = check._start(wake.set, None)
            if isinstance(run, _Run):
                pending.append((check, run, run.real_start + check.timeout))
        while pending:
            wake.clear()
            if stop is not None and stop.is_set():
                for check, run, _ in pending:
                    check._abandon(run)
                return
            now = time.monotonic()
            waiting = []
            for check, run, deadline in pending:
                if run.done.is_set() or now >= deadline:
                    check._settle(run)
                else:
                    waiting.append((check, run, deadline))
            pending = waiting
            if pending:
                wake.wait(_thread_wait(min(deadline for _, _, deadline in pending) - now))

    # -- running in the background -------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the background thread or task is running."""
        return self._thread is not None or self._task is not None

    def start(self) -> None:
        """Run each check every its ``interval`` on one daemon thread, until ``stop()``.

        The first run of each check starts at once. ``RuntimeError`` if the
        checker is already running (on a thread or a task).
        """
        with self._lock:
            if self._thread is not None or self._task is not None:
                raise RuntimeError("the health checker is already running")
            self._stop = stop = threading.Event()
            self._wake = threading.Event()
            self._thread = threading.Thread(
                target=self._loop, args=(stop,), name="resilience-health-checker", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the background thread and wait for it to end (nothing if it is not running).

        Probes in flight are not waited for: their runs count nothing, and
        their threads end when they return.
        """
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            self._stop.set()
            self._wake.set()
        if thread is not threading.current_thread():  # stop() from a listener cannot join
            thread.join()
        with self._lock:
            if self._thread is thread:
                self._thread = None

    def _loop(self, stop: threading.Event) -> None:
        due = [time.monotonic()] * len(self._checks)
        while not stop.is_set():
            now = time.monotonic()
            batch = []
            for i, check in enumerate(self._checks):
                if due[i] <= now:
                    due[i] = now + check.interval
                    batch.append(check)
            try:
                self._run_batch(batch, stop)
            except Exception:
                logger.exception("health checker: a round of checks failed")
            stop.wait(_thread_wait(min(due, default=math.inf) - time.monotonic()))

    async def astart(self) -> None:
        """Run each check every its ``interval`` on one task of the running loop, until ``astop()``.

        ``RuntimeError`` if the checker is already running (on a thread or a task).
        """
        with self._lock:
            if self._thread is not None or self._task is not None:
                raise RuntimeError("the health checker is already running")
            self._task = asyncio.get_running_loop().create_task(
                self._aloop(), name="resilience-health-checker"
            )

    async def astop(self) -> None:
        """Cancel the background task and wait for it to end (nothing if it is not running).

        Probes in flight are cancelled (async ones) or abandoned (sync ones);
        their runs count nothing. The task's cancellation does not reach the
        caller; a cancellation of ``astop`` itself does.
        """
        with self._lock:
            task = self._task
            if task is None:
                return
        task.cancel()
        try:
            await asyncio.wait({task})
        finally:
            with self._lock:
                if self._task is task:
                    self._task = None
        if not task.cancelled() and task.exception() is not None:  # pragma: no cover
            logger.error("health checker task failed", exc_info=task.exception())

    async def _aloop(self) -> None:
        loop = asyncio.get_running_loop()
        due = [loop.time()] * len(self._checks)
        while True:
            now = loop.time()
            batch = []
            for i, check in enumerate(self._checks):
                if due[i] <= now:
                    due[i] = now + check.interval
                    batch.append(check.arun())
            results = await asyncio.gather(*batch, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception):
                    logger.error("health checker: a check failed", exc_info=result)
            delay = min(due, default=math.inf) - loop.time()
            if math.isinf(delay):
                await loop.create_future()  # no checks: wait to be cancelled
            await asyncio.sleep(max(0.0, delay))

    def __repr__(self) -> str:
        return f"<HealthChecker {len(self._checks)} checks {self.status.value}>"


# -- probes ----------------------------------------------------------------------------


def _timeout_argument(timeout: float) -> float | None:
    """A socket timeout from ours: ``inf`` is None (block), 0 does not wait."""
    seconds = non_negative("timeout", timeout)
    return None if math.isinf(seconds) else seconds


class tcp_probe:
    """A probe that is UP when a TCP connection to ``(host, port)`` opens within ``timeout``.

    Returns ``True`` when it connects (and closes the connection at once);
    raises the ``OSError`` otherwise, so the check's ``last_error`` says why.
    """

    __slots__ = ("_timeout", "host", "port", "timeout")

    def __init__(self, host: str, port: int, *, timeout: float = 1.0) -> None:
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be a non-empty str, got {host!r}")
        self.port = count("port", port, 1)
        if self.port > 65535:
            raise ValueError(f"port must be an integer <= 65535, got {port!r}")
        self.host = host
        self._timeout = _timeout_argument(timeout)
        self.timeout = float(timeout)

    def __call__(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=self._timeout):
            return True

    def __repr__(self) -> str:
        return f"tcp_probe({self.host!r}, {self.port!r}, timeout={self.timeout!r})"


class http_probe:
    """A probe that GETs ``url`` and is UP when the response status is in ``expect``.

    ``expect`` is a status code or a container of them (default any 2xx).
    Error statuses are compared too, so ``expect=range(200, 600)`` only asks
    for an answer. A status outside ``expect`` returns ``False``; no answer
    within ``timeout`` (or a connection error) raises, so the check's
    ``last_error`` says why. ``last_status`` holds the latest status code.
    Standard library only (``urllib.request``); ``http`` and ``https`` URLs.
    """

    __slots__ = ("_timeout", "expect", "last_status", "timeout", "url")

    def __init__(
        self,
        url: str,
        *,
        expect: int | Container[int] = range(200, 300),
        timeout: float = 1.0,
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, got {url!r}")
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
        if isinstance(expect, bool) or not isinstance(expect, (int, Container)):
            raise TypeError(f"expect must be a status code or a container of them, got {expect!r}")
        if isinstance(expect, str):
            raise TypeError(f"expect must be a status code or a container of them, got {expect!r}")
        if isinstance(expect, int):
            expect = frozenset((expect,))
        elif isinstance(expect, Sized) and len(expect) == 0:
            raise ValueError(f"expect must hold at least one status code, got {expect!r}")
        self.url = url
        self.expect: Container[int] = expect
        self._timeout = _timeout_argument(timeout)
        self.timeout = float(timeout)
        self.last_status: int | None = None

    def __call__(self) -> bool:
        import urllib.error  # here, not at import: it pulls in http.client, ssl and email
        import urllib.request

        request = urllib.request.Request(self.url, method="GET")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as error:
            status = int(error.code)
            error.close()
        self.last_status = status
        return status in self.expect

    def __repr__(self) -> str:
        return f"http_probe({self.url!r}, expect={self.expect!r}, timeout={self.timeout!r})"


class threshold_probe:
    """A probe on a number: DOWN outside ``min``/``max``, DEGRADED outside the degraded bounds.

    ``read()`` gives the number (a queue length, free disk space, a lag).
    Bounds are inclusive (a reading equal to ``max`` is within it); at least
    one must be given, and they must nest: ``min <= degraded_min <=
    degraded_max <= max`` for those given. Otherwise UP. A reading that is
    not a number, or NaN, raises (a failure).
    """

    __slots__ = ("degraded_max", "degraded_min", "max", "min", "read")

    def __init__(
        self,
        read: Callable[[], float],
        *,
        max: float | None = None,
        min: float | None = None,
        degraded_max: float | None = None,
        degraded_min: float | None = None,
    ) -> None:
        if not callable(read):
            raise TypeError(f"read must be callable, got {read!r}")
        self.read = read
        self.min = optional(number, "min", min)
        self.max = optional(number, "max", max)
        self.degraded_min = optional(number, "degraded_min", degraded_min)
        self.degraded_max = optional(number, "degraded_max", degraded_max)
        given: list[tuple[str, float]] = []
        for name, value in (
            ("min", self.min),
            ("degraded_min", self.degraded_min),
            ("degraded_max", self.degraded_max),
            ("max", self.max),
        ):
            if value is not None:
                given.append((name, value))
        if not given:
            raise ValueError(
                "threshold_probe needs at least one of min, max, degraded_min, degraded_max"
            )
        for i, (low_name, low) in enumerate(given):
            for high_name, high in given[i + 1 :]:
                if low > high:
                    raise ValueError(
                        f"{low_name} must be <= {high_name}, got {low_name}={low!r} "
                        f"and {high_name}={high!r}"
                    )

    def __call__(self) -> HealthStatus:
        value = number("read()", self.read())
        if (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        ):
            return HealthStatus.DOWN
        if (self.degraded_min is not None and value < self.degraded_min) or (
            self.degraded_max is not None and value > self.degraded_max
        ):
            return HealthStatus.DEGRADED
        return HealthStatus.UP

    def __repr__(self) -> str:
        bounds = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in ("min", "max", "degraded_min", "degraded_max")
            if getattr(self, name) is not None
        )
        return f"threshold_probe({self.read!r}, {bounds})"
