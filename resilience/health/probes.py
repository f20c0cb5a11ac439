"""Common probes, standard library only: ``tcp_probe``, ``http_probe``, ``threshold_probe``."""

from __future__ import annotations

import math
import socket
from collections.abc import Callable, Container, Sized

from .._core._validate import count, non_negative, number, optional
from .status import HealthStatus

__all__ = ["http_probe", "tcp_probe", "threshold_probe"]


def _timeout_argument(timeout: float) -> float | None:
    """A socket timeout from ours: ``inf`` is None (block), 0 does not wait."""
    seconds = non_negative("timeout", timeout)
    return None if math.isinf(seconds) else seconds


class tcp_probe:
    """A probe that is UP when a TCP connection to ``(host, port)`` opens within ``timeout``.

    Returns ``True`` when it connects (and closes the connection at once);
    raises the ``OSError`` otherwise, so the check's ``last_error`` says why.
    """

    __slots__ = ("_timeout", "host", "port", "timeout")

    def __init__(self, host: str, port: int, *, timeout: float = 1.0) -> None:
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be a non-empty str, got {host!r}")
        self.port = count("port", port, 1)
        if self.port > 65535:
            raise ValueError(f"port must be an integer <= 65535, got {port!r}")
        self.host = host
        self._timeout = _timeout_argument(timeout)
        self.timeout = float(timeout)

    def __call__(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=self._timeout):
            return True

    def __repr__(self) -> str:
        return f"tcp_probe({self.host!r}, {self.port!r}, timeout={self.timeout!r})"


class http_probe:
    """A probe that GETs ``url`` and is UP when the response status is in ``expect``.

    ``expect`` is a status code or a container of them (default any 2xx).
    Error statuses are compared too, so ``expect=range(200, 600)`` only asks
    for an answer. A status outside ``expect`` returns ``False``; no answer
    within ``timeout`` (or a connection error) raises, so the check's
    ``last_error`` says why. ``last_status`` holds the latest status code.
    Standard library only (``urllib.request``); ``http`` and ``https`` URLs.
    """

    __slots__ = ("_timeout", "expect", "last_status", "timeout", "url")

    def __init__(
        self,
        url: str,
        *,
        expect: int | Container[int] = range(200, 300),
        timeout: float = 1.0,
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, got {url!r}")
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
        if isinstance(expect, bool) or not isinstance(expect, (int, Container)):
            raise TypeError(f"expect must be a status code or a container of them, got {expect!r}")
        if isinstance(expect, str):
            raise TypeError(f"expect must be a status code or a container of them, got {expect!r}")
        if isinstance(expect, int):
            expect = frozenset((expect,))
        elif isinstance(expect, Sized) and len(expect) == 0:
            raise ValueError(f"expect must hold at least one status code, got {expect!r}")
        self.url = url
        self.expect: Container[int] = expect
        self._timeout = _timeout_argument(timeout)
        self.timeout = float(timeout)
        self.last_status: int | None = None

    def __call__(self) -> bool:
        import urllib.error  # here, not at import: it pulls in http.client, ssl and email
        import urllib.request

        request = urllib.request.Request(self.url, method="GET")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as error:
            status = int(error.code)
            error.close()
        self.last_status = status
        return status in self.expect

    def __repr__(self) -> str:
        return f"http_probe({self.url!r}, expect={self.expect!r}, timeout={self.timeout!r})"


class threshold_probe:
    """A probe on a number: DOWN outside ``min``/``max``, DEGRADED outside the degraded bounds.

    ``read()`` gives the number (a queue length, free disk space, a lag).
    Bounds are inclusive (a reading equal to ``max`` is within it); at least
    one must be given, and they must nest: ``min <= degraded_min <=
    degraded_max <= max`` for those given. Otherwise UP. A reading that is
    not a number, or NaN, raises (a failure).
    """

    __slots__ = ("degraded_max", "degraded_min", "max", "min", "read")

    def __init__(
        self,
        read: Callable[[], float],
        *,
        max: float | None = None,
        min: float | None = None,
        degraded_max: float | None = None,
        degraded_min: float | None = None,
    ) -> None:
        if not callable(read):
            raise TypeError(f"read must be callable, got {read!r}")
        self.read = read
        self.min = optional(number, "min", min)
        self.max = optional(number, "max", max)
        self.degraded_min = optional(number, "degraded_min", degraded_min)
        self.degraded_max = optional(number, "degraded_max", degraded_max)
        given: list[tuple[str, float]] = []
        for name, value in (
            ("min", self.min),
            ("degraded_min", self.degraded_min),
            ("degraded_max", self.degraded_max),
            ("max", self.max),
        ):
            if value is not None:
                given.append((name, value))
        if not given:
            raise ValueError(
                "threshold_probe needs at least one of min, max, degraded_min, degraded_max"
            )
        for i, (low_name, low) in enumerate(given):
            for high_name, high in given[i + 1 :]:
                if low > high:
                    raise ValueError(
                        f"{low_name} must be <= {high_name}, got {low_name}={low!r} "
                        f"and {high_name}={high!r}"
                    )

    def __call__(self) -> HealthStatus:
        value = number("read()", self.read())
        if (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        ):
            return HealthStatus.DOWN
        if (self.degraded_min is not None and value < self.degraded_min) or (
            self.degraded_max is not None and value > self.degraded_max
        ):
            return HealthStatus.DEGRADED
        return HealthStatus.UP

    def __repr__(self) -> str:
        bounds = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in ("min", "max", "degraded_min", "degraded_max")
            if getattr(self, name) is not None
        )
        return f"threshold_probe({self.read!r}, {bounds})"
