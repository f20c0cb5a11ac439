"""CircuitBreaker: stop calling what keeps failing, probe it now and then.

The state machine, the window and the counters are the core's
(``BreakerCore``, compiled when it can be); this module adds what a caller
touches: classifying exceptions and results, fallbacks, the decorator, call
and context-manager forms, listeners, state-change logs and stats.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from . import _core
from ._core import CLOSED, DISABLED, FORCED_OPEN, HALF_OPEN, OPEN
from ._core._clock_py import elapsed, read_now
from ._policy import (
    NEVER_FAILURES,
    AsyncCall,
    Block,
    Policy,
    Replace,
    add_listener,
    check_callable,
    check_exception_types,
    check_name,
    coroutine_function,
    logger,
    notify,
)
from .errors import CircuitOpenError

__all__ = ["BreakerStats", "CircuitBreaker", "CircuitState"]


class CircuitState(str, Enum):
    """The state of a circuit breaker."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"
    FORCED_OPEN = "FORCED_OPEN"
    DISABLED = "DISABLED"

    def __str__(self) -> str:
        return self.value


# Core state numbers -> CircuitState, by index.
STATES = {
    CLOSED: CircuitState.CLOSED,
    OPEN: CircuitState.OPEN,
    HALF_OPEN: CircuitState.HALF_OPEN,
    FORCED_OPEN: CircuitState.FORCED_OPEN,
    DISABLED: CircuitState.DISABLED,
}

# The states a change into is for the worse: logged as a WARNING, others as INFO.
REFUSING = frozenset({CircuitState.OPEN, CircuitState.FORCED_OPEN})

# What an ended call means for the breaker.
SUCCESS, FAILURE, IGNORED, NO_OUTCOME = range(4)


@dataclass(frozen=True)
class BreakerStats:
    """A snapshot: the window's figures, then lifetime counters."""

    name: str | None
    state: CircuitState
    calls: int
    failures: int
    slow_calls: int
    failure_rate: float
    slow_call_rate: float
    consecutive_failures: int
    rejected: int
    total_calls: int
    total_failures: int
    total_slow_calls: int
    total_ignored: int


