"""A resilient requests adapter: retries, breaker, limiter and bulkhead for a ``Session``.

``ResilientAdapter`` is a ``requests.adapters.HTTPAdapter`` to mount::

    session.mount("https://", ResilientAdapter(attempts=3, breaker=...))

It applies the same rules as the httpx transports (``resilience.http._rules``).
requests reports most failures as a ``ConnectionError``; what it wraps
tells them apart: a connection never made (urllib3's
``NewConnectionError``), a connect timeout or a pool that stayed full
happened before anything was sent; a dropped connection or a read timeout
after; a certificate that does not verify is never retried. urllib3's own
retries stay off (``max_retries=0``): the adapter makes every attempt.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, EmptyPoolError, NewConnectionError

from .._policy import sleep_sync
from ..backoff import Backoff
from ..retry import RetryBudget
from ..timeout import remaining
from ._rules import (
    DEFAULT_STATUS_FORCELIST,
    IDEMPOTENT,
    NEVER,
    NOT_SENT,
    REQUEST_TIMEOUT,
    SENT,
    Client,
    PolicyOption,
    Run,
    TransportStats,
    caused_by,
    origin,
    request_timeout,
)

__all__ = ["IDEMPOTENT", "ResilientAdapter", "TransportStats"]

# What requests wraps when nothing reached the server.
_NOT_SENT = (NewConnectionError, ConnectTimeoutError, EmptyPoolError)


class _ServerError(requests.HTTPError):
    """A 5xx response, raised through the attempt's policies so a breaker counts a failure."""


def error_kind(error: BaseException) -> int:
    """What an exception of ``HTTPAdapter.send`` means for a retry (see ``_rules``)."""
    if isinstance(error, requests.exceptions.SSLError):
        return NEVER if caused_by(error, ssl.SSLCertVerificationError) else NOT_SENT
    if isinstance(error, requests.exceptions.ConnectTimeout) or caused_by(error, _NOT_SENT):
        return NOT_SENT
    if isinstance(error, (requests.ConnectionError, requests.exceptions.ReadTimeout)):
        return SENT
    return NEVER


def _capped(timeout: Any, left: float) -> tuple[float, float]:
    """requests' ``timeout`` (None, seconds, a (connect, read) pair, or urllib3's
    ``Timeout``) with neither phase beyond ``left``."""
    if isinstance(timeout, urllib3.Timeout):
        connect, read = timeout.connect_timeout, timeout.read_timeout
    elif isinstance(timeout, tuple):
        connect, read = timeout
    else:
        connect = read = timeout
    return _within(connect, left), _within(read, left)


def _within(seconds: object, left: float) -> float:
    # Anything but a number (None, urllib3's "default" sentinel) sets no limit of its own.
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        return min(float(seconds), left)
    return left


class ResilientAdapter(Client, HTTPAdapter):
    """An ``HTTPAdapter`` that retries, and applies a breaker, limiter and bulkhead.

    The options are those of ``resilience.http.httpx.ResilientTransport``;
    ``pool_connections``, ``pool_maxsize`` and ``pool_block`` are
    ``HTTPAdapter``'s. ``.stats`` counts the requests, attempts and retries.
    """

    def __init__(
        self,
        *,
        attempts: int = 3,
        backoff: Backoff | None = None,
        budget: RetryBudget | None = None,
        allowed_methods: Iterable[str] = IDEMPOTENT,
        status_forcelist: Iterable[int] = DEFAULT_STATUS_FORCELIST,
        respect_retry_after_header: bool = True,
        retry_after_max: float = 300.0,
        breaker: PolicyOption = None,
        limiter: PolicyOption = None,
        bulkhead: PolicyOption = None,
        max_origins: int = 1024,
        propagate_deadline: bool = False,
        sleep: Callable[[float], Any] | None = None,
        pool_connections: int = 10,
        pool_maxsize: int = 10,
        pool_block: bool = False,
    ) -> None:
        Client.__init__(
            self,
            attempts=attempts,
            backoff=backoff,
            budget=budget,
            allowed_methods=allowed_methods,
            status_forcelist=status_forcelist,
            respect_retry_after_header=respect_retry_after_header,
            retry_after_max=retry_after_max,
            breaker=breaker,
            limiter=limiter,
            bulkhead=bulkhead,
            max_origins=max_origins,
            propagate_deadline=propagate_deadline,
            sleep=sleep,
        )
        HTTPAdapter.__init__(
            self,
            pool_connections=pool_connections,
            pool_maxsize=pool_maxsize,
            max_retries=0,
            pool_block=pool_block,
        )

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        # A body in memory (bytes, str, a form, JSON) can be sent again; a file or
        # a generator cannot.
        replayable = request.body is None or isinstance(request.body, (bytes, str))
        self._rules.begin()
        run = Run(self._rules, request.method or "GET", request.headers, replayable)
        options = {"stream": stream, "verify": verify, "cert": cert, "proxies": proxies}
        while True:
            left = remaining()
            capped = timeout
            if left != math.inf:
                self._check_left(left)
                capped = _capped(timeout, left)
                if self._propagate:
                    request.headers[REQUEST_TIMEOUT] = request_timeout(left)
            try:
                response = self._attempt(request, capped, options)
            except Exception as error:
                if not run.after_error(error_kind(error)):
                    raise  # the last error, unchanged
            else:
                if not run.after_response(response.status_code, response.headers):
                    return response
                response.close()  # discarded: its connection is freed for the next attempt
            sleep_sync(run.delay, self._rules.sleep)
            run.next_attempt()

    def _attempt(
        self, request: requests.PreparedRequest, timeout: Any, options: dict[str, Any]
    ) -> requests.Response:
        """One send, through the origin's policies when there are any."""
        if not self._guarded:
            return HTTPAdapter.send(self, request, timeout=timeout, **options)
        parts = urlsplit(str(request.url))
        guarded = self._origins.get(origin(parts.scheme, parts.hostname or "", parts.port))
        try:
            return guarded(request, timeout, options)  # type: ignore[no-any-return]
        except _ServerError as failed:
            return failed.response  # type: ignore[return-value]  # always set here

    def _judged(
        self, request: requests.PreparedRequest, timeout: Any, options: dict[str, Any]
    ) -> requests.Response:
        response = HTTPAdapter.send(self, request, timeout=timeout, **options)
        if response.status_code >= 500:
            raise _ServerError(f"{response.status_code}", response=response)
        return response

    def __repr__(self) -> str:
        return f"<ResilientAdapter attempts={self._rules.attempts}>"
