"""The exceptions resilience raises; every one subclasses ResilienceError.

Every refusal — ``CircuitOpenError``, ``RateLimitExceeded``,
``BulkheadFullError``, ``LoadShedError`` — subclasses ``RejectedError`` and
has ``name`` and ``retry_after``. They are defined in the core (which
raises some of them from compiled code) and re-exported here.
"""

from ._core._errors import (
    BulkheadFullError,
    CircuitOpenError,
    InjectedFault,
    LoadShedError,
    RateLimitExceeded,
    RejectedError,
    ResilienceError,
    RetryError,
    TimeoutExceeded,
)

__all__ = [
    "BulkheadFullError",
    "CircuitOpenError",
    "InjectedFault",
    "LoadShedError",
    "RateLimitExceeded",
    "RejectedError",
    "ResilienceError",
    "RetryError",
    "TimeoutExceeded",
]
