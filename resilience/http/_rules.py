"""The retry rules of the HTTP clients, shared by every adapter (httpx, requests).

An adapter tells this module what happened to an attempt — a transport
error of a kind (``NOT_SENT``, ``SENT``, ``NEVER``) or a response's status
and ``Retry-After`` — and ``Run`` answers whether to try again and after
how long; the adapter sends, closes, sleeps and raises. The rules, with
urllib3's option names where the concept is the same:

- Method first: a request may be retried after it reached the server only
  if its method is in ``allowed_methods`` (default ``IDEMPOTENT``) or it
  carries an ``Idempotency-Key`` header. A failure before anything was sent
  (``NOT_SENT``: no connection, no pooled connection in time) is retried
  for any method; ``NEVER`` errors (TLS verification...) never are.
- The statuses of ``status_forcelist`` are retried; 413, 429 and 503 are
  too when they carry a valid ``Retry-After`` (and
  ``respect_retry_after_header``). ``Retry-After`` — delta-seconds or an
  HTTP-date — sets the wait, overriding the backoff and its max; a wait
  longer than ``retry_after_max`` or the remaining ``deadline()`` is not
  waited on: the response is returned at once. A malformed ``Retry-After``
  is ignored (the backoff applies) and counted.
- A request whose body cannot be replayed is never retried.
- Like ``Retry``: ``attempts`` in all, the ``backoff`` between them, no retry
  that the current ``deadline()`` or the ``RetryBudget`` rules out.

``Origins`` keeps the breaker, limiter and bulkhead of each origin (or the
shared ones) as one ``Pipeline`` an attempt goes through.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import _core
from .._core._nocopy import NoCopy
from .._core._validate import count, non_negative
from .._policy import Policy, check_callable
from ..backoff import Backoff, exponential
from ..errors import TimeoutExceeded
from ..pipeline import Pipeline
from ..retry import RetryBudget
from ..timeout import remaining

__all__ = [
    "DEFAULT_STATUS_FORCELIST",
    "IDEMPOTENT",
    "NEVER",
    "NOT_SENT",
    "REQUEST_TIMEOUT",
    "RETRY_AFTER_STATUSES",
    "SENT",
    "Client",
    "Origins",
    "Rules",
    "Run",
    "TransportStats",
    "caused_by",
    "origin",
    "parse_retry_after",
    "request_timeout",
]

# RFC 9110's idempotent methods (section 9.2.2): urllib3's default allowed_methods.
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
DEFAULT_STATUS_FORCELIST = frozenset({429, 502, 503, 504})
# Statuses whose Retry-After says when to come back (RFC 9110 section 10.2.3).
RETRY_AFTER_STATUSES = frozenset({413, 429, 503})

# What a transport error means for a retry.
NOT_SENT = 0  # nothing reached the server: safe to retry for any method
SENT = 1  # the request may have reached the server: retried for allowed methods only
NEVER = 2  # retrying cannot help (a certificate that does not verify, a bad URL...)

# The header that carries the caller's deadline to the server (what DeadlineMiddleware reads).
REQUEST_TIMEOUT = "Request-Timeout"
DEFAULT_PORTS = {"http": 80, "https": 443}

# The transport's counters, in TransportStats' order.
# Attempts are not counted: each request makes one, plus its retries.
(
    REQUESTS,
    RETRIES,
    RETRY_AFTER_HONOURED,
    RETRY_AFTER_MALFORMED,
    RETRY_AFTER_TOO_LONG,
    BUDGET_EXHAUSTED,
    NOT_REPLAYABLE,
    GAVE_UP,
) = range(8)
COUNTERS = 8


@dataclass(frozen=True)
class TransportStats:
    """Lifetime counts of a resilient transport (or adapter)."""

    requests: int  # requests handled
    attempts: int  # attempts started, first ones included
    retries: int  # attempts after the first
    retry_after_honoured: int  # waits a server's Retry-After set
    retry_after_malformed: int  # Retry-After values that could not be read (ignored)
    retry_after_too_long: int  # responses returned at once: Retry-After past the max or deadline
    budget_exhausted: int  # retries the RetryBudget refused
    not_replayable: int  # retries refused because the body could not be sent again
    gave_up: int  # requests that ended on a retryable outcome with no attempt left to make


def parse_retry_after(value: str, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` value; None when it is malformed.

    Delta-seconds (``"120"``, digits only, RFC 9110 section 10.2.3) or an
    HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``; a date in the past
    means no wait). ``now`` is the wall clock the date is compared with.
    """
    value = value.strip()
    if value.isdigit() and value.isascii():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # not an HTTP-date: those are always GMT
        return None
    return max(0.0, when.timestamp() - now())


