# cython: auto_pickle=False
"""Circuit-breaker state machine, compiled twin of ``_breaker_py.py``.

The pure twin's docstring describes the states, transitions and
generations; this module follows it line for line with C fields. A change of
state is returned from the cdef methods as ``old * 8 + new`` (``NO_CHANGE``
when there was none) and handed to the listener after the critical section.
"""

cimport cython
from cpython.exc cimport PyErr_Clear, PyErr_Occurred
from cpython.long cimport PyLong_CheckExact
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.set cimport PySet_GET_SIZE
from libc.limits cimport LLONG_MAX
from libc.math cimport INFINITY, NAN

from resilience._core._clock_c cimport NON_NEGATIVE_FINITE, as_number, monotonic, read_now
from resilience._core._window_c cimport CountWindow, TimeWindow

from resilience._core._nocopy import refuse_copy
from resilience._core._breaker_py import (
    MAX_HALF_OPEN_CALLS,
    STATE_NAMES,
    check_slow_call_rule,
    check_window,
    hold_name,
)
from resilience._core._validate import clock as check_clock
from resilience._core._validate import count, optional, positive, ratio
from resilience._core._validate import generation as check_generation

cdef extern from "Python.h":
    # Declared without an exception value: overflow goes to the Python check.
    long long PyLong_AsLongLong(object value) noexcept


cdef inline long long as_generation(object value) except? -2:
    """A token from acquire() or -1; anything else goes through the Python check."""
    cdef long long result
    if PyLong_CheckExact(value):
        result = PyLong_AsLongLong(value)
        if result == -1 and PyErr_Occurred():
            PyErr_Clear()
        elif result >= -1:
            return result
    return check_generation(value)


cdef enum:
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2
    FORCED_OPEN = 3
    DISABLED = 4
    NO_CHANGE = -1
    FREE = -1