class CircuitBreaker(Block, Policy):
    """Trips open on failures, rejects while open, closes again after probes succeed.

    In short (docs/architecture.md has the whole state machine):
    ``failure_threshold`` consecutive failures, or a failure / slow-call rate
    over the window once it holds ``minimum_calls`` calls, trips the circuit;
    it stays open ``reset_timeout`` seconds (doubling per trip in a row up to
    ``reset_timeout_max``), then lets ``half_open_calls`` probes through.

    Exceptions that are instances of ``record`` (and not of ``ignore``) are
    failures; ignored ones count as neither; any other exception counts as a
    success. ``failure_if(result)`` makes returned values failures. While
    open, calls raise ``CircuitOpenError`` or return ``fallback(*args,
    **kwargs)``. Cancellation and interrupts never count. Named holds
    (``hold`` / ``lift_hold``) keep it refusing whatever its state beneath.
    """

    __slots__ = (
        "__weakref__",
        "_clock_arg",
        "_core",
        "_failure_if",
        "_fallback",
        "_ignore",
        "_impl",
        "_listeners",
        "_name",
        "_record",
        "_timed",
        "_transitions",
    )

    def __init__(
        self,
        name: str | None = None,
        *,
        failure_threshold: int = 5,
        failure_rate: float | None = None,
        slow_call_duration: float | None = None,
        slow_call_rate: float | None = None,
        window: int = 100,
        window_duration: float | None = None,
        minimum_calls: int = 10,
        reset_timeout: float = 30.0,
        reset_timeout_max: float | None = None,
        half_open_calls: int = 1,
        record: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        ignore: type[BaseException] | tuple[type[BaseException], ...] = (),
        failure_if: Callable[[Any], bool] | None = None,
        fallback: Callable[..., Any] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._name = check_name(name)
        self._record = check_exception_types("record", record)
        self._ignore = check_exception_types("ignore", ignore)
        self._failure_if = check_callable("failure_if", failure_if)
        self._fallback = check_callable("fallback", fallback)
        self._listeners: list[Callable[[CircuitBreaker, CircuitState, CircuitState], object]] = []
        self._impl = _core.SELECTED  # the twin this breaker and its wrappers run on
        # (old, new) -> count at index old * len(STATES) + new, read by metrics
        self._transitions = self._impl.Counters(len(STATES) ** 2)
        self._core = self._impl.BreakerCore(
            failure_threshold=failure_threshold,
            failure_rate=failure_rate,
            slow_call_duration=slow_call_duration,
            slow_call_rate=slow_call_rate,
            window=window,
            window_duration=window_duration,
            minimum_calls=minimum_calls,
            reset_timeout=reset_timeout,
            reset_timeout_max=reset_timeout_max,
            half_open_calls=half_open_calls,
            clock=clock,
            listener=self._transition,
        )
        self._clock_arg = clock  # None: compiled wrappers read the C monotonic clock
        self._timed = slow_call_duration is not None

    # -- the protocol ------------------------------------------------------------

    def _classify(self, exc: BaseException) -> int:
        if isinstance(exc, NEVER_FAILURES):
            return NO_OUTCOME
        if isinstance(exc, self._ignore):
            return IGNORED
        if isinstance(exc, self._record):
            return FAILURE
        return SUCCESS

    def _settle(self, token: int, error: BaseException | None, result: Any, start: float) -> None:
        """Answer the permit ``token`` with the call's outcome (``start``: when it began)."""
        if error is not None:
            outcome = self._classify(error)
        else:
            failure_if = self._failure_if
            outcome = FAILURE if failure_if is not None and failure_if(result) else SUCCESS
        core = self._core
        if outcome == NO_OUTCOME:
            core.release(token)
        elif outcome == IGNORED:
            core.record_ignored(token)
        else:
            duration = elapsed(self._clock_arg, start) if self._timed else 0.0
            if outcome == FAILURE:
                core.record_failure(duration, None, token)
            else:
                core.record_success(duration, None, token)

    def _open_error(self) -> CircuitOpenError:
        return CircuitOpenError(self._name, self._core.retry_after())

    def _refuse(self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None) -> Replace:
        """A refused call: the fallback's value (not for a with block), else CircuitOpenError."""
        if args is not None and self._fallback is not None:
            return Replace(self._fallback(*args, **(kwargs or {})))
        raise self._open_error()

    def _enter(self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None) -> Any:
        clock = self._clock_arg
        # A user clock is read (and checked) before the permit is taken: a bad
        # reading raises with nothing held and nothing run.
        start = read_now(clock, None) if self._timed or clock is not None else 0.0
        token = self._core.acquire()
        if token < 0:
            return self._refuse(args, kwargs)
        return (token, start) if self._timed else token

    def _exit(self, token: Any, error: BaseException | None, result: Any) -> None:
        if self._timed:
            token, start = token
            self._settle(token, error, result, start)
        else:
            self._settle(token, error, result, 0.0)

    def _fast_sync(self, fn: Callable[..., Any]) -> Any:
        return self._impl.BreakerCall(
            fn,
            self._core,
            self._name,
            self._fallback,
            self._settle,
            self._clock_arg,
            self._timed,
            self._failure_if is not None,
        )

    def _fast_async(self, fn: Callable[..., Any]) -> Any:
        if self._failure_if is not None or self._timed:
            return None  # judging or timing each call: the protocol's own path
        if self._fallback is None:
            return coroutine_function(
                self._impl.AsyncBreakerCall(
                    fn, self._core, self._name, self._settle, self._clock_arg
                )
            )
        return AsyncCall(
            _closed_fast_path, self._core, self._clock_arg, self._settle, self._refuse, fn
        )

    # -- the two-step form -----------------------------------------------------

    def allow(self) -> bool:
        """Take a permit; answer it with one record_success / record_failure / release."""
        return bool(self._core.allow())

    def record_success(self, duration: float = 0.0) -> None:
        self._core.record_success(duration)

    def record_failure(self, duration: float = 0.0) -> None:
        self._core.record_failure(duration)

    def release(self) -> None:
        """Give the permit back with no outcome."""
        self._core.release()

    # -- control and reading -------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        return STATES[self._core.state]

    def force_open(self) -> None:
        """Reject every call until ``reset()`` (``retry_after`` inf); holds are apart from it."""
        self._core.force_open()

    def disable(self) -> None:
        """Let every call through and judge none until ``reset()`` (holds still refuse)."""
        self._core.disable()

    def reset(self) -> None:
        """Back to CLOSED with a fresh window; holds stay until their holders lift them."""
        self._core.reset()

    def hold(self, name: str) -> None:
        """Put a hold called ``name`` on the breaker (a second one of that name adds nothing).

        While any hold is on, every call is refused (``CircuitOpenError`` with
        ``retry_after`` None, or the fallback) and ``state`` is FORCED_OPEN.
        Underneath, the breaker goes on as traffic and the operator leave it:
        calls already let through still count, ``force_open`` / ``disable``
        / ``reset`` still apply, an open timer keeps running. A health check
        given ``isolate=`` holds its breaker, by the check's name, while DOWN.
        """
        self._core.hold(name)

    def lift_hold(self, name: str) -> None:
        """Lift the hold called ``name`` (nothing if there is none).

        Lifting the last hold shows the state beneath again (OPEN with its
        timer, CLOSED, or FORCED_OPEN by ``force_open``); nothing is reset.
        """
        self._core.lift_hold(name)

    @property
    def holds(self) -> frozenset[str]:
        """The names of the holds on the breaker (empty when none)."""
        return frozenset(self._core.holds)

    def on_state_change(
        self, callback: Callable[[CircuitBreaker, CircuitState, CircuitState], object]
    ) -> Callable[[CircuitBreaker, CircuitState, CircuitState], object]:
        """Call ``callback(breaker, old, new)`` on every change of state (usable as a decorator)."""
        return add_listener(self._listeners, callback)

    def _transition(self, old: int, new: int) -> None:
        self._transitions.add(old * len(STATES) + new)
        before, after = STATES[old], STATES[new]
        logger.log(
            logging.WARNING if after in REFUSING else logging.INFO,
            "circuit breaker %r: %s -> %s",
            self._name,
            before,
            after,
            extra={
                "resilience_event": "circuit_breaker.state",
                "resilience_name": self._name,
                "resilience_from_state": before.value,
                "resilience_to_state": after.value,
            },
        )
        notify(self._listeners, self, before, after)

    @property
    def transitions(self) -> dict[tuple[CircuitState, CircuitState], int]:
        """How many times each change of state happened (only those that did)."""
        n = len(STATES)
        return {
            (STATES[i // n], STATES[i % n]): count
            for i, count in enumerate(self._transitions.snapshot())
            if count
        }

    @property
    def stats(self) -> BreakerStats:
        core = self._core
        calls, failures, slow = core.window_totals()
        return BreakerStats(
            name=self._name,
            state=STATES[core.state],
            calls=calls,
            failures=failures,
            slow_calls=slow,
            failure_rate=failures / calls if calls else 0.0,
            slow_call_rate=slow / calls if calls else 0.0,
            consecutive_failures=core.consecutive_failures,
            rejected=core.rejected,
            total_calls=core.total_calls,
            total_failures=core.total_failures,
            total_slow_calls=core.total_slow_calls,
            total_ignored=core.total_ignored,
        )

    def __repr__(self) -> str:
        return f"<CircuitBreaker name={self._name!r} state={self.state.value}>"


async def _closed_fast_path(
    core: Any,
    clock: Callable[[], float] | None,
    settle: Callable[[int, BaseException | None, Any, float], None],
    refuse: Callable[[tuple[Any, ...], dict[str, Any]], Replace],
    fn: Callable[..., Awaitable[Any]],
    /,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """The async decorator of a breaker that neither times nor judges results.

    The protocol's steps, specialised: the permit, the call, and a success
    settled in one core call; anything else goes through the policy's own steps.
    """
    if clock is not None:
        read_now(clock, None)  # checked before the permit is taken
    token = core.acquire()
    if token < 0:
        value = refuse(args, kwargs).value  # CircuitOpenError, or the fallback's value
        return await value if inspect.isawaitable(value) else value
    try:
        result = await fn(*args, **kwargs)
    except BaseException as exc:
        settle(token, exc, None, 0.0)
        raise
    core.record_success(0.0, None, token)
    return result
