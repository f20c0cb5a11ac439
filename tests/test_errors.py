"""The exception hierarchy of resilience.errors."""

from __future__ import annotations

import math
import pickle

import pytest

from resilience.errors import (
    BulkheadFullError,
    CircuitOpenError,
    InjectedFault,
    RateLimitExceeded,
    ResilienceError,
    RetryError,
    TimeoutExceeded,
)

EXAMPLES = [
    CircuitOpenError("payments", 2.5),
    RateLimitExceeded("api", 0.25),
    BulkheadFullError("db", 4, 2),
    RetryError(3, last_result="busy"),
    TimeoutExceeded(1.5, "slow"),
    InjectedFault("boom"),
]


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_every_error_is_a_resilience_error(error: Exception) -> None:
    assert isinstance(error, ResilienceError)


def test_timeout_exceeded_is_also_a_timeout_error() -> None:
    with pytest.raises(TimeoutError):
        raise TimeoutExceeded(1.0)


def test_retry_after_attributes() -> None:
    opened = CircuitOpenError("payments", 2.5)
    assert (opened.name, opened.retry_after) == ("payments", 2.5)
    assert "payments" in str(opened) and "2.500" in str(opened)
    limited = RateLimitExceeded(None, 0.25)
    assert (limited.name, limited.retry_after) == (None, 0.25)
    assert str(limited) == "rate limit exceeded; retry after 0.250s"
    assert str(CircuitOpenError(None, math.inf)) == "circuit is open; it will not end by itself"


def test_retry_error_keeps_the_last_outcome() -> None:
    cause = ValueError("x")
    error = RetryError(4, last_result=None, last_exception=cause)
    assert error.attempts == 4
    assert error.last_exception is cause
    assert error.last_result is None
    assert "4 attempt" in str(error)


def test_bulkhead_full_describes_its_limits() -> None:
    error = BulkheadFullError("db", 4, 2)
    assert (error.max_concurrent, error.max_queue) == (4, 2)
    assert "4 concurrent" in str(error) and "2 waiting" in str(error)


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_errors_survive_pickling(error: Exception) -> None:
    # Errors cross process boundaries (multiprocessing, concurrent.futures).
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
