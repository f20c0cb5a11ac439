"""``HealthChecker``: many checks, run together or in the background, aggregated and reported."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._bounded import wait_time
from .._core import _fork
from .._core._nocopy import NoCopy
from .._policy import add_listener, asyncio_only, logger, notify
from .check import ChangeListener, HealthCheck, _Run
from .status import HealthStatus

__all__ = ["HealthChecker"]


class HealthChecker(NoCopy):
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
        self._lock = _fork.lock()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        _fork.register(self)
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
        """Run every check once, concurrently, on this event loop; return the aggregate.

        asyncio only: ``RuntimeError`` under Trio (``run_once`` runs anywhere)."""
        asyncio_only("HealthChecker.arun_once")
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
                wake.wait(wait_time(min(deadline for _, _, deadline in pending) - now))

    # -- running in the background -------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the background thread or task is running."""
        return self._thread is not None or self._task is not None

    def _reset_in_child(self) -> None:
        """In a forked child: the parent's checker thread is not there; ``start()`` may run one."""
        self._thread = None

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
            stop.wait(wait_time(min(due, default=math.inf) - time.monotonic()))

    async def astart(self) -> None:
        """Run each check every its ``interval`` on one task of the running loop, until ``astop()``.

        ``RuntimeError`` if the checker is already running (on a thread or a task),
        and under Trio: the task is asyncio's (``start()`` runs a thread anywhere).
        """
        asyncio_only("HealthChecker.astart")
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
