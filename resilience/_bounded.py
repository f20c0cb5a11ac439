"""Bounded runs: wait for work at most a limit, in real time.

``Timeout`` and the health checks both bound work the same two ways, and
both ways have traps (limits the platform cannot wait for, context
variables that do not follow a thread, a cancel that is not ours), so the
one implementation lives here:

- ``Worker``: a sync callable on its own daemon thread, which the caller
  waits for at most the limit. Python cannot stop a thread, so a caller
  that gives up leaves it running to its end; ``on_end`` says when that end
  comes, for users that must not start the work again before it (a health
  check runs one probe at a time).
- ``Scope``: async work cancelled at the limit, its own cancel told apart
  from any other.

See docs/architecture.md for how timeouts and health checks fit together.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import sys
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeAlias, TypeVar

__all__ = ["Outcome", "Scope", "Worker", "wait_time"]

R = TypeVar("R")

# How a call ended: (True, what it returned) or (False, the exception it raised).
Outcome: TypeAlias = tuple[bool, Any]


def wait_time(seconds: float) -> float | None:
    """``seconds`` as a timeout for ``Event.wait``: None (no end) past ``threading.TIMEOUT_MAX``."""
    # Event.wait raises OverflowError past TIMEOUT_MAX, and a wait that long
    # (inf included) cannot end in practice anyway.
    return None if seconds > threading.TIMEOUT_MAX else max(0.0, seconds)


class Worker(Generic[R]):
    """``fn()`` on a new daemon thread, started at once with the caller's context variables.

    ``wait(limit)`` waits for it to end at most ``limit`` seconds; then
    ``result()`` returns what it returned or raises what it raised. When a
    wait gives up the thread runs on. ``on_end(outcome)`` is called on the
    worker thread as ``fn`` ends, however long after the last wait that is,
    and before ``wait`` sees the end; it should not raise.
    """

    __slots__ = ("_done", "_on_end", "_outcome")

    def __init__(
        self,
        fn: Callable[[], R],
        *,
        name: str,
        on_end: Callable[[Outcome], object] | None = None,
    ) -> None:
        self._outcome: Outcome = (False, None)
        self._done = threading.Event()
        self._on_end = on_end
        # A copy: the worker must see the caller's context variables (a
        # deadline, a request id) but its changes must not leak back.
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(self._work, fn), name=name, daemon=True).start()

    def _work(self, fn: Callable[[], R]) -> None:
        try:
            self._outcome = (True, fn())
        except BaseException as exc:  # the waiter's to raise, not this thread's
            self._outcome = (False, exc)
        try:
            if self._on_end is not None:
                self._on_end(self._outcome)
        finally:
            # After on_end, so a wait that sees the end also sees what on_end did.
            self._done.set()

    def wait(self, limit: float) -> bool:
        """Whether ``fn`` ends within ``limit`` seconds (no limit past ``TIMEOUT_MAX``)."""
        return self._done.wait(wait_time(limit))

    def result(self) -> R:
        """What ``fn`` returned, or raise what it raised. ``RuntimeError`` before its end."""
        if not self._done.is_set():
            raise RuntimeError("the worker is still running")
        returned, value = self._outcome
        if returned:
            return value  # type: ignore[no-any-return]
        raise value


class Scope:
    """Cancels the current task at ``limit`` seconds; tells that cancel apart from others.

    ``enter()`` at the start of the work, ``close()`` or ``expired(exc)`` at
    its end (the same task, exactly once). ``math.inf`` schedules nothing.
    The same job as ``asyncio.timeout`` (3.11+), written once so 3.10
    behaves alike: the cancel it sends is told apart from any other by
    counting it, and withdrawn (``uncancel``) where the interpreter tracks
    such counts.
    """

    __slots__ = ("_cancelling", "_handle", "fired", "limit", "task")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.fired = False
        task = asyncio.current_task()
        if task is None:  # only ``async with Timeout`` can be entered outside a task
            raise RuntimeError("Timeout must be used inside an asyncio task")
        self.task = task
        self._handle: asyncio.TimerHandle | None = None

    def enter(self) -> None:
        if self.limit == math.inf:
            return  # no limit: nothing to schedule
        # Cancels already pending on the task are not ours to turn into a timeout.
        self._cancelling = 0
        if sys.version_info >= (3, 11):
            self._cancelling = self.task.cancelling()
        loop = asyncio.get_running_loop()
        self._handle = loop.call_at(loop.time() + self.limit, self._fire)

    def _fire(self) -> None:
        self.fired = True
        self.task.cancel()

    def close(self) -> bool:
        """At the work's end: whether the limit cancelled it (and nobody else did too).

        True even when the work swallowed that cancel and ended otherwise.
        """
        if self._handle is not None:
            self._handle.cancel()
        if not self.fired:
            return False
        if sys.version_info >= (3, 11):
            if self.task.uncancel() > self._cancelling:
                return False  # someone else cancelled the task too: let that cancel through
        return True

    def expired(self, exc: BaseException | None) -> bool:
        """At the work's end: whether ``exc``, what it ended with, is this scope's timeout."""
        return self.close() and isinstance(exc, asyncio.CancelledError)
