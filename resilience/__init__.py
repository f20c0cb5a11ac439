"""resilience: fast, correct fault-tolerance primitives.

The hot paths are compiled Cython classes with pure-Python twins;
``IMPLEMENTATION`` says which one this process loaded (``"cython"`` or
``"python"``).
"""

from __future__ import annotations

from . import backoff
from ._core import (
    IMPLEMENTATION,
    BreakerCore,
    CountWindow,
    LatencySketch,
    LatencyWindow,
    SemaphoreCore,
    TimeWindow,
    TokenBucket,
)
from .breaker import BreakerStats, CircuitBreaker, CircuitState
from .budget import ErrorBudget, LatencyBudget
from .bulkhead import Bulkhead, BulkheadStats
from .chaos import Chaos, ChaosStats
from .degradation import (
    Criticality,
    DegradationManager,
    current_criticality,
    request_criticality,
)
from .errors import (
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
from .fallback import Fallback, FallbackStats
from .health import (
    HealthCheck,
    HealthChecker,
    HealthStatus,
    http_probe,
    tcp_probe,
    threshold_probe,
)
from .manager import ResilienceManager
from .pipeline import Pipeline, PipelineStats
from .ratelimit import (
    AdaptiveRateLimiter,
    KeyedRateLimiter,
    KeyedRateLimiterStats,
    RateDecision,
    RateLimiter,
    RateLimiterStats,
)
from .retry import Retry, RetryBudget, RetryState, RetryStats
from .timeout import Timeout, TimeoutStats, deadline, remaining

__version__ = "0.2.0"

__all__ = [
    "IMPLEMENTATION",
    "AdaptiveRateLimiter",
    "BreakerCore",
    "BreakerStats",
    "Bulkhead",
    "BulkheadFullError",
    "BulkheadStats",
    "Chaos",
    "ChaosStats",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "CountWindow",
    "Criticality",
    "DegradationManager",
    "ErrorBudget",
    "Fallback",
    "FallbackStats",
    "HealthCheck",
    "HealthChecker",
    "HealthStatus",
    "InjectedFault",
    "KeyedRateLimiter",
    "KeyedRateLimiterStats",
    "LatencyBudget",
    "LatencySketch",
    "LatencyWindow",
    "LoadShedError",
    "Pipeline",
    "PipelineStats",
    "RateDecision",
    "RateLimitExceeded",
    "RateLimiter",
    "RateLimiterStats",
    "RejectedError",
    "ResilienceError",
    "ResilienceManager",
    "Retry",
    "RetryBudget",
    "RetryError",
    "RetryState",
    "RetryStats",
    "SemaphoreCore",
    "TimeWindow",
    "Timeout",
    "TimeoutExceeded",
    "TimeoutStats",
    "TokenBucket",
    "__version__",
    "backoff",
    "current_criticality",
    "deadline",
    "http_probe",
    "remaining",
    "request_criticality",
    "tcp_probe",
    "threshold_probe",
]
