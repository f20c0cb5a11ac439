"""What is timed: the statements, the failing functions, and breakers opened for real.

Shared by ``bench``, ``bench --peers`` and the pytest-benchmark suite, so a
row of one means what the row of the same name means in the others.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from ..breaker import CircuitBreaker
from .timing import af, f, run

CALL = "g()"
ACALL = "await g()"
REJECT = "try:\n    g()\nexcept E:\n    pass"
AREJECT = "try:\n    await g()\nexcept E:\n    pass"

HUGE = 10**9  # a rate (per second) no benchmark loop can exhaust: every acquire is allowed
TRIP = 5  # failures that open every breaker
HOUR = 3600  # reset timeouts: an opened breaker stays open while it is timed


def failing() -> int:
    raise OSError("down")


async def afailing() -> int:
    raise OSError("down")


def breaker() -> CircuitBreaker:
    """This library's breaker as the benchmarks open it: TRIP failures, an hour before it probes."""
    return CircuitBreaker(failure_threshold=TRIP, reset_timeout=HOUR)


def opened(
    decorator: Callable[[Callable[..., Any]], Callable[..., Any]],
    error: type[BaseException],
    is_async: bool = False,
) -> dict[str, Any]:
    """``f`` (or ``af``) behind ``decorator`` (a breaker), opened by TRIP failures through it.

    The breaker opens the honest way, through its own wrapper, and the setup
    fails unless the call is then rejected with ``error``. Returns the
    namespace of ``REJECT`` (or ``AREJECT``): ``{"g": ..., "E": error}``.
    """
    failure = decorator(afailing if is_async else failing)
    for _ in range(TRIP):
        # the failure, or the breaker's own error on the tripping call
        with contextlib.suppress(Exception):
            _call(failure, is_async)
    g = decorator(af if is_async else f)
    try:
        _call(g, is_async)
    except error:
        return {"g": g, "E": error}
    raise AssertionError(f"{g!r} was not rejected with {error.__name__}")


def _call(function: Callable[[], Any], is_async: bool) -> Any:
    return run(function()) if is_async else function()
