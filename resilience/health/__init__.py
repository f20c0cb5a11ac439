"""Health checks: probes, thresholds, an aggregate status and a JSON report.

A ``HealthCheck`` (``check``) runs one probe — a function, sync or async,
that returns ``True`` / ``False`` / a ``HealthStatus`` (``status``) or
raises — and turns its results into a status the way Kubernetes probes do:
``failure_threshold`` failures in a row make it ``DOWN``,
``success_threshold`` successes in a row make it ``UP`` again. A
``HealthChecker`` (``checker``) runs many checks once or every ``interval``
seconds, on one thread or one asyncio task, and reports on all of them or
on a group (say ``"readiness"`` and ``"liveness"``). ``tcp_probe``,
``http_probe`` and ``threshold_probe`` (``probes``) build common probes with
the standard library only.
"""

from .check import HealthCheck
from .checker import HealthChecker
from .probes import http_probe, tcp_probe, threshold_probe
from .status import HealthStatus

__all__ = [
    "HealthCheck",
    "HealthChecker",
    "HealthStatus",
    "http_probe",
    "tcp_probe",
    "threshold_probe",
]
