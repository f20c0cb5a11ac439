"""One registry of named policies: get-or-create from code or from a config dict.

A service names its breakers, limiters, bulkheads, retries and budgets once
— in code or in a plain dict (the shape a TOML or YAML file loads into) —
and every caller asking for a name gets the same object. ``snapshot()``
reads every policy's stats as JSON-ready data, and the Prometheus
collector reads the same registry at each scrape.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

from . import backoff
from ._core import _fork
from ._core._nocopy import NoCopy
from ._core._validate import clock as check_clock
from ._policy import check_callable
from .breaker import CircuitBreaker
from .budget import ErrorBudget, LatencyBudget
from .bulkhead import Bulkhead
from .health import HealthCheck
from .pipeline import Pipeline
from .ratelimit import RateLimiter, rate_and_per
from .retry import Retry

__all__ = ["KINDS", "ResilienceManager", "jsonable"]

# Config key -> the class made for it. The order is the snapshot's.
KINDS: dict[str, type[Any]] = {
    "circuit_breakers": CircuitBreaker,
    "rate_limiters": RateLimiter,
    "bulkheads": Bulkhead,
    "retries": Retry,
    "error_budgets": ErrorBudget,
    "latency_budgets": LatencyBudget,
    "health_checks": HealthCheck,
}


# Config key -> the class a ``"shared": true`` entry of that kind makes, its
# state kept in Redis. Filled by ``resilience.redis`` when it is imported
# (the manager imports it only for a shared entry, so redis-py is needed
# only then).
SHARED_KINDS: dict[str, type[Any]] = {}

# Settings a shared kind takes under another name than its local kind.
SHARED_RENAMED: dict[str, dict[str, str]] = {"bulkheads": {"max_concurrent": "limit"}}


# What a config's ``{"backoff": {"kind": ...}}`` may name.
BACKOFF_KINDS: dict[str, Callable[..., Any]] = {
    name: getattr(backoff, name) for name in ("constant", "linear", "exponential", "fibonacci")
}
_NOT_A_PARAMETER = object()


class ResilienceManager(NoCopy):
    """Named policies, made once and shared; see the module docstring.

    ``config`` maps a kind (``"circuit_breakers"``, ``"rate_limiters"``,
    ``"bulkheads"``, ``"retries"``, ``"error_budgets"``,
    ``"latency_budgets"``) to ``{name: settings}``, the keyword arguments of
    that policy's constructor; a ``backoff`` setting may be a dict such as
    ``{"kind": "exponential", "initial": 0.1, "max": 2.0}`` naming a function
    of ``resilience.backoff``. A setting ``"shared": true`` makes the
    policy's fleet-wide kind from ``resilience.redis`` instead, its state in
    the Redis of ``store`` (a ``RedisStore``), with the same other settings.
    Configured policies are made at once, so a bad setting fails at
    start-up. ``clock`` and ``sleep`` are given to every policy that takes
    them and is not given its own (a ``FakeClock`` and its ``sleep`` make the
    whole registry instant in tests).

    Asking again for a name with settings checks each of them against the
    ones the policy was made with (or the constructor's defaults): a
    difference is a ``ValueError``.
    """

    def __init__(
        self,
        config: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Any] | None = None,
        store: Any = None,
    ) -> None:
        self._clock = check_clock(clock)
        self._sleep = check_callable("sleep", sleep)
        self._store = store  # checked by the shared policies it is given to
        self._lock = _fork.rlock()
        # kind -> name -> (settings it was made with, None if add()ed; the policy)
        self._made: dict[str, dict[str, tuple[dict[str, Any] | None, Any]]] = {
            kind: {} for kind in KINDS
        }
        self._config = check_config(config)
        for kind, named in self._config.items():
            for name in named:
                self._get(kind, name, {})

    def _get(self, kind: str, name: str, settings: dict[str, Any]) -> Any:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        label = f"{KINDS[kind].__name__} {name!r}"
        configured = self._config.get(kind, {}).get(name, {})
        settings = rate_normalised(settings)
        for key, value in settings.items():
            if key in configured and configured[key] != value:
                raise ValueError(
                    f"{label}: {key}={value!r} differs from the config's {configured[key]!r}"
                )
        with self._lock:
            made = self._made[kind].get(name)
            if made is None:
                wanted = {**configured, **settings}
                policy = self._make(kind, name, wanted)
                self._made[kind][name] = (wanted, policy)
                return policy
            existing, policy = made
            if settings and existing is None:
                raise ValueError(f"{label} was registered with add(): ask for it without settings")
            if existing is not None:
                # Each setting asked for must be the one it was made with
                # (or, if it was not given then, the constructor's default).
                defaults = defaults_of(type(policy))
                for key, value in settings.items():
                    made_with = existing.get(key, defaults.get(key, _NOT_A_PARAMETER))
                    if made_with is _NOT_A_PARAMETER or made_with != value:
                        raise ValueError(
                            f"{label} exists with other settings: {existing!r}, asked for"
                            f" {key}={value!r}"
                        )
            return policy

    def _make(self, kind: str, name: str, settings: dict[str, Any]) -> Any:
        arguments = dict(settings)
        shared = arguments.pop("shared", False)
        if type(shared) is not bool:
            raise TypeError(f"{kind} {name!r}: shared must be True or False, got {shared!r}")
        if isinstance(arguments.get("backoff"), Mapping):
            arguments["backoff"] = make_backoff(arguments["backoff"])
        cls = shared_kind(kind, name, self._store) if shared else KINDS[kind]
        if shared:
            for local, renamed in SHARED_RENAMED.get(kind, {}).items():
                if local in arguments:
                    arguments[renamed] = arguments.pop(local)
        parameters = parameters_of(cls)
        for key, value in (("clock", self._clock), ("sleep", self._sleep)):
            if key in parameters and key not in arguments and value is not None:
                arguments[key] = value
        if shared:
            return cls(self._store, name=name, **arguments)
        return cls(name=name, **arguments)

    def circuit_breaker(self, name: str, **settings: Any) -> CircuitBreaker:
        """The breaker called ``name``, made with ``settings`` the first time."""
        return self._get("circuit_breakers", name, settings)  # type: ignore[no-any-return]

    def rate_limiter(self, name: str, **settings: Any) -> RateLimiter:
        """The rate limiter called ``name``, made with ``settings`` the first time."""
        return self._get("rate_limiters", name, settings)  # type: ignore[no-any-return]

    def bulkhead(self, name: str, **settings: Any) -> Bulkhead:
        """The bulkhead called ``name``, made with ``settings`` the first time."""
        return self._get("bulkheads", name, settings)  # type: ignore[no-any-return]

    def retry(self, name: str, **settings: Any) -> Retry:
        """The retry policy called ``name``, made with ``settings`` the first time."""
        return self._get("retries", name, settings)  # type: ignore[no-any-return]

    def error_budget(self, name: str, **settings: Any) -> ErrorBudget:
        """The error budget called ``name``, made with ``settings`` the first time."""
        return self._get("error_budgets", name, settings)  # type: ignore[no-any-return]

    def latency_budget(self, name: str, **settings: Any) -> LatencyBudget:
        """The latency budget called ``name``, made with ``settings`` the first time."""
        return self._get("latency_budgets", name, settings)  # type: ignore[no-any-return]

    def add(self, policy: Any) -> Any:
        """Register a policy made elsewhere (named, of a kind above, or a ``HealthCheck``).

        Returns it. A name already taken in its kind by another object is a
        ``ValueError``.
        """
        kind = kind_of(policy)
        name = policy.name
        if not isinstance(name, str) or not name:
            raise ValueError(f"only named policies can be registered, got {policy!r}")
        with self._lock:
            made = self._made[kind].get(name)
            if made is None:
                self._made[kind][name] = (None, policy)
            elif made[1] is not policy:
                raise ValueError(f"{KINDS[kind].__name__} {name!r} is already registered")
        return policy

    def pipeline(self, *policies: Any) -> Pipeline:
        """``Pipeline(*policies)``, outermost first."""
        return Pipeline(*policies)

    def policies(self, kind: str | None = None) -> dict[str, Any]:
        """``{name: policy}`` of one kind, or of every kind as ``{kind: {...}}``."""
        with self._lock:
            if kind is None:
                return {k: {n: p for n, (_, p) in named.items()} for k, named in self._made.items()}
            if kind not in KINDS:
                raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
            return {name: policy for name, (_, policy) in self._made[kind].items()}

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every policy's stats, by kind then name, as JSON-serializable data.

        Enums become their values and non-finite floats ``None`` (JSON has
        no infinity), so ``json.dumps(snapshot, allow_nan=False)`` works.
        """
        return {
            kind: {name: jsonable(stats_of(policy)) for name, policy in named.items()}
            for kind, named in self.policies().items()
        }

    def __repr__(self) -> str:
        counts = ", ".join(f"{kind}={len(named)}" for kind, named in self._made.items() if named)
        return f"<ResilienceManager {counts or 'empty'}>"


def parameters_of(cls: type[Any]) -> Mapping[str, inspect.Parameter]:
    """The constructor's parameters (``__init__``'s: Bulkhead's ``__new__`` takes anything)."""
    return dict(list(inspect.signature(cls.__init__).parameters.items())[1:])


def defaults_of(cls: type[Any]) -> dict[str, Any]:
    """The constructor's default settings."""
    return {
        name: p.default
        for name, p in parameters_of(cls).items()
        if p.default is not inspect.Parameter.empty
    }


def rate_normalised(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as they are compared and used: a ``rate`` as its number and
    its ``per`` (a rate string such as ``"100/minute"`` split, ``per`` 1
    second when not given), so equal rates compare equal however written."""
    normalised = dict(settings)
    if "rate" in normalised:
        normalised["rate"], normalised["per"] = rate_and_per(
            normalised["rate"], normalised.get("per")
        )
    return normalised


def shared_kind(kind: str, name: str, store: Any) -> type[Any]:
    """The class a ``"shared": true`` entry of ``kind`` makes (importing ``resilience.redis``)."""
    if store is None:
        raise ValueError(
            f"{kind} {name!r} is shared: give the manager a store"
            " (ResilienceManager(config, store=RedisStore.from_url(...)))"
        )
    try:
        importlib.import_module("resilience.redis")
    except ImportError as exc:
        raise ImportError(
            f"{kind} {name!r} is shared, which needs redis-py:"
            " pip install 'resilience-primitives[redis]'"
        ) from exc
    if kind not in SHARED_KINDS:
        raise ValueError(
            f"{kind} {name!r}: only {sorted(SHARED_KINDS)} can be shared, got shared=True"
        )
    return SHARED_KINDS[kind]


def kind_of(policy: Any) -> str:
    """The config key for ``policy``'s class (a subclass counts as its base)."""
    for kinds in (KINDS, SHARED_KINDS):
        for kind, cls in kinds.items():
            if isinstance(policy, cls):
                return kind
    raise TypeError(f"policy must be one of {[c.__name__ for c in KINDS.values()]}, got {policy!r}")


def stats_of(policy: Any) -> Any:
    """What a snapshot shows of one policy."""
    if isinstance(policy, HealthCheck):
        return policy.report()
    return policy.stats


def check_config(
    config: Mapping[str, Mapping[str, Mapping[str, Any]]] | None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """The config as plain dicts, its kinds and names checked."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping of kinds, got {config!r}")
    checked: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, named in config.items():
        if kind not in KINDS or kind == "health_checks":
            configurable = [k for k in KINDS if k != "health_checks"]
            raise ValueError(f"config keys must be among {configurable}, got {kind!r}")
        if not isinstance(named, Mapping):
            raise TypeError(f"config[{kind!r}] must map names to settings, got {named!r}")
        checked[kind] = {}
        for name, settings in named.items():
            if not isinstance(settings, Mapping):
                raise TypeError(f"config[{kind!r}][{name!r}] must be a mapping, got {settings!r}")
            checked[kind][name] = rate_normalised(settings)
    return checked


def make_backoff(spec: Mapping[str, Any]) -> Any:
    """A backoff from ``{"kind": "<function of resilience.backoff>", **arguments}``."""
    arguments = dict(spec)
    kind = arguments.pop("kind", None)
    if kind not in BACKOFF_KINDS:
        raise ValueError(f"backoff kind must be one of {list(BACKOFF_KINDS)}, got {kind!r}")
    return BACKOFF_KINDS[kind](**arguments)


def jsonable(value: Any) -> Any:
    """Stats records as plain JSON data: dicts, lists, str, int, finite float, None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