def _methods(value: object) -> frozenset[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"allowed_methods must be a collection of method names, got {value!r}")
    methods = list(value)
    for method in methods:
        if not isinstance(method, str) or not method:
            raise TypeError(f"allowed_methods must hold method names (str), got {value!r}")
    return frozenset(method.upper() for method in methods)


def _statuses(value: object) -> frozenset[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"status_forcelist must be a collection of status codes, got {value!r}")
    statuses = list(value)
    for status in statuses:
        if isinstance(status, bool) or not isinstance(status, int):
            raise TypeError(f"status_forcelist must hold integer status codes, got {value!r}")
        if not 100 <= status <= 599:
            raise ValueError(f"status_forcelist holds a status outside 100-599, got {value!r}")
    return frozenset(statuses)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


class Rules:
    """The retry options of a transport, checked; each request is a ``Run`` of them."""

    __slots__ = (
        "allowed_methods",
        "attempts",
        "backoff",
        "budget",
        "counts",
        "respect_retry_after_header",
        "retry_after_max",
        "sleep",
        "status_forcelist",
        "watched",
    )

    def __init__(
        self,
        *,
        attempts: int,
        backoff: Backoff | None,
        budget: RetryBudget | None,
        allowed_methods: Iterable[str],
        status_forcelist: Iterable[int],
        respect_retry_after_header: bool,
        retry_after_max: float,
        sleep: Callable[[float], Any] | None,
    ) -> None:
        self.attempts = count("attempts", attempts)
        if backoff is not None and not callable(backoff):
            raise TypeError(f"backoff must be callable as backoff(n, previous), got {backoff!r}")
        self.backoff: Backoff = exponential() if backoff is None else backoff
        if budget is not None and not isinstance(budget, RetryBudget):
            raise TypeError(f"budget must be a RetryBudget or None, got {budget!r}")
        self.budget = budget
        self.allowed_methods = _methods(allowed_methods)
        self.status_forcelist = _statuses(status_forcelist)
        # The statuses that may be retried: the others are answers, read no further.
        self.watched = self.status_forcelist | RETRY_AFTER_STATUSES
        self.respect_retry_after_header = _flag(
            "respect_retry_after_header", respect_retry_after_header
        )
        self.retry_after_max = non_negative("retry_after_max", retry_after_max)
        self.sleep = check_callable("sleep", sleep)
        self.counts = _core.SELECTED.Counters(COUNTERS)

    @property
    def stats(self) -> TransportStats:
        requests, retries, *rest = self.counts.snapshot()
        return TransportStats(requests, requests + retries, retries, *rest)

    def begin(self) -> None:
        """A request starts: counted, and its deposit made in the retry budget."""
        if self.budget is not None:
            self.budget.deposit()
        self.counts.add(REQUESTS)


