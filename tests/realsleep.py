"""Wake a real, very long ``time.sleep`` of the sleep hook, without a timing assertion.

A wait longer than the platform can sleep in one call used to fail at once
(``OverflowError``, ``OSError``) instead of sleeping. ``woken_from_the_sleep_hook``
proves the wait really went to sleep: a helper thread signals the main thread
until the signal arrives while it is inside the hook's ``time.sleep`` call,
and only then does the handler raise ``Woken``, which ends the wait as an
interrupt would. A wait that fails before it sleeps raises its own error.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest

from resilience import _policy

POLL = 0.01  # seconds between signals: how soon a sleeping wait is woken, never asserted on
GUARD = 10.0  # seconds: a hang guard for the join


class Woken(Exception):
    """Raised in the sleep hook by the signal: the wait was really asleep."""


@contextmanager
def woken_from_the_sleep_hook() -> Iterator[None]:
    """Raise ``Woken`` from the hook's ``time.sleep`` once the code inside sleeps in it."""
    if sys.platform == "win32":
        pytest.skip("signals cannot interrupt a sleeping thread on Windows")
    hook = _policy.sleep_sync.__code__
    lines, first = inspect.getsourcelines(_policy.sleep_sync)
    (sleep_line,) = (first + i for i, line in enumerate(lines) if "time.sleep(" in line)

    def wake(signum: int, frame: FrameType | None) -> None:
        # A signal handled on the line of the call, in the hook's frame, was
        # handled by time.sleep itself: nothing on that line checks for
        # signals before the call.
        if frame is not None and frame.f_code is hook and frame.f_lineno == sleep_line:
            raise Woken
        # Elsewhere (not asleep yet): return, and the next signal tries again.

    stop = threading.Event()
    main = threading.main_thread().ident
    assert main == threading.get_ident(), "signals are handled on the main thread"

    def signal_until_stopped() -> None:
        while not stop.wait(POLL):
            signal.pthread_kill(main, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, wake)
    sender = threading.Thread(target=signal_until_stopped, daemon=True)
    sender.start()
    try:
        yield
    finally:
        stop.set()
        sender.join(GUARD)
        signal.signal(signal.SIGUSR1, previous)


async def asleep_then_cancelled(task: asyncio.Task[Any]) -> None:
    """Check that ``task`` went to sleep in a long wait: a wait that cannot
    sleep fails within a few turns of the loop. Then cancel it, as an
    interrupt would end it, and see it end cancelled."""
    for _ in range(10):
        await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