cdef class BreakerCore:
    """The whole state machine of ``CircuitBreaker``, with its counters."""

    __reduce_ex__ = refuse_copy  # neither copied nor pickled

    def __cinit__(self, *args, **kwargs):
        self._probe_tokens = NULL
        self._probe_times = NULL
        self._holds = set()  # never None: the cdef methods read its size unchecked

    def __dealloc__(self):
        PyMem_Free(self._probe_tokens)
        PyMem_Free(self._probe_times)

    def __init__(
        self,
        *,
        failure_threshold=5,
        failure_rate=None,
        slow_call_duration=None,
        slow_call_rate=None,
        window=100,
        window_duration=None,
        minimum_calls=10,
        reset_timeout=30.0,
        reset_timeout_max=None,
        half_open_calls=1,
        clock=None,
        listener=None,
    ):
        self._failure_threshold = count("failure_threshold", failure_threshold, 0)
        self._failure_rate = optional(ratio, "failure_rate", failure_rate) or 0.0
        slow = optional(positive, "slow_call_duration", slow_call_duration)
        slow_rate = optional(ratio, "slow_call_rate", slow_call_rate)
        check_slow_call_rule(slow_rate, slow)
        self._slow_call_duration = slow or 0.0
        self._slow_call_rate = slow_rate or 0.0
        size, duration = check_window(window, window_duration)
        self._minimum_calls = count("minimum_calls", minimum_calls)
        self._reset_timeout = positive("reset_timeout", reset_timeout)
        self._reset_timeout_max = (
            optional(positive, "reset_timeout_max", reset_timeout_max) or 0.0
        )
        if 0.0 < self._reset_timeout_max < self._reset_timeout:
            raise ValueError(
                f"reset_timeout_max must be >= reset_timeout ({reset_timeout!r}),"
                f" got {reset_timeout_max!r}"
            )
        self._half_open_calls = count(
            "half_open_calls", half_open_calls, maximum=MAX_HALF_OPEN_CALLS
        )
        PyMem_Free(self._probe_tokens)
        PyMem_Free(self._probe_times)
        # Calloc checks count * size for overflow; a huge count is a MemoryError.
        self._probe_tokens = <long long*>PyMem_Calloc(self._half_open_calls, sizeof(long long))
        self._probe_times = <double*>PyMem_Calloc(self._half_open_calls, sizeof(double))
        if self._probe_tokens is NULL or self._probe_times is NULL:
            raise MemoryError()
        self._clock = check_clock(clock)
        if listener is not None and not callable(listener):
            raise TypeError(f"listener must be callable or None, got {listener!r}")
        self._listener = listener
        if duration is None:
            self._window = CountWindow(size)
            self._minimum_calls = min(self._minimum_calls, size)
            self._timed_window = False
        else:
            self._window = TimeWindow(duration, clock=clock)
            self._timed_window = True
        self._holds.clear()
        self._state = CLOSED
        self._counter = 0
        self._generation = 0
        self._permit = 0
        self._last = -INFINITY
        self._opened_at = 0.0
        self._open_duration = self._reset_timeout
        self._trips = 0
        self._consecutive_failures = 0
        self._probes_out = 0
        self._probe_successes = 0
        for i in range(self._half_open_calls):
            self._probe_tokens[i] = FREE
            self._probe_times[i] = 0.0
        self._rejected = 0
        self._total_calls = 0
        self._total_failures = 0
        self._total_slow_calls = 0
        self._total_ignored = 0

    # -- time ------------------------------------------------------------

    cdef double _given_time(self, object now) except? -1.0:
        """Read a given ``now`` or a user clock before the critical section."""
        if now is None and self._clock is None:
            return NAN
        return read_now(self._clock, now)

    cdef double _time(self, double t) noexcept:
        """In the critical section: the operation's time, read now if it was
        not (the C clock runs no Python code). A reading before the last one
        shifts every stored time by the step (see _time in _breaker_py.py)."""
        if t != t:
            t = monotonic()
        if t < self._last:
            self._shift(t - self._last)
        self._last = t
        return t

    cdef void _shift(self, double step) noexcept:
        cdef Py_ssize_t i
        self._opened_at += step
        for i in range(self._half_open_calls):
            self._probe_times[i] += step

    # -- transitions -----------------------------------------------------

    cdef int _enter(self, int state, double t) noexcept:
        cdef int old = self._state
        cdef Py_ssize_t i
        cdef bint held = PySet_GET_SIZE(self._holds) != 0
        self._state = state
        self._counter += 1
        self._generation = self._counter
        self._permit = self._counter if (state == CLOSED or state == DISABLED) and not held else -1
        for i in range(self._half_open_calls):
            self._probe_tokens[i] = FREE
        self._probes_out = 0
        self._probe_successes = 0
        if state == OPEN:
            self._trips += 1
            if self._trips == 1 or self._reset_timeout_max == 0.0:
                self._open_duration = self._reset_timeout
            else:
                self._open_duration = min(self._open_duration * 2.0, self._reset_timeout_max)
            self._opened_at = self._time(t)
        elif state == CLOSED:
            self._trips = 0
            self._consecutive_failures = 0
            self._window._clear()
        # While held the state read stays FORCED_OPEN: no change to announce.
        return NO_CHANGE if old == state or held else old * 8 + state

    cdef inline int _notify(self, int change) except -1:
        if change != NO_CHANGE and self._listener is not None:
            self._listener(change // 8, change % 8)
        return 0

    cdef int _open_if_due(self, double t) noexcept:
        if self._state == OPEN:
            t = self._time(t)
            if t >= self._opened_at + self._open_duration:
                return self._enter(HALF_OPEN, t)
        return NO_CHANGE

    # -- permits -----------------------------------------------------------

    def acquire(self, now=None):
        """Take a permit: a token for its outcome, or -1 when the call is refused."""
        return self.take(now)

    cdef long long take(self, object now) except? -2:
        """``acquire`` for compiled callers (the policy wrappers)."""
        cdef double t
        cdef long long token
        cdef int change = NO_CHANGE
        with cython.critical_section(self):
            token = self._permit  # CLOSED or DISABLED, not held: the generation
            if token >= 0:
                return token
        t = self._given_time(now)
        with cython.critical_section(self):
            token = self._acquire(t, &change)
        self._notify(change)
        return token

    cpdef bint refuses_now(self) except -1:
        """Whether ``take`` would refuse now: held, forced open, or open with
        time to go. Takes nothing and changes no state; reads no clock
        unless the breaker is open."""
        cdef double t
        if self._permit >= 0:
            return False
        t = self._given_time(None)
        with cython.critical_section(self):
            if PySet_GET_SIZE(self._holds) != 0 or self._state == FORCED_OPEN:
                return True
            return self._state == OPEN and self._time(t) < self._opened_at + self._open_duration

    cdef long long _acquire(self, double t, int* change) noexcept:
        cdef int state
        if PySet_GET_SIZE(self._holds) != 0:  # refused, whatever the state underneath
            self._rejected += 1
            return -1
        change[0] = self._open_if_due(t)
        state = self._state
        if state == CLOSED or state == DISABLED:
            return self._generation
        if state == HALF_OPEN:
            t = self._time(t)
            if self._probes_out >= self._half_open_calls:
                self._take_back_lost_probes(t)
            if self._probes_out < self._half_open_calls:
                return self._issue_probe(t)
        self._rejected += 1
        return -1

    cdef long long _issue_probe(self, double t) noexcept:
        cdef Py_ssize_t i = 0
        while self._probe_tokens[i] != FREE:
            i += 1
        self._counter += 1
        self._probe_tokens[i] = self._counter
        self._probe_times[i] = t
        self._probes_out += 1
        return self._counter

    cdef void _take_back_lost_probes(self, double t) noexcept:
        # A late outcome of a probe taken back finds no slot: it is ignored.
        cdef Py_ssize_t i
        for i in range(self._half_open_calls):
            if self._probe_tokens[i] != FREE and t >= self._probe_times[i] + self._open_duration:
                self._probe_tokens[i] = FREE
                self._probes_out -= 1

    cdef bint _settle(self, long long token) noexcept:
        """Whether an outcome with this token applies; frees its probe slot if it has one."""
        cdef Py_ssize_t i
        if self._state != HALF_OPEN:
            return token == -1 or token == self._generation
        if token == -1:
            if self._probes_out == 0:
                return True
            token = LLONG_MAX
            for i in range(self._half_open_calls):  # the oldest probe
                if self._probe_tokens[i] != FREE and self._probe_tokens[i] < token:
                    token = self._probe_tokens[i]
        for i in range(self._half_open_calls):
            if self._probe_tokens[i] == token:
                self._probe_tokens[i] = FREE
                self._probes_out -= 1
                return True
        return False

    def allow(self, now=None):
        """Two-step form: take a permit; answer it with one record_* or release()."""
        return self.acquire(now) >= 0

    # -- outcomes ----------------------------------------------------------

    def record_success(self, duration=0.0, now=None, generation=-1):
        """A permitted call succeeded (slow when it took ``slow_call_duration`` or more)."""
        cdef double d = as_number(duration, "duration", NON_NEGATIVE_FINITE)
        self.settle(False, d, as_generation(generation), now)

    def record_failure(self, duration=0.0, now=None, generation=-1):
        """A permitted call failed."""
        cdef double d = as_number(duration, "duration", NON_NEGATIVE_FINITE)
        self.settle(True, d, as_generation(generation), now)

    cdef int settle(self, bint failure, double duration, long long token, object now) except -1:
        """``record_failure`` / ``record_success`` for compiled callers, arguments checked."""
        cdef double t = self._given_time(now)
        cdef int change
        with cython.critical_section(self):
            change = self._apply(failure, duration, t, token)
        self._notify(change)
        return 0

    cdef int succeed(self, long long token) except -1:
        """``record_success(0.0, None, token)`` for compiled callers.

        The common case — CLOSED, the token current, a count window, no rate
        rule that a success could complete — needs no clock and cannot
        trip, so it is settled here in a few stores.
        """
        with cython.critical_section(self):
            if (
                self._state == CLOSED
                and token == self._generation
                and not self._timed_window
                and self._failure_rate == 0.0
                and self._slow_call_rate == 0.0
            ):
                self._total_calls += 1
                self._consecutive_failures = 0
                self._window._record(0.0, False, False)
                return 0
        return self.settle(False, 0.0, token, None)

    cdef int _apply(self, bint failure, double duration, double t, long long generation) noexcept:
        cdef bint slow = self._slow_call_duration > 0.0 and duration >= self._slow_call_duration
        self._total_calls += 1
        if failure:
            self._total_failures += 1
        if slow:
            self._total_slow_calls += 1
        if not self._settle(generation):
            return NO_CHANGE
        cdef int state = self._state
        if state == CLOSED:
            if failure:
                self._consecutive_failures += 1
            else:
                self._consecutive_failures = 0
            if self._timed_window:
                t = self._time(t)
            self._window._record(t, failure, slow)
            if self._should_trip():
                return self._enter(OPEN, t)
        elif state == HALF_OPEN:
            if failure:
                return self._enter(OPEN, t)
            self._probe_successes += 1
            if self._probe_successes >= self._half_open_calls:
                return self._enter(CLOSED, t)
        return NO_CHANGE

    cdef bint _should_trip(self) noexcept:
        # The window was just advanced by _record, so its totals are current.
        if 0 < self._failure_threshold <= self._consecutive_failures:
            return True
        cdef long long calls = self._window._calls
        if calls < self._minimum_calls:
            return False
        if self._failure_rate > 0.0 and (
            <double>self._window._failures / <double>calls >= self._failure_rate
        ):
            return True
        return self._slow_call_rate > 0.0 and (
            <double>self._window._slow / <double>calls >= self._slow_call_rate
        )

    def release(self, generation=-1):
        """Give a permit back with no outcome (a half-open probe may be issued again)."""
        cdef long long g = as_generation(generation)
        with cython.critical_section(self):
            self._settle(g)

    def record_ignored(self, generation=-1):
        """The call ended in an ignored exception: counted, then released."""
        cdef long long g = as_generation(generation)
        with cython.critical_section(self):
            self._total_ignored += 1
            self._settle(g)

    # -- manual control ----------------------------------------------------

    def force_open(self):
        """Reject every call until ``reset()`` (holds are apart: see ``hold``)."""
        self._force(FORCED_OPEN)

    def disable(self):
        """Permit every call and judge none until ``reset()``."""
        self._force(DISABLED)

    def reset(self):
        """Back to CLOSED with a fresh window and the first open time."""
        self._force(CLOSED)

    cdef _force(self, int state):
        cdef int change
        with cython.critical_section(self):
            change = self._enter(state, 0.0)
        self._notify(change)

    def open_for(self, seconds, now=None):
        """Trip OPEN now for ``seconds`` (a decision made elsewhere, such as a
        fleet's): then HALF_OPEN as after any trip. Counts as a trip."""
        cdef double duration = positive("seconds", seconds)
        cdef double t = self._given_time(now)
        cdef int change
        with cython.critical_section(self):
            t = self._time(t)
            change = self._enter(OPEN, t)
            self._open_duration = duration
        self._notify(change)

    def half_open(self, now=None):
        """Move to HALF_OPEN now, its probes all free (a decision made elsewhere)."""
        cdef double t = self._given_time(now)
        cdef int change
        with cython.critical_section(self):
            change = self._enter(HALF_OPEN, self._time(t))
        self._notify(change)

    def hold(self, name):
        """Put a hold called ``name`` on the breaker (one already on: nothing changes).

        While any hold is on, every permit is refused and the state reads
        FORCED_OPEN; what lies underneath is left as it is.
        """
        cdef int change = NO_CHANGE
        name = hold_name(name)
        with cython.critical_section(self):
            if name in self._holds:
                return
            self._holds.add(name)
            if PySet_GET_SIZE(self._holds) == 1:
                self._permit = -1
                if self._state != FORCED_OPEN:
                    change = self._state * 8 + FORCED_OPEN
        self._notify(change)

    def lift_hold(self, name):
        """Lift the hold called ``name`` (none: nothing); the last one shows the state beneath."""
        cdef int change = NO_CHANGE
        cdef int state
        name = hold_name(name)
        with cython.critical_section(self):
            if name not in self._holds:
                return
            self._holds.discard(name)
            if PySet_GET_SIZE(self._holds) == 0:
                state = self._state
                self._permit = self._generation if state == CLOSED or state == DISABLED else -1
                if state != FORCED_OPEN:
                    change = FORCED_OPEN * 8 + state
        self._notify(change)

    @property
    def holds(self):
        """The names of the holds on the breaker."""
        with cython.critical_section(self):
            return frozenset(self._holds)

    # -- reading -------------------------------------------------------------

    def current_state(self, now=None):
        """The state at ``now``, after the due OPEN -> HALF_OPEN move, if any.

        FORCED_OPEN while held, whatever the state beneath.
        """
        cdef double t = self._given_time(now)
        cdef int change, state
        with cython.critical_section(self):
            if PySet_GET_SIZE(self._holds) != 0:
                return FORCED_OPEN
            change = self._open_if_due(t)
            state = self._state
        self._notify(change)
        return state

    @property
    def state(self):
        """``current_state()`` read with the clock."""
        return self.current_state()

    def retry_after(self, now=None):
        """Seconds until a call may be let through: 0 when one may now, inf when forced open.

        None while held: a hold ends when its holder lifts it, which no clock can tell.
        """
        return self.wait_for_permit(now)

    cdef object wait_for_permit(self, object now):
        """``retry_after`` for compiled callers."""
        cdef double t = self._given_time(now)
        cdef double oldest
        cdef Py_ssize_t i
        cdef int state
        with cython.critical_section(self):
            if PySet_GET_SIZE(self._holds) != 0:
                return None
            state = self._state
            if state == FORCED_OPEN:
                return INFINITY
            if state == OPEN:
                return max(0.0, self._opened_at + self._open_duration - self._time(t))
            if state == HALF_OPEN and self._probes_out >= self._half_open_calls:
                oldest = INFINITY  # every slot is taken
                for i in range(self._half_open_calls):
                    oldest = min(oldest, self._probe_times[i])
                return max(0.0, oldest + self._open_duration - self._time(t))
            return 0.0

    def window_totals(self, now=None):
        """``(calls, failures, slow_calls)`` in the current window."""
        cdef double t = self._given_time(now)
        with cython.critical_section(self):
            if self._timed_window:
                self._window._advance(self._time(t))
            return self._window._calls, self._window._failures, self._window._slow

    @property
    def generation(self):
        return self._generation

    @property
    def open_duration(self):
        """How long the latest trip keeps (or kept) the circuit open."""
        return self._open_duration

    @property
    def consecutive_failures(self):
        return self._consecutive_failures

    @property
    def half_open_probes(self):
        """Probe permits out while HALF_OPEN."""
        return self._probes_out

    @property
    def rejected(self):
        return self._rejected

    @property
    def total_calls(self):
        """Outcomes recorded in all (successes and failures, late ones included)."""
        return self._total_calls

    @property
    def total_failures(self):
        return self._total_failures

    @property
    def total_slow_calls(self):
        return self._total_slow_calls

    @property
    def total_ignored(self):
        return self._total_ignored

    def __sizeof__(self):
        return (
            object.__sizeof__(self)
            + self._window.__sizeof__()
            + self._half_open_calls * (sizeof(long long) + sizeof(double))
        )

    def __repr__(self):
        # The state beneath, and the holds over it if any.
        holds = f" holds={sorted(self._holds)!r}" if self._holds else ""
        return (
            f"<BreakerCore state={STATE_NAMES[self._state]}{holds}"
            f" generation={self._generation}>"
        )
