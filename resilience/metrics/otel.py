"""OpenTelemetry metrics, read from the policies' own counters at collection time.

``instrument(source)`` registers observable instruments whose callbacks
read the counters, windows and states the policies keep anyway: nothing is
counted per call, and a policy costs nothing until a reader collects::

    from resilience.metrics.otel import instrument

    handle = instrument(manager)  # the global MeterProvider, meter "resilience"
    ...
    handle.close()  # stops reporting manager's policies

``source`` is a ``ResilienceManager`` (re-read at every collection, so
policies made later appear) or an iterable of policies, ``HealthCheck``s
and ``HealthChecker``s (fixed when ``instrument`` is called). Policies
without a name are reported with ``resilience.name=""``. The instruments and
their attributes are listed in the README. Only ``opentelemetry-api`` is
imported: the application chooses and configures the SDK.

The API cannot remove an instrument once made, and a meter hands back the
first instrument of a name to a second one asking for it (without its
callbacks). So each meter gets one set of instruments, made the first time
it is instrumented, whose callbacks read every open handle's source; a
handle's ``close()`` takes its source out of that set. Handles made through
the global provider share one set per meter name whether they were made
before the application set its provider or after (see ``_GLOBAL``).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from opentelemetry.metrics import (
    CallbackOptions,
    Meter,
    MeterProvider,
    Observation,
    get_meter_provider,
)

from ..manager import ResilienceManager
from ._read import (
    Source,
    circuit_calls,
    circuit_states,
    circuit_transitions,
    health_statuses,
    label,
    ratelimit_requests,
    retry_attempts,
)

__all__ = ["Instrumentation", "instrument"]

NAME = "resilience.name"
OUTCOME = "resilience.outcome"

Callback = Callable[[CallbackOptions], Iterable[Observation]]


class Instrumentation:
    """What ``instrument`` returns: ``close()`` stops reporting its source.

    Closing is idempotent; a handle is also a context manager that closes
    on exit.
    """

    def __init__(self, instruments: _Instruments, source: Source) -> None:
        self._instruments = instruments
        self._source = source
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    def close(self) -> None:
        """Stop reporting this handle's source; the next collection leaves it out."""
        if not self._closed:
            self._closed = True
            self._instruments.remove(self._source)

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Instrumentation {'closed' if self._closed else 'open'}>"