class Run:
    """One request through the rules: decides after each attempt.

    Made (after ``Rules.begin``) once a retry is in question: a request
    answered at the first attempt by a status no rule watches needs none.
    Made with its method, its headers (a
    case-insensitive mapping) and whether its body can be sent again.
    ``after_error`` / ``after_response`` return True when another attempt
    follows after ``delay`` seconds; the adapter then waits and calls
    ``next_attempt``. ``waits`` lists the waits made so far.
    """

    __slots__ = ("attempt", "delay", "headers", "method", "replayable", "rules", "waits")

    def __init__(
        self, rules: Rules, method: str, headers: Mapping[str, Any], replayable: bool
    ) -> None:
        self.rules = rules
        self.method = method
        self.headers = headers
        self.replayable = replayable
        self.attempt = 1
        self.delay = 0.0
        self.waits: list[float] = []

    def _allowed(self) -> bool:
        """Whether the request may be retried once sent: its method, or an Idempotency-Key.

        Asked only when a retry is in question, never of a request that succeeds."""
        methods = self.rules.allowed_methods
        method = self.method
        return method in methods or method.upper() in methods or "idempotency-key" in self.headers

    def after_error(self, kind: int) -> bool:
        """Whether to retry after a transport error of ``kind`` (NOT_SENT, SENT, NEVER)."""
        if kind == NEVER or (kind == SENT and not self._allowed()):
            return False
        return self._schedule(None)

    def after_response(self, status: int, headers: Mapping[str, Any]) -> bool:
        """Whether to retry after a response (``headers``: a case-insensitive mapping)."""
        rules = self.rules
        if status not in rules.watched:
            return False  # the usual case, decided without reading a header
        told: float | None = None
        retry_after = headers.get("retry-after") if rules.respect_retry_after_header else None
        if retry_after is not None:
            told = parse_retry_after(retry_after)
            if told is None:
                rules.counts.add(RETRY_AFTER_MALFORMED)
        if status not in rules.status_forcelist and (
            told is None or status not in RETRY_AFTER_STATUSES
        ):
            return False  # an answer, not a failure to retry
        if not self._allowed():
            return False
        if told is not None and not (told <= rules.retry_after_max and told < remaining()):
            # The server asks for longer than we may wait: its answer now, not a wait.
            rules.counts.add(RETRY_AFTER_TOO_LONG)
            rules.counts.add(GAVE_UP)
            return False
        return self._schedule(told)

    def _schedule(self, told: float | None) -> bool:
        """Set ``delay`` for the next attempt; False (counted) when none may start."""
        rules = self.rules
        counts = rules.counts
        if not self.replayable:
            counts.add(NOT_REPLAYABLE)
        elif self.attempt < rules.attempts:
            previous = self.waits[-1] if self.waits else None
            delay = float(rules.backoff(self.attempt, previous)) if told is None else told
            if delay < remaining():  # a retry that cannot start before the deadline is none
                if rules.budget is None or rules.budget.try_withdraw():
                    if told is not None:
                        counts.add(RETRY_AFTER_HONOURED)
                    self.delay = delay
                    return True
                counts.add(BUDGET_EXHAUSTED)
        counts.add(GAVE_UP)
        return False

    def next_attempt(self) -> None:
        """The wait is over: the next attempt starts."""
        self.rules.counts.add(RETRIES)
        self.waits.append(self.delay)
        self.attempt += 1

    def report(self) -> dict[str, Any]:
        """What the response's ``extensions["resilience"]`` says of the request."""
        return {"attempts": self.attempt, "waits": self.waits}


# -- breaker, limiter and bulkhead, shared or per origin ------------------------------

PolicyOption = Policy | Callable[[str], Policy] | None


def _per_origin(name: str, value: object) -> Any:
    """A shared policy, a factory (any callable that is not a Policy) or None, checked."""
    if value is None or isinstance(value, Policy) or callable(value):
        return value
    raise TypeError(f"{name} must be a policy, a factory of one per origin, or None, got {value!r}")


