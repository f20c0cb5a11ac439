"""Counter layouts shared by the core and the policies: one definition each.

The compiled wrappers count into the same ``Counters`` the policies read, so
the indices are defined here, below both, and imported by both.
"""

# Retry's counters, in ``RetryStats``' field order (after ``name``).
RETRY_CALLS, RETRY_ATTEMPTS, RETRY_RETRIES, RETRY_SUCCESSES, RETRY_FAILURES = range(5)
RETRY_COUNTERS = 5