class _Instruments:
    """The instruments of one meter, reading every open handle's source."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._sources: list[Source] = []
        counters: tuple[tuple[str, str, str, Callback], ...] = (
            ("circuit.calls", "{call}", "Calls through the breaker by outcome", self._calls),
            ("circuit.transitions", "{transition}", "Changes of state", self._transitions),
            (
                "ratelimit.requests",
                "{request}",
                "Permits asked for, by outcome (refunded: allowed, then handed back unused)",
                self._requests,
            ),
            (
                "bulkhead.rejected",
                "{call}",
                "Permits refused, failed try_acquire included",
                self._rejected,
            ),
            ("retry.attempts", "{attempt}", "Attempts by outcome", self._attempts),
        )
        gauges: tuple[tuple[str, str, str, Callback], ...] = (
            (
                "circuit.state",
                "1",
                "1 for the breaker's current state, 0 for the others",
                self._states,
            ),
            ("bulkhead.active", "{call}", "Calls holding a slot", self._active),
            (
                "error_budget.remaining",
                "1",
                "Fraction of the error budget left",
                self._remaining,
            ),
            (
                "health.status",
                "1",
                "1 for the check's current status, 0 for the others",
                self._health,
            ),
        )
        for suffix, unit, doc, callback in counters:
            meter.create_observable_counter(
                f"resilience.{suffix}", callbacks=[callback], unit=unit, description=doc
            )
        for suffix, unit, doc, callback in gauges:
            meter.create_observable_gauge(
                f"resilience.{suffix}", callbacks=[callback], unit=unit, description=doc
            )

    def add(self, source: Source) -> None:
        with self._lock:
            self._sources.append(source)

    def remove(self, source: Source) -> None:
        with self._lock:
            self._sources.remove(source)

    def _each(self, kind: str) -> Iterator[Any]:
        """Every policy of ``kind`` in the open sources, read now."""
        with self._lock:
            sources = list(self._sources)  # collected outside the lock: a read may be slow
        for source in sources:
            yield from source.policies().get(kind, [])

    # -- the callbacks, one per instrument; ``options`` carries nothing they use

    def _calls(self, options: CallbackOptions) -> Iterator[Observation]:
        for breaker in self._each("circuit_breakers"):
            name = label(breaker)
            for outcome, n in circuit_calls(breaker.stats):
                yield Observation(n, {NAME: name, OUTCOME: outcome})

    def _transitions(self, options: CallbackOptions) -> Iterator[Observation]:
        for breaker in self._each("circuit_breakers"):
            name = label(breaker)
            for old, new, n in circuit_transitions(breaker):
                attributes = {NAME: name, "resilience.from_state": old, "resilience.to_state": new}
                yield Observation(n, attributes)

    def _states(self, options: CallbackOptions) -> Iterator[Observation]:
        for breaker in self._each("circuit_breakers"):
            name = label(breaker)
            for state, on in circuit_states(breaker.stats):
                yield Observation(on, {NAME: name, "resilience.state": state})

    def _requests(self, options: CallbackOptions) -> Iterator[Observation]:
        for limiter in self._each("rate_limiters"):
            name = label(limiter)
            for outcome, n in ratelimit_requests(limiter.stats):
                yield Observation(n, {NAME: name, OUTCOME: outcome})

    def _active(self, options: CallbackOptions) -> Iterator[Observation]:
        for bulkhead in self._each("bulkheads"):
            yield Observation(bulkhead.stats.active, {NAME: label(bulkhead)})

    def _rejected(self, options: CallbackOptions) -> Iterator[Observation]:
        for bulkhead in self._each("bulkheads"):
            yield Observation(bulkhead.stats.rejected, {NAME: label(bulkhead)})

    def _attempts(self, options: CallbackOptions) -> Iterator[Observation]:
        for retry in self._each("retries"):
            name = label(retry)
            for outcome, n in retry_attempts(retry.stats):
                yield Observation(n, {NAME: name, OUTCOME: outcome})

    def _remaining(self, options: CallbackOptions) -> Iterator[Observation]:
        for budget in self._each("error_budgets"):
            yield Observation(budget.remaining, {NAME: label(budget)})

    def _health(self, options: CallbackOptions) -> Iterator[Observation]:
        for check in self._each("health_checks"):
            for status, on in health_statuses(check):
                yield Observation(on, {"resilience.check": check.name, "resilience.status": status})


# One set of instruments per meter, for as long as the meter lives (the
# provider keeps its meters; a dropped no-op meter takes its entry along).
_BY_METER: weakref.WeakKeyDictionary[Meter, _Instruments] = weakref.WeakKeyDictionary()
# And the global provider's, by meter name. Before the application sets its
# provider, the API hands out a new proxy meter at each ask, and when it is
# set every proxy's instruments move to the one real meter of that name,
# where all but the first set would lose their callbacks: so every
# instrument() through the global provider, before or after it is set,
# shares the first set made for the name.
_GLOBAL: dict[str, _Instruments] = {}
_LOCK = threading.Lock()


def instrument(
    source: ResilienceManager | Iterable[Any],
    *,
    meter_provider: MeterProvider | None = None,
    meter_name: str = "resilience",
) -> Instrumentation:
    """Report ``source``'s policies through observable instruments; see the module docstring.

    ``meter_provider`` defaults to the global one (``get_meter_provider()``,
    read now); ``meter_name`` names the meter (its instrumentation scope).
    The same policy reported by two open handles on one meter is observed
    twice, which the SDK reduces to one of the two readings.
    """
    if meter_provider is None:
        meter_provider = get_meter_provider()
    elif not isinstance(meter_provider, MeterProvider):
        raise TypeError(
            f"meter_provider must be an opentelemetry MeterProvider or None, got {meter_provider!r}"
        )
    if not isinstance(meter_name, str):
        raise TypeError(f"meter_name must be a str, got {meter_name!r}")
    if not meter_name:
        # The SDK would hand back a no-op meter, silently reporting nothing.
        raise ValueError(f"meter_name must not be empty, got {meter_name!r}")
    policies = Source(source)
    meter = meter_provider.get_meter(meter_name)
    with _LOCK:
        # The provider given may be the global one, set since an earlier
        # instrument() that used the default.
        is_global = meter_provider is get_meter_provider()
        instruments = _BY_METER.get(meter) or (_GLOBAL.get(meter_name) if is_global else None)
        if instruments is None:
            instruments = _Instruments(meter)
        _BY_METER[meter] = instruments
        if is_global:
            _GLOBAL[meter_name] = instruments
        instruments.add(policies)
    return Instrumentation(instruments, policies)
