"""Circuit-breaker state machine, pure-Python twin of ``_breaker_c.pyx``.

States and transitions::

    CLOSED --trip--> OPEN --reset_timeout passed, next acquire--> HALF_OPEN
    HALF_OPEN --half_open_calls successes--> CLOSED (fresh window)
    HALF_OPEN --any failure--> OPEN (open time doubles, up to reset_timeout_max)
    any --force_open()--> FORCED_OPEN, --disable()--> DISABLED, --reset()--> CLOSED

Holds: ``hold(name)`` puts a named hold on the breaker (a health check
isolating it), ``lift_hold(name)`` lifts that one. While any hold is on,
every permit is refused, ``retry_after`` is None and the state reads
FORCED_OPEN; beneath, the state machine above goes on untouched by the holds:
outcomes of calls already let through still count, an operator's
``force_open`` / ``disable`` / ``reset`` still apply, and an open timer keeps
running. Lifting the last hold shows that state again (OPEN with its timer,
CLOSED, or FORCED_OPEN), never a reset. The listener hears the state as it
reads: a change underneath while held is not a change of state.

Tokens: every transition starts a new generation, numbered from one counter.
In CLOSED (and DISABLED) ``acquire`` hands out the generation itself; in
HALF_OPEN each probe permit gets a number of its own from the same counter
and a slot with the time it was issued. An outcome whose token is neither
the current generation nor a probe still out is counted in the lifetime
totals but changes nothing, so a slow call that started before a trip cannot
close or reopen the circuit. A probe out for longer than the current open
duration is taken back when a permit is wanted, each on its own clock.
Outcomes given without a token (-1) apply to whatever the state is now (the
two-step form; in HALF_OPEN they settle the oldest probe).

The listener, if any, is called as ``listener(old, new)`` after each change of
state, outside the lock; it must not raise.

Speed: ``acquire`` and the ``record_*`` methods are what a protected call
costs, so they check plain arguments inline (the shared checks in
``_validate`` run only for anything else, and raise the same errors), take
the lock with acquire/try/finally rather than ``with`` (on CPython that skips
the __enter__/__exit__ lookups and calls, most of the cost of a short
critical section), and settle the common cases inline: a permit in CLOSED or
DISABLED, a rejection in OPEN, an outcome in CLOSED with a count window. Two
reads need no lock at all, as they change nothing: ``_permit`` (the
generation while CLOSED or DISABLED and not held, else -1, one attribute
that ``_enter`` and the holds keep under the lock) and, for a release,
whether the state is HALF_OPEN (only there does settling a token change
anything).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from time import monotonic
from typing import Any

from . import _fork
from ._clock_py import read_now
from ._nocopy import NoCopy
from ._validate import clock as check_clock
from ._validate import (
    clock_reading,
    count,
    finite,
    non_negative_finite,
    optional,
    positive,
    ratio,
    slice_width,
)
from ._validate import generation as check_generation
from ._window_py import MAX_WINDOW_CALLS, CountWindow, TimeWindow, default_buckets

CLOSED = 0
OPEN = 1
HALF_OPEN = 2
FORCED_OPEN = 3
DISABLED = 4

STATE_NAMES = ("CLOSED", "OPEN", "HALF_OPEN", "FORCED_OPEN", "DISABLED")

FREE = -1  # a probe slot with no permit out

# ``t`` before the time has been read: the monotonic clock is read under the
# lock only when an operation needs it (a trip, a time window).
UNREAD = math.nan

INF = math.inf
MAX_GENERATION = sys.maxsize
FAILURE = 1  # the bits of a call in a CountWindow's ring
SLOW = 2

Listener = Callable[[int, int], object]


def hold_name(value: object) -> str:
    """A hold's name: a non-empty str (shared by both twins, so both say the same)."""
    if not isinstance(value, str):
        raise TypeError(f"name must be a non-empty str, got {value!r}")
    if not value:
        raise ValueError(f"name must be a non-empty str, got {value!r}")
    return value


def check_slow_call_rule(slow_call_rate: float | None, slow_call_duration: float | None) -> None:
    """A slow-call rate needs a duration that makes a call slow: refuse one without the other."""
    if slow_call_rate is not None and slow_call_duration is None:
        raise ValueError(
            "slow_call_rate needs slow_call_duration (how long a slow call lasts),"
            f" got slow_call_rate={slow_call_rate!r} with slow_call_duration=None"
        )


