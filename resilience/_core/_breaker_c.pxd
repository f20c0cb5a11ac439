cimport cython
from resilience._core._window_c cimport OutcomeWindow


@cython.final
cdef class BreakerCore:
    cdef Py_ssize_t _failure_threshold
    cdef double _failure_rate          # 0: rule off
    cdef double _slow_call_duration    # 0: calls are never slow
    cdef double _slow_call_rate        # 0: rule off
    cdef Py_ssize_t _minimum_calls
    cdef double _reset_timeout
    cdef double _reset_timeout_max     # 0: the open time never grows
    cdef Py_ssize_t _half_open_calls
    cdef OutcomeWindow _window
    cdef bint _timed_window
    cdef object _clock
    cdef object _listener

    cdef int _state
    cdef set _holds                 # names of the holds; any: every permit refused
    cdef long long _permit          # the generation while CLOSED or DISABLED and not held, else -1
    cdef long long _counter
    cdef long long _generation
    cdef double _last
    cdef double _opened_at
    cdef double _open_duration
    cdef long long _trips
    cdef long long _consecutive_failures
    cdef Py_ssize_t _probes_out
    cdef Py_ssize_t _probe_successes
    cdef long long* _probe_tokens   # half_open_calls slots, FREE when no permit is out
    cdef double* _probe_times

    cdef unsigned long long _rejected
    cdef unsigned long long _total_calls
    cdef unsigned long long _total_failures
    cdef unsigned long long _total_slow_calls
    cdef unsigned long long _total_ignored

    # For the compiled policy wrappers: acquire() and record_*() without
    # Python-level calls.
    cdef long long take(self, object now) except? -2
    cpdef bint refuses_now(self) except -1
    cdef int settle(self, bint failure, double duration, long long token, object now) except -1
    cdef object wait_for_permit(self, object now)
    cdef int succeed(self, long long token) except -1

    cdef double _given_time(self, object now) except? -1.0
    cdef double _time(self, double t) noexcept
    cdef void _shift(self, double step) noexcept
    cdef int _enter(self, int state, double t) noexcept
    cdef int _notify(self, int change) except -1
    cdef _force(self, int state)
    cdef int _open_if_due(self, double t) noexcept
    cdef long long _acquire(self, double t, int* change) noexcept
    cdef int _apply(self, bint failure, double duration, double t, long long generation) noexcept
    cdef bint _should_trip(self) noexcept
    cdef long long _issue_probe(self, double t) noexcept
    cdef void _take_back_lost_probes(self, double t) noexcept
    cdef bint _settle(self, long long token) noexcept