class Origins:
    """The policies an attempt goes through, per origin ``"scheme://host:port"``.

    Outermost first: the limiter, the bulkhead, then the breaker around the
    send alone, so that neither a limiter's nor a bulkhead's refusal counts
    as a failure of the origin. ``get`` gives ``send`` decorated with them
    (the policies' compiled wrappers, where they have some). Factories are
    called once per origin; the ``max_origins`` most recently used origins
    keep theirs.
    """

    __slots__ = ("_factories", "_guarded", "_lock", "_max", "_send", "_shared")

    def __init__(
        self,
        breaker: PolicyOption,
        limiter: PolicyOption,
        bulkhead: PolicyOption,
        max_origins: int,
        send: Callable[..., Any],
    ) -> None:
        options = (
            ("limiter", _per_origin("limiter", limiter)),
            ("bulkhead", _per_origin("bulkhead", bulkhead)),
            ("breaker", _per_origin("breaker", breaker)),
        )
        self._max = count("max_origins", max_origins)
        self._send = send
        self._factories = tuple((name, value) for name, value in options if value is not None)
        self._lock = threading.Lock()
        self._guarded: OrderedDict[str, Callable[..., Any]] = OrderedDict()
        # No factory: every origin shares one guarded send (or none at all).
        self._shared: Callable[..., Any] | None = None
        if all(isinstance(value, Policy) for _, value in self._factories):
            if self._factories:
                self._shared = Pipeline(*(value for _, value in self._factories))(send)
            self._factories = ()

    @property
    def empty(self) -> bool:
        """Whether attempts go straight to the transport (no policy at all)."""
        return self._shared is None and not self._factories

    def get(self, origin: str) -> Callable[..., Any]:
        """``send`` through the policies of ``origin`` (made on first use)."""
        if not self._factories:
            assert self._shared is not None, "asked for the policies of a client without any"
            return self._shared
        with self._lock:  # held briefly: a lookup, or the factories' calls on a miss
            guarded = self._guarded.get(origin)
            if guarded is not None:
                self._guarded.move_to_end(origin)
                return guarded
            made = (self._make(name, value, origin) for name, value in self._factories)
            guarded = Pipeline(*made)(self._send)
            self._guarded[origin] = guarded
            if len(self._guarded) > self._max:
                self._guarded.popitem(last=False)
            return guarded

    @staticmethod
    def _make(name: str, value: Any, origin: str) -> Policy:
        if isinstance(value, Policy):
            return value
        policy = value(origin)
        if not isinstance(policy, Policy):
            raise TypeError(f"the {name} factory must return a policy, got {policy!r} for {origin}")
        return policy

    def __len__(self) -> int:
        """Origins holding policies of their own now."""
        return len(self._guarded)


def origin(scheme: str, host: str, port: int | None) -> str:
    """``"scheme://host:port"``, the default port written out: the key of per-origin policies."""
    if port is None:
        port = DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://{host}:{port}"


def caused_by(
    error: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]
) -> bool:
    """Whether ``error`` or an exception in its chain is one of ``kinds``.

    The clients wrap what went wrong (httpx's errors chain httpcore's, which
    chain the socket's or ``ssl``'s; requests chains urllib3's), so the
    cause is looked for down the chain.
    """
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def request_timeout(left: float) -> str:
    """The ``Request-Timeout`` value for ``left`` seconds: decimal seconds, to the millisecond."""
    return f"{left:.3f}"


class Client(NoCopy):
    """What every adapter holds: the rules, the origins' policies and the deadline's use.

    Takes the options every adapter takes, checked (TypeError / ValueError
    naming the argument and the value). Like the policies it holds, it is
    neither copied nor pickled.
    """

    # Each adapter's one send, raising its 5xx responses for a breaker to count.
    _judged: Callable[..., Any]

    def __init__(
        self,
        *,
        attempts: int,
        backoff: Backoff | None,
        budget: RetryBudget | None,
        allowed_methods: Iterable[str],
        status_forcelist: Iterable[int],
        respect_retry_after_header: bool,
        retry_after_max: float,
        breaker: PolicyOption,
        limiter: PolicyOption,
        bulkhead: PolicyOption,
        max_origins: int,
        propagate_deadline: bool,
        sleep: Callable[[float], Any] | None,
    ) -> None:
        self._rules = Rules(
            attempts=attempts,
            backoff=backoff,
            budget=budget,
            allowed_methods=allowed_methods,
            status_forcelist=status_forcelist,
            respect_retry_after_header=respect_retry_after_header,
            retry_after_max=retry_after_max,
            sleep=sleep,
        )
        self._origins = Origins(breaker, limiter, bulkhead, max_origins, self._judged)
        self._guarded = not self._origins.empty  # else attempts go straight to the transport
        self._propagate = _flag("propagate_deadline", propagate_deadline)

    @staticmethod
    def _check_left(left: float) -> None:
        """Raise ``TimeoutExceeded`` when no time is ``left`` before the deadline: a
        request sent then would be one nobody waits for (a zero socket timeout
        still writes it)."""
        if left <= 0.0:
            raise TimeoutExceeded(0.0)

    @property
    def stats(self) -> TransportStats:
        """Lifetime counts of the requests through this client."""
        return self._rules.stats