# Half-open probe slots are allocated up front, two words each.
MAX_HALF_OPEN_CALLS = 100_000


def check_window(window: Any, window_duration: Any) -> tuple[int, float | None]:
    """The window's size in calls and its duration in seconds (None: it counts calls).

    Checked here, under the breaker's own argument names, before a window
    is built from them (its own checks would name its parameters).
    """
    size = count("window", window, maximum=MAX_WINDOW_CALLS)
    duration = optional(positive, "window_duration", window_duration)
    if duration is not None:
        slice_width("window_duration", duration, default_buckets(duration))
    return size, duration


class BreakerCore(NoCopy):
    """The whole state machine of ``CircuitBreaker``, with its counters."""

    __slots__ = (
        "_clock",
        "_consecutive_failures",
        "_count_window",
        "_counter",
        "_failure_rate",
        "_failure_threshold",
        "_generation",
        "_half_open_calls",
        "_holds",
        "_last",
        "_listener",
        "_lock",
        "_minimum_calls",
        "_open_duration",
        "_opened_at",
        "_permit",
        "_probe_successes",
        "_probe_times",
        "_probe_tokens",
        "_probes_out",
        "_rated",
        "_rejected",
        "_reset_timeout",
        "_reset_timeout_max",
        "_slow_call_duration",
        "_slow_call_rate",
        "_slow_limit",
        "_state",
        "_timed_window",
        "_total_calls",
        "_total_failures",
        "_total_ignored",
        "_total_slow_calls",
        "_trips",
        "_window",
    )

    def __init__(
        self,
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
        clock: Callable[[], float] | None = None,
        listener: Listener | None = None,
    ) -> None:
        self._failure_threshold = count("failure_threshold", failure_threshold, 0)
        self._failure_rate = optional(ratio, "failure_rate", failure_rate)
        self._slow_call_duration = optional(positive, "slow_call_duration", slow_call_duration)
        # A call is slow when its duration (finite) reaches this: never without the rule.
        self._slow_limit = INF if self._slow_call_duration is None else self._slow_call_duration
        self._slow_call_rate = optional(ratio, "slow_call_rate", slow_call_rate)
        check_slow_call_rule(self._slow_call_rate, self._slow_call_duration)
        size, duration = check_window(window, window_duration)
        self._minimum_calls = count("minimum_calls", minimum_calls)
        self._reset_timeout = positive("reset_timeout", reset_timeout)
        self._reset_timeout_max = optional(positive, "reset_timeout_max", reset_timeout_max)
        if self._reset_timeout_max is not None and self._reset_timeout_max < self._reset_timeout:
            raise ValueError(
                f"reset_timeout_max must be >= reset_timeout ({reset_timeout!r}),"
                f" got {reset_timeout_max!r}"
            )
        self._half_open_calls = count(
            "half_open_calls", half_open_calls, maximum=MAX_HALF_OPEN_CALLS
        )
        self._clock = check_clock(clock)
        if listener is not None and not callable(listener):
            raise TypeError(f"listener must be callable or None, got {listener!r}")
        self._listener = listener
        self._window: CountWindow | TimeWindow
        # The window again when it counts calls (the outcomes' fast path), else None.
        self._count_window: CountWindow | None
        if duration is None:
            self._window = self._count_window = CountWindow(size)
            self._minimum_calls = min(self._minimum_calls, size)
            self._timed_window = False
        else:
            self._window = TimeWindow(duration, clock=clock)
            self._count_window = None
            self._timed_window = True
        # Whether a rate rule is on: without one, a success cannot trip.
        self._rated = self._failure_rate is not None or self._slow_call_rate is not None
        self._lock = _fork.lock()
        self._holds: set[str] = set()
        self._state = CLOSED
        self._counter = 0
        self._generation = 0
        self._permit = 0
        self._last = -math.inf
        self._opened_at = 0.0
        self._open_duration = self._reset_timeout
        self._trips = 0
        self._consecutive_failures = 0
        self._probes_out = 0
        self._probe_successes = 0
        self._probe_tokens = [FREE] * self._half_open_calls
        self._probe_times = [0.0] * self._half_open_calls
        self._rejected = 0
        self._total_calls = 0
        self._total_failures = 0
        self._total_slow_calls = 0
        self._total_ignored = 0

    # -- time ------------------------------------------------------------

    def _given_time(self, now: float | None) -> float:
        """Read a given ``now`` or a user clock before taking the lock."""
        if now is None and self._clock is None:
            return UNREAD
        return read_now(self._clock, now)

    def _time(self, t: float) -> float:
        """Under the lock: the operation's time, read now if it was not.

        A reading before the last one shifts every stored time by the step
        (the window shifts its own): an open circuit stays open for what was
        left of its timeout, and ``retry_after`` says so, instead of staying
        open until the clock comes back. Idempotent for a repeated reading.
        """
        if t != t:
            t = monotonic()
        if t < self._last:
            self._shift(t - self._last)
        self._last = t
        return t

    def _shift(self, step: float) -> None:
        self._opened_at += step
        for i in range(self._half_open_calls):
            self._probe_times[i] += step

    # -- transitions -----------------------------------------------------

    def _enter(self, state: int, t: float) -> tuple[int, int] | None:
        """Move to ``state``; returns ``(old, new)`` for the listener, or None if unchanged.

        While held the state read stays FORCED_OPEN: no change to announce.
        """
        old = self._state
        self._state = state
        self._counter += 1
        self._generation = self._counter
        self._permit = self._counter if state in (CLOSED, DISABLED) and not self._holds else -1
        for i in range(self._half_open_calls):
            self._probe_tokens[i] = FREE
        self._probes_out = 0
        self._probe_successes = 0
        if state == OPEN:
            self._trips += 1
            if self._trips == 1 or self._reset_timeout_max is None:
                self._open_duration = self._reset_timeout
            else:
                self._open_duration = min(self._open_duration * 2.0, self._reset_timeout_max)
            self._opened_at = self._time(t)
        elif state == CLOSED:
            self._trips = 0
            self._consecutive_failures = 0
            self._window._clear()
        return None if old == state or self._holds else (old, state)

    def _notify(self, change: tuple[int, int] | None) -> None:
        if change is not None and self._listener is not None:
            self._listener(change[0], change[1])

    def _open_if_due(self, t: float) -> tuple[int, int] | None:
        """OPEN turns HALF_OPEN once the open time has passed."""
        if self._state == OPEN:
            t = self._time(t)
            if t >= self._opened_at + self._open_duration:
                return self._enter(HALF_OPEN, t)
        return None

    # -- permits -----------------------------------------------------------

    def refuses_now(self) -> bool:
        """Whether ``acquire`` would refuse now: held, forced open, or open with
        time to go. Takes nothing and changes no state; reads no clock
        unless the breaker is open."""
        if self._permit >= 0:
            return False
        t = self._given_time(None)
        with self._lock:
            if self._holds or self._state == FORCED_OPEN:
                return True
            return self._state == OPEN and self._time(t) < self._opened_at + self._open_duration

    def acquire(self, now: float | None = None) -> int:
        """Take a permit: a token for its outcome, or -1 when the call is refused."""
        token = self._permit  # CLOSED or DISABLED: the generation, no lock needed
        if token >= 0:
            return token
        # _given_time, inlined
        if now is None:
            clock = self._clock
            if clock is None:
                t = UNREAD
            else:
                t = clock()
                if type(t) is not float or t - t != 0.0:
                    t = clock_reading(t)
        elif type(now) is float and now - now == 0.0:
            t = now
        else:
            t = finite("now", now)
        lock = self._lock
        lock.acquire()
        try:
            if self._holds:  # refused, whatever the state underneath
                self._rejected += 1
                return -1
            state = self._state
            if state == OPEN:
                # _open_if_due's time and test, inlined: a rejection needs no more.
                if t != t:
                    t = monotonic()
                if t < self._last:
                    self._shift(t - self._last)
                self._last = t
                if t < self._opened_at + self._open_duration:
                    self._rejected += 1
                    return -1
            elif state == FORCED_OPEN:
                self._rejected += 1
                return -1
            token, change = self._acquire(t)
        finally:
            lock.release()
        if change is not None and self._listener is not None:
            self._listener(change[0], change[1])
        return token

    def _acquire(self, t: float) -> tuple[int, tuple[int, int] | None]:
        """Under the lock, not held: a permit, or -1; and the change it made, if any."""
        change = self._open_if_due(t)
        state = self._state
        if state in (CLOSED, DISABLED):
            return self._generation, change
        if state == HALF_OPEN:
            t = self._time(t)
            if self._probes_out >= self._half_open_calls:
                self._take_back_lost_probes(t)
            if self._probes_out < self._half_open_calls:
                return self._issue_probe(t), change
        self._rejected += 1
        return -1, change

    def _issue_probe(self, t: float) -> int:
        i = self._probe_tokens.index(FREE)
        self._counter += 1
        self._probe_tokens[i] = self._counter
        self._probe_times[i] = t
        self._probes_out += 1
        return self._counter

    def _take_back_lost_probes(self, t: float) -> None:
        # A late outcome of a probe taken back finds no slot: it is ignored.
        for i in range(self._half_open_calls):
            if self._probe_tokens[i] != FREE and t >= self._probe_times[i] + self._open_duration:
                self._probe_tokens[i] = FREE
                self._probes_out -= 1

    def _settle(self, token: int) -> bool:
        """Whether an outcome with this token applies; frees its probe slot if it has one."""
        if self._state != HALF_OPEN:
            return token == -1 or token == self._generation
        if token == -1:
            if self._probes_out == 0:
                return True
            token = min(p for p in self._probe_tokens if p != FREE)  # the oldest probe
        for i in range(self._half_open_calls):
            if self._probe_tokens[i] == token:
                self._probe_tokens[i] = FREE
                self._probes_out -= 1
                return True
        return False

    def allow(self, now: float | None = None) -> bool:
        """Two-step form: take a permit; answer it with one record_* or release()."""
        return self.acquire(now) >= 0

    # -- outcomes ----------------------------------------------------------

    def record_success(
        self, duration: float = 0.0, now: float | None = None, generation: int = -1
    ) -> None:
        """A permitted call succeeded (slow when it took ``slow_call_duration`` or more)."""
        # The arguments' checks and _given_time, inlined for plain arguments.
        if type(duration) is not float or (duration != 0.0 and not 0.0 < duration < INF):
            duration = non_negative_finite("duration", duration)
        if type(generation) is not int or not -1 <= generation <= MAX_GENERATION:
            generation = check_generation(generation)
        if now is None:
            clock = self._clock
            if clock is None:
                t = UNREAD
            else:
                t = clock()
                if type(t) is not float or t - t != 0.0:
                    t = clock_reading(t)
        elif type(now) is float and now - now == 0.0:
            t = now
        else:
            t = finite("now", now)
        slow = duration >= self._slow_limit
        change = None
        lock = self._lock
        lock.acquire()
        try:
            # _apply, inlined for the outcomes that settle in a few stores.
            self._total_calls += 1
            if slow:
                self._total_slow_calls += 1
            state = self._state
            if state == CLOSED:
                if generation == self._generation or generation == -1:
                    self._consecutive_failures = 0
                    window = self._count_window
                    if window is None:
                        change = self._judge(False, slow, t)
                    else:
                        # CountWindow._record, inlined
                        bits = SLOW if slow else 0
                        head = window._head
                        if window._filled == window._size:
                            old = window._ring[head]
                            if old != bits:
                                window._ring[head] = bits
                                window._failures -= old & FAILURE
                                window._slow += (bits >> 1) - (old >> 1)
                        else:
                            window._filled += 1
                            window._calls += 1
                            window._ring[head] = bits
                            window._slow += bits >> 1
                        head += 1
                        window._head = 0 if head == window._size else head
                        # No failure streak after a success: only a rate rule can trip.
                        if self._rated and self._should_trip():
                            change = self._enter(OPEN, t)
            elif state == HALF_OPEN:
                change = self._probe_outcome(False, t, generation)
            # OPEN, FORCED_OPEN, DISABLED: an outcome changes nothing but the totals.
        finally:
            lock.release()
        if change is not None and self._listener is not None:
            self._listener(change[0], change[1])

    def record_failure(
        self, duration: float = 0.0, now: float | None = None, generation: int = -1
    ) -> None:
        """A permitted call failed."""
        # As record_success.
        if type(duration) is not float or (duration != 0.0 and not 0.0 < duration < INF):
            duration = non_negative_finite("duration", duration)
        if type(generation) is not int or not -1 <= generation <= MAX_GENERATION:
            generation = check_generation(generation)
        if now is None:
            clock = self._clock
            if clock is None:
                t = UNREAD
            else:
                t = clock()
                if type(t) is not float or t - t != 0.0:
                    t = clock_reading(t)
        elif type(now) is float and now - now == 0.0:
            t = now
        else:
            t = finite("now", now)
        slow = duration >= self._slow_limit
        change = None
        lock = self._lock
        lock.acquire()
        try:
            self._total_calls += 1
            self._total_failures += 1
            if slow:
                self._total_slow_calls += 1
            state = self._state
            if state == CLOSED:
                if generation == self._generation or generation == -1:
                    streak = self._consecutive_failures + 1
                    self._consecutive_failures = streak
                    window = self._count_window
                    if window is None:
                        change = self._judge(True, slow, t)
                    else:
                        # CountWindow._record, inlined
                        bits = FAILURE | SLOW if slow else FAILURE
                        head = window._head
                        if window._filled == window._size:
                            old = window._ring[head]
                            if old != bits:
                                window._ring[head] = bits
                                window._failures += FAILURE - (old & FAILURE)
                                window._slow += (bits >> 1) - (old >> 1)
                        else:
                            window._filled += 1
                            window._calls += 1
                            window._ring[head] = bits
                            window._failures += FAILURE
                            window._slow += bits >> 1
                        head += 1
                        window._head = 0 if head == window._size else head
                        # _should_trip's first rule inlined; without a rate rule, the only one.
                        if 0 < self._failure_threshold <= streak or (
                            self._rated and self._should_trip()
                        ):
                            change = self._enter(OPEN, t)
            elif state == HALF_OPEN:
                change = self._probe_outcome(True, t, generation)
        finally:
            lock.release()
        if change is not None and self._listener is not None:
            self._listener(change[0], change[1])

    def _judge(self, failure: bool, slow: bool, t: float) -> tuple[int, int] | None:
        """Under the lock, in CLOSED: a current outcome into the (time) window, then the rules."""
        if self._timed_window:
            t = self._time(t)
        self._window._record(t, failure, slow)
        if self._should_trip():
            return self._enter(OPEN, t)
        return None

    def _probe_outcome(self, failure: bool, t: float, generation: int) -> tuple[int, int] | None:
        """Under the lock, in HALF_OPEN: a probe's outcome."""
        if not self._settle(generation):
            return None
        if failure:
            return self._enter(OPEN, t)
        self._probe_successes += 1
        if self._probe_successes >= self._half_open_calls:
            return self._enter(CLOSED, t)
        return None

    def _should_trip(self) -> bool:
        # The window was just advanced by _record, so its totals are current.
        if 0 < self._failure_threshold <= self._consecutive_failures:
            return True
        window = self._window
        calls = window._calls
        if calls < self._minimum_calls:
            return False
        if self._failure_rate is not None and window._failures / calls >= self._failure_rate:
            return True
        return self._slow_call_rate is not None and window._slow / calls >= self._slow_call_rate

    def release(self, generation: int = -1) -> None:
        """Give a permit back with no outcome (a half-open probe may be issued again)."""
        if type(generation) is not int or not -1 <= generation <= MAX_GENERATION:
            generation = check_generation(generation)
        if self._state != HALF_OPEN:
            return  # settling changes nothing outside HALF_OPEN: no lock needed
        lock = self._lock
        lock.acquire()
        try:
            self._settle(generation)
        finally:
            lock.release()

    def record_ignored(self, generation: int = -1) -> None:
        """The call ended in an ignored exception: counted, then released."""
        if type(generation) is not int or not -1 <= generation <= MAX_GENERATION:
            generation = check_generation(generation)
        lock = self._lock
        lock.acquire()
        try:
            self._total_ignored += 1
            if self._state == HALF_OPEN:  # elsewhere settling changes nothing
                self._settle(generation)
        finally:
            lock.release()

    # -- manual control ----------------------------------------------------

    def force_open(self) -> None:
        """Reject every call until ``reset()`` (holds are apart: see ``hold``)."""
        self._force(FORCED_OPEN)

    def disable(self) -> None:
        """Permit every call and judge none until ``reset()``."""
        self._force(DISABLED)

    def reset(self) -> None:
        """Back to CLOSED with a fresh window and the first open time."""
        self._force(CLOSED)

    def _force(self, state: int) -> None:
        with self._lock:
            change = self._enter(state, 0.0)
        self._notify(change)

    def open_for(self, seconds: float, now: float | None = None) -> None:
        """Trip OPEN now for ``seconds`` (a decision made elsewhere, such as a
        fleet's): then HALF_OPEN as after any trip. Counts as a trip."""
        duration = positive("seconds", seconds)
        t = self._given_time(now)
        with self._lock:
            t = self._time(t)
            change = self._enter(OPEN, t)
            self._open_duration = duration
        self._notify(change)

    def half_open(self, now: float | None = None) -> None:
        """Move to HALF_OPEN now, its probes all free (a decision made elsewhere)."""
        t = self._given_time(now)
        with self._lock:
            change = self._enter(HALF_OPEN, self._time(t))
        self._notify(change)

    def hold(self, name: str) -> None:
        """Put a hold called ``name`` on the breaker (one already on: nothing changes).

        While any hold is on, every permit is refused and the state reads
        FORCED_OPEN; what lies underneath is left as it is.
        """
        name = hold_name(name)
        change = None
        with self._lock:
            if name in self._holds:
                return
            self._holds.add(name)
            if len(self._holds) == 1:
                self._permit = -1
                if self._state != FORCED_OPEN:
                    change = (self._state, FORCED_OPEN)
        self._notify(change)

    def lift_hold(self, name: str) -> None:
        """Lift the hold called ``name`` (none: nothing); the last one shows the state beneath."""
        name = hold_name(name)
        change = None
        with self._lock:
            if name not in self._holds:
                return
            self._holds.discard(name)
            if not self._holds:
                state = self._state
                self._permit = self._generation if state in (CLOSED, DISABLED) else -1
                if state != FORCED_OPEN:
                    change = (FORCED_OPEN, state)
        self._notify(change)

    @property
    def holds(self) -> frozenset[str]:
        """The names of the holds on the breaker."""
        with self._lock:
            return frozenset(self._holds)

    # -- reading -------------------------------------------------------------

    def current_state(self, now: float | None = None) -> int:
        """The state at ``now``, after the due OPEN -> HALF_OPEN move, if any.

        FORCED_OPEN while held, whatever the state beneath.
        """
        t = self._given_time(now)
        with self._lock:
            if self._holds:
                return FORCED_OPEN
            change = self._open_if_due(t)
            state = self._state
        self._notify(change)
        return state

    @property
    def state(self) -> int:
        """``current_state()`` read with the clock."""
        return self.current_state()

    def retry_after(self, now: float | None = None) -> float | None:
        """Seconds until a call may be let through: 0 when one may now, inf when forced open.

        None while held: a hold ends when its holder lifts it, which no clock can tell.
        """
        t = self._given_time(now)
        lock = self._lock
        lock.acquire()
        try:
            if self._holds:
                return None
            state = self._state
            if state == FORCED_OPEN:
                return INF
            if state == OPEN:
                return max(0.0, self._opened_at + self._open_duration - self._time(t))
            if state == HALF_OPEN and self._probes_out >= self._half_open_calls:
                oldest = min(self._probe_times)  # every slot is taken
                return max(0.0, oldest + self._open_duration - self._time(t))
            return 0.0
        finally:
            lock.release()

    def window_totals(self, now: float | None = None) -> tuple[int, int, int]:
        """``(calls, failures, slow_calls)`` in the current window."""
        t = self._given_time(now)
        with self._lock:
            if self._timed_window:
                t = self._time(t)
            return self._window._totals(t)

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def open_duration(self) -> float:
        """How long the latest trip keeps (or kept) the circuit open."""
        return self._open_duration

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    @property
    def half_open_probes(self) -> int:
        """Probe permits out while HALF_OPEN."""
        return self._probes_out

    @property
    def rejected(self) -> int:
        return self._rejected

    @property
    def total_calls(self) -> int:
        """Outcomes recorded in all (successes and failures, late ones included)."""
        return self._total_calls

    @property
    def total_failures(self) -> int:
        return self._total_failures

    @property
    def total_slow_calls(self) -> int:
        return self._total_slow_calls

    @property
    def total_ignored(self) -> int:
        return self._total_ignored

    def __repr__(self) -> str:
        # The state beneath, and the holds over it if any.
        holds = f" holds={sorted(self._holds)!r}" if self._holds else ""
        return (
            f"<BreakerCore state={STATE_NAMES[self._state]}{holds}"
            f" generation={self._generation}>"
        )
