"""``python -m resilience bench --peers``: the same operations on this library and its peers.

Each row is one library doing one operation, set up through that library's
documented API:

- circuit breaker, closed: a decorated ``def f(): return 1`` (or ``async
  def``) that succeeds; breaker, open: the same call rejected, the breaker
  having been opened by ``fail_max`` / ``failure_threshold`` real failures
  (reset timeouts of an hour, so it stays open);
- retry, first try succeeds: a decorated function that returns at once,
  three attempts allowed, each library's exponential backoff;
- rate limiter, acquire allowed: one non-blocking acquire, with a rate so
  high that every acquire is granted (checked before and after timing);
- bulkhead, free: entering and leaving a free permit (a ``with`` block),
  against ``threading.BoundedSemaphore`` and ``asyncio.Semaphore``.

Every row is timed by the one timing loop (``timing``): the statement in
``Contender.stmt`` runs in a batch, an async one in one coroutine on the one
event loop, so the cost of entering the loop is shared by the batch and
also paid by the bare row it is set against. Every round times every row
once, in turn (the order reversed every other round), so drift on a noisy
machine hits all rows alike; a figure is the median over rounds. ``over
bare`` subtracts the bare call (``f()``) or bare await (``await af()``)
timed in the same round; ``vs ours`` divides by this library's compiled
row of the same operation, round by round.

Each section ends with the pure twin (what PyPy runs) set against the
fastest pure-Python peer of that row: the ratio of their costs over bare,
and whether it is within ``PURE_TARGET``. The standard library's
semaphores (``threading.BoundedSemaphore``, ``asyncio.Semaphore``) are left
out of it: they are the reference a bulkhead is set against, not a library
one would install instead (and they lean on C locks).

Peers are imported lazily; one that is not installed or fails to import is
reported and its rows are skipped. ``limits``' moving-window strategy is left
out: its in-memory storage inserts one entry per hit at the front of a list,
so with a limit high enough to admit every hit its cost grows with the number
of hits in the window and has no per-operation figure.
"""

from __future__ import annotations

import asyncio
import importlib
import statistics
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import metadata
from types import ModuleType, SimpleNamespace
from typing import Any

from .. import __version__
from ..bulkhead import Bulkhead
from ..errors import CircuitOpenError
from ..ratelimit import RateLimiter
from ..retry import Retry
from . import timing, workload
from .timing import af, f
from .twins import load_twins, running_on
from .workload import ACALL, AREJECT, CALL, HOUR, HUGE, REJECT, TRIP

PURE_TARGET = 1.5  # the pure twin's cost over bare, at most this times the fastest pure peer's

# distribution name -> import name
PEERS = {
    "pybreaker": "pybreaker",
    "circuitbreaker": "circuitbreaker",
    "aiobreaker": "aiobreaker",
    "purgatory": "purgatory",
    "tenacity": "tenacity",
    "backoff": "backoff",
    "stamina": "stamina",
    "limits": "limits",
    "pyrate-limiter": "pyrate_limiter",
    "aiolimiter": "aiolimiter",
    "token-bucket": "token_bucket",
    "throttled-py": "throttled",
}


class PeerUnavailable(Exception):
    """The peer a row needs did not import."""


@dataclass
class Peers:
    """The peers that imported (name -> version) and those that did not (name -> why)."""

    loaded: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    modules: dict[str, ModuleType] = field(default_factory=dict)

    def module(self, name: str, submodule: str = "") -> Any:
        if name not in self.modules:
            raise PeerUnavailable(self.failed.get(name, "not tried"))
        base = PEERS[name]
        return importlib.import_module(f"{base}.{submodule}" if submodule else base)


def import_peers() -> Peers:
    peers = Peers()
    for dist, module_name in PEERS.items():
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # any failure to import is reported, not fatal
            peers.failed[dist] = f"{type(exc).__name__}: {exc}"
            continue
        peers.modules[dist] = module
        try:
            peers.loaded[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            peers.loaded[dist] = str(getattr(module, "__version__", "?"))
    return peers


@dataclass(frozen=True)
class Contender:
    """One library doing one operation.

    ``setup(ctx)`` returns the namespace ``stmt`` runs in; it may also hold a
    ``"_check"`` callable run after timing, returning an error text or None,
    and a ``"_close"`` callable run at the end. An async ``stmt`` awaits.
    ``pure_peer`` is False for a row the pure twin is not set against: the
    standard library's semaphores.
    """

    operation: str
    mode: str  # "sync" or "async"
    library: str  # a PEERS key, "resilience" or "stdlib"
    stmt: str
    setup: Callable[[Context], dict[str, Any]]
    variant: str = ""  # e.g. "cython", "python", "FixedWindow"
    pure_peer: bool = True

    @property
    def is_async(self) -> bool:
        return self.mode == "async"


@dataclass
class Context:
    """What setups need: the twins, the peers, and the twin of an ``OURS`` row."""

    twins: dict[str, SimpleNamespace]
    peers: Peers
    twin: SimpleNamespace | None = None

    def peer(self, name: str, submodule: str = "") -> Any:
        return self.peers.module(name, submodule)

    def ours(self, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``make()`` with this library's policies built (and decorating) on the row's twin."""
        assert self.twin is not None
        with running_on(self.twin):
            return make()


def _require(ok: object, what: str) -> None:
    if not ok:
        raise AssertionError(what)


# -- circuit breakers ----------------------------------------------------------


def ours_closed(ctx: Context) -> dict[str, Any]:
    return ctx.ours(lambda: {"g": workload.breaker()(f)})


def ours_aclosed(ctx: Context) -> dict[str, Any]:
    return ctx.ours(lambda: {"g": workload.breaker()(af)})


def ours_open(ctx: Context) -> dict[str, Any]:
    return ctx.ours(lambda: workload.opened(workload.breaker(), CircuitOpenError))


def ours_aopen(ctx: Context) -> dict[str, Any]:
    return ctx.ours(lambda: workload.opened(workload.breaker(), CircuitOpenError, is_async=True))


def pybreaker_closed(ctx: Context) -> dict[str, Any]:
    pybreaker = ctx.peer("pybreaker")
    return {"g": pybreaker.CircuitBreaker(fail_max=TRIP, reset_timeout=HOUR)(f)}


def pybreaker_open(ctx: Context) -> dict[str, Any]:
    pybreaker = ctx.peer("pybreaker")
    breaker = pybreaker.CircuitBreaker(fail_max=TRIP, reset_timeout=HOUR)
    return workload.opened(breaker, pybreaker.CircuitBreakerError)


def circuitbreaker_closed(ctx: Context) -> dict[str, Any]:
    circuitbreaker = ctx.peer("circuitbreaker")
    return {"g": circuitbreaker.circuit(failure_threshold=TRIP, recovery_timeout=HOUR)(f)}


def circuitbreaker_aclosed(ctx: Context) -> dict[str, Any]:
    circuitbreaker = ctx.peer("circuitbreaker")
    return {"g": circuitbreaker.circuit(failure_threshold=TRIP, recovery_timeout=HOUR)(af)}


def _circuitbreaker_open(ctx: Context, mode: str) -> dict[str, Any]:
    circuitbreaker = ctx.peer("circuitbreaker")
    # circuit(...) returns the breaker; decorating two functions shares it.
    breaker = circuitbreaker.circuit(failure_threshold=TRIP, recovery_timeout=HOUR)
    return workload.opened(breaker, circuitbreaker.CircuitBreakerError, mode == "async")


def _aiobreaker(ctx: Context) -> Any:
    aiobreaker = ctx.peer("aiobreaker")
    return aiobreaker.CircuitBreaker(fail_max=TRIP, timeout_duration=timedelta(seconds=HOUR))


def aiobreaker_closed(ctx: Context) -> dict[str, Any]:
    return {"g": _aiobreaker(ctx)(f)}


def aiobreaker_aclosed(ctx: Context) -> dict[str, Any]:
    return {"g": _aiobreaker(ctx)(af)}


def _aiobreaker_open(ctx: Context, mode: str) -> dict[str, Any]:
    error = ctx.peer("aiobreaker").CircuitBreakerError
    return workload.opened(_aiobreaker(ctx), error, mode == "async")


def _purgatory(ctx: Context, mode: str) -> Any:
    """A purgatory breaker named ``bench``, from its sync or async factory."""
    purgatory = ctx.peer("purgatory")
    if mode == "async":
        factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=TRIP, default_ttl=HOUR)
        timing.run(factory.initialize())
    else:
        factory = purgatory.SyncCircuitBreakerFactory(default_threshold=TRIP, default_ttl=HOUR)
        factory.initialize()
    return factory("bench")


def purgatory_closed(ctx: Context) -> dict[str, Any]:
    return {"g": _purgatory(ctx, "sync")(f)}


def purgatory_aclosed(ctx: Context) -> dict[str, Any]:
    return {"g": _purgatory(ctx, "async")(af)}


def _purgatory_open(ctx: Context, mode: str) -> dict[str, Any]:
    opened = ctx.peer("purgatory", "domain.model").OpenedState  # what an open circuit raises
    return workload.opened(_purgatory(ctx, mode), opened, mode == "async")


# -- retries -------------------------------------------------------------------


def ours_retry(ctx: Context) -> dict[str, Any]:
    return ctx.ours(lambda: {"g": Retry(3)(f), "ag": Retry(3)(af)})


def tenacity_retry(ctx: Context) -> dict[str, Any]:
    tenacity = ctx.peer("tenacity")
    decorate = tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_random_exponential(multiplier=0.1, max=30),
        retry=tenacity.retry_if_exception_type(Exception),
    )
    return {"g": decorate(f), "ag": decorate(af)}


def backoff_retry(ctx: Context) -> dict[str, Any]:
    backoff = ctx.peer("backoff")
    decorate = backoff.on_exception(backoff.expo, Exception, max_tries=3)
    return {"g": decorate(f), "ag": decorate(af)}


def stamina_retry(ctx: Context) -> dict[str, Any]:
    stamina = ctx.peer("stamina")
    # No instrumentation hooks (logging, prometheus, structlog): they would
    # only run on a retry anyway; testing mode stays off.
    stamina.instrumentation.set_on_retry_hooks([])
    decorate = stamina.retry(on=Exception, attempts=3)
    return {"g": decorate(f), "ag": decorate(af)}


# -- rate limiters -------------------------------------------------------------


def ours_limiter(ctx: Context) -> dict[str, Any]:
    limiter = ctx.ours(lambda: {"lim": RateLimiter(HUGE)})["lim"]  # burst = rate: never dry
    _require(limiter.try_acquire(), "RateLimiter refused")

    def check() -> str | None:
        return None if limiter.stats.rejected == 0 else "RateLimiter rejected some acquires"

    return {"lim": limiter, "_check": check}


def _limits_item(ctx: Context) -> Any:
    return ctx.peer("limits").RateLimitItemPerSecond(HUGE)


def limits_fixed(ctx: Context) -> dict[str, Any]:
    limits = ctx.peer("limits")
    limiter = limits.strategies.FixedWindowRateLimiter(limits.storage.MemoryStorage())
    item = _limits_item(ctx)
    _require(limiter.hit(item, "bench"), "limits refused")
    return {"lim": limiter, "item": item, "_check": lambda: _ok(limiter.hit(item, "bench"))}


def limits_afixed(ctx: Context) -> dict[str, Any]:
    aio_storage = ctx.peer("limits", "aio.storage")
    aio_strategies = ctx.peer("limits", "aio.strategies")
    limiter = aio_strategies.FixedWindowRateLimiter(aio_storage.MemoryStorage())
    item = _limits_item(ctx)
    _require(timing.run(limiter.hit(item, "bench")), "limits (aio) refused")
    return {
        "lim": limiter,
        "item": item,
        "_check": lambda: _ok(timing.run(limiter.hit(item, "bench"))),
    }


def _ok(granted: object) -> str | None:
    return None if granted else "an acquire was refused after timing"


def _pyrate(limiter: Any) -> dict[str, Any]:
    _require(limiter.try_acquire("bench", blocking=False), "pyrate-limiter refused")
    return {
        "lim": limiter,
        "_check": lambda: _ok(limiter.try_acquire("bench", blocking=False)),
        "_close": limiter.close,  # stops its background leaker
    }


def pyrate_log(ctx: Context) -> dict[str, Any]:
    pyrate = ctx.peer("pyrate-limiter")
    # The README's form: Limiter(Rate) keeps a log of hits in an InMemoryBucket.
    return _pyrate(pyrate.Limiter(pyrate.Rate(HUGE, pyrate.Duration.SECOND)))


def pyrate_bucket(ctx: Context) -> dict[str, Any]:
    pyrate = ctx.peer("pyrate-limiter")
    factory = ctx.peer("pyrate-limiter", "limiter_factory")
    return _pyrate(factory.create_token_bucket_limiter(HUGE, pyrate.Duration.SECOND))


def pyrate_alog(ctx: Context) -> dict[str, Any]:
    ns = pyrate_log(ctx)
    limiter = ns["lim"]
    ns["_check"] = lambda: _ok(timing.run(limiter.try_acquire_async("bench", blocking=False)))
    return ns


def token_bucket_limiter(ctx: Context) -> dict[str, Any]:
    token_bucket = ctx.peer("token-bucket")
    limiter = token_bucket.Limiter(float(HUGE), HUGE, token_bucket.MemoryStorage())
    _require(limiter.consume("bench"), "token-bucket refused")
    return {"lim": limiter, "_check": lambda: _ok(limiter.consume("bench"))}


def throttled_limiter(ctx: Context) -> dict[str, Any]:
    throttled = ctx.peer("throttled-py")
    limiter = throttled.Throttled(
        key="bench", quota=throttled.per_sec(HUGE), store=throttled.MemoryStore()
    )
    _require(not limiter.limit().limited, "throttled-py refused")
    return {"lim": limiter, "_check": lambda: _ok(not limiter.limit().limited)}


def throttled_alimiter(ctx: Context) -> dict[str, Any]:
    aio = ctx.peer("throttled-py", "asyncio")
    limiter = aio.Throttled(key="bench", quota=aio.per_sec(HUGE), store=aio.MemoryStore())
    _require(not timing.run(limiter.limit()).limited, "throttled-py (asyncio) refused")
    return {"lim": limiter, "_check": lambda: _ok(not timing.run(limiter.limit()).limited)}


def aiolimiter_limiter(ctx: Context) -> dict[str, Any]:
    aiolimiter = ctx.peer("aiolimiter")
    limiter = aiolimiter.AsyncLimiter(HUGE, 1.0)

    async def capacity() -> bool:  # it reads the running loop's time
        return bool(limiter.has_capacity())

    _require(timing.run(capacity()), "aiolimiter has no capacity")
    return {"lim": limiter, "_check": lambda: _ok(timing.run(capacity()))}


# -- bulkheads -----------------------------------------------------------------


def ours_bulkhead(ctx: Context) -> dict[str, Any]:
    bulkhead = ctx.ours(lambda: {"b": Bulkhead(10)})["b"]

    def check() -> str | None:
        stats = bulkhead.stats
        return None if stats.rejected == 0 and stats.active == 0 else f"bulkhead: {stats}"

    return {"b": bulkhead, "_check": check}


def bounded_semaphore(ctx: Context) -> dict[str, Any]:
    return {"b": threading.BoundedSemaphore(10)}


def asyncio_semaphore(ctx: Context) -> dict[str, Any]:
    return {"b": asyncio.Semaphore(10)}


# -- the rows ------------------------------------------------------------------

BREAKER_CLOSED = "circuit breaker, closed: decorated call"
BREAKER_OPEN = "circuit breaker, open: call rejected"
RETRY = "retry, success on the first try"
LIMITER = "rate limiter: acquire, allowed"
BULKHEAD = "bulkhead: enter + leave, free"

OURS = "resilience"


def _ours(operation: str, mode: str, stmt: str, setup: Callable[[Context], Any]) -> list[Contender]:
    return [
        Contender(operation, mode, OURS, stmt, setup, variant=twin) for twin in ("cython", "python")
    ]


CONTENDERS: tuple[Contender, ...] = (
    # circuit breaker, closed
    *_ours(BREAKER_CLOSED, "sync", CALL, ours_closed),
    Contender(BREAKER_CLOSED, "sync", "pybreaker", CALL, pybreaker_closed),
    Contender(BREAKER_CLOSED, "sync", "circuitbreaker", CALL, circuitbreaker_closed),
    Contender(BREAKER_CLOSED, "sync", "aiobreaker", CALL, aiobreaker_closed),
    Contender(BREAKER_CLOSED, "sync", "purgatory", CALL, purgatory_closed),
    *_ours(BREAKER_CLOSED, "async", ACALL, ours_aclosed),
    Contender(BREAKER_CLOSED, "async", "circuitbreaker", ACALL, circuitbreaker_aclosed),
    Contender(BREAKER_CLOSED, "async", "aiobreaker", ACALL, aiobreaker_aclosed),
    Contender(BREAKER_CLOSED, "async", "purgatory", ACALL, purgatory_aclosed),
    # circuit breaker, open
    *_ours(BREAKER_OPEN, "sync", REJECT, ours_open),
    Contender(BREAKER_OPEN, "sync", "pybreaker", REJECT, pybreaker_open),
    Contender(
        BREAKER_OPEN, "sync", "circuitbreaker", REJECT, lambda c: _circuitbreaker_open(c, "sync")
    ),
    Contender(BREAKER_OPEN, "sync", "aiobreaker", REJECT, lambda c: _aiobreaker_open(c, "sync")),
    Contender(BREAKER_OPEN, "sync", "purgatory", REJECT, lambda c: _purgatory_open(c, "sync")),
    *_ours(BREAKER_OPEN, "async", AREJECT, ours_aopen),
    Contender(
        BREAKER_OPEN, "async", "circuitbreaker", AREJECT, lambda c: _circuitbreaker_open(c, "async")
    ),
    Contender(
        BREAKER_OPEN, "async", "aiobreaker", AREJECT, lambda c: _aiobreaker_open(c, "async")
    ),
    Contender(BREAKER_OPEN, "async", "purgatory", AREJECT, lambda c: _purgatory_open(c, "async")),
    # retry
    *_ours(RETRY, "sync", CALL, ours_retry),
    Contender(RETRY, "sync", "tenacity", CALL, tenacity_retry),
    Contender(RETRY, "sync", "backoff", CALL, backoff_retry),
    Contender(RETRY, "sync", "stamina", CALL, stamina_retry),
    *_ours(RETRY, "async", "await ag()", ours_retry),
    Contender(RETRY, "async", "tenacity", "await ag()", tenacity_retry),
    Contender(RETRY, "async", "backoff", "await ag()", backoff_retry),
    Contender(RETRY, "async", "stamina", "await ag()", stamina_retry),
    # rate limiter
    *_ours(LIMITER, "sync", "lim.try_acquire()", ours_limiter),
    Contender(
        LIMITER, "sync", "limits", 'lim.hit(item, "bench")', limits_fixed, variant="FixedWindow"
    ),
    Contender(
        LIMITER,
        "sync",
        "pyrate-limiter",
        'lim.try_acquire("bench", blocking=False)',
        pyrate_log,
        variant="InMemoryBucket",
    ),
    Contender(
        LIMITER,
        "sync",
        "pyrate-limiter",
        'lim.try_acquire("bench", blocking=False)',
        pyrate_bucket,
        variant="token bucket",
    ),
    Contender(LIMITER, "sync", "token-bucket", 'lim.consume("bench")', token_bucket_limiter),
    Contender(LIMITER, "sync", "throttled-py", "lim.limit()", throttled_limiter),
    *_ours(LIMITER, "async", "await lim.aacquire()", ours_limiter),
    Contender(LIMITER, "async", "aiolimiter", "await lim.acquire()", aiolimiter_limiter),
    Contender(
        LIMITER,
        "async",
        "limits",
        'await lim.hit(item, "bench")',
        limits_afixed,
        variant="FixedWindow",
    ),
    Contender(
        LIMITER,
        "async",
        "pyrate-limiter",
        'await lim.try_acquire_async("bench", blocking=False)',
        pyrate_alog,
        variant="InMemoryBucket",
    ),
    Contender(LIMITER, "async", "throttled-py", "await lim.limit()", throttled_alimiter),
    # bulkhead
    *_ours(BULKHEAD, "sync", "with b:\n    pass", ours_bulkhead),
    Contender(
        BULKHEAD,
        "sync",
        "stdlib",
        "with b:\n    pass",
        bounded_semaphore,
        variant="threading.BoundedSemaphore",
        pure_peer=False,
    ),
    *_ours(BULKHEAD, "async", "async with b:\n    pass", ours_bulkhead),
    Contender(
        BULKHEAD,
        "async",
        "stdlib",
        "async with b:\n    pass",
        asyncio_semaphore,
        variant="asyncio.Semaphore",
        pure_peer=False,
    ),
)

MODES = ("sync", "async")


def label(contender: Contender) -> str:
    if contender.library == "stdlib":
        return contender.variant
    if contender.variant:
        return f"{contender.library} ({contender.variant})"
    return contender.library


# -- timing --------------------------------------------------------------------


@dataclass
class Row:
    contender: Contender
    namespace: dict[str, Any]
    loop: timing.Loop


def _prepare(contender: Contender, ctx: Context, target: float) -> Row:
    ctx.twin = ctx.twins.get(contender.variant) if contender.library == OURS else None
    namespace = contender.setup(ctx)
    loop = timing.loop(contender.stmt, namespace, target, contender.is_async)
    return Row(contender, namespace, loop)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(
    repeat: int = 7,
    target: float = 0.1,
    out: Callable[[str], object] = print,
    progress: Callable[[str], object] = _stderr,
) -> dict[str, Any]:
    """Time every available row; print the table; return the results."""
    ctx = Context(load_twins(out), import_peers())
    skipped: list[dict[str, str]] = []
    rows: dict[str, Row] = {}
    try:
        bare = {f"bare {mode}": timing.bare(target, mode == "async") for mode in MODES}
        for contender in CONTENDERS:
            key = _key(contender)
            if contender.library == OURS and contender.variant not in ctx.twins:
                continue
            try:
                rows[key] = _prepare(contender, ctx, target)
            except PeerUnavailable as exc:
                skipped.append({"row": key, "reason": f"{contender.library}: {exc}",
                                "kind": "not imported"})
            except Exception as exc:  # a peer whose setup fails is reported, not fatal
                reason = f"setup failed: {type(exc).__name__}: {exc}"
                skipped.append({"row": key, "reason": reason, "kind": "setup"})
        progress(f"{len(rows) + len(bare)} rows, {repeat} rounds of about {target:g} s per row")
        loops = {**bare, **{key: row.loop for key, row in rows.items()}}
        samples = timing.interleaved(loops, repeat, progress)
        for key, row in rows.items():
            check = row.namespace.get("_check")
            problem = check() if check else None
            if problem:
                reason = f"check after timing failed: {problem}"
                skipped.append({"row": key, "reason": reason, "kind": "check"})
    finally:
        for row in rows.values():
            close = row.namespace.get("_close")
            if close:
                close()
    results = _results(rows, samples, ctx.peers, skipped, repeat, target)
    _print(results, out)
    return results


def _key(contender: Contender) -> str:
    return f"{contender.operation} | {contender.mode} | {label(contender)}"


def _results(
    rows: dict[str, Row],
    samples: dict[str, list[float]],
    peers: Peers,
    skipped: list[dict[str, str]],
    repeat: int,
    target: float,
) -> dict[str, Any]:
    failed_checks = {s["row"] for s in skipped if s["kind"] == "check"}
    table: list[dict[str, Any]] = []
    for key, row in rows.items():
        c = row.contender
        if key in failed_checks:
            continue
        bare = samples[f"bare {c.mode}"]
        reference = _reference(samples, c)
        entry: dict[str, Any] = {
            "operation": c.operation,
            "mode": c.mode,
            "library": c.library,
            "variant": c.variant,
            "label": label(c),
            "pure_peer": c.pure_peer,
            "statement": c.stmt,
            "version": __version__ if c.library == OURS else peers.loaded.get(c.library, ""),
            "ns": statistics.median(samples[key]),
            "over_bare": timing.difference(samples[key], bare),
            "bare_ns": statistics.median(bare),
            "vs_ours": None if reference is None else timing.ratio(samples[key], reference),
            "samples": samples[key],
        }
        table.append(entry)
    return {
        "repeat": repeat,
        "target_seconds": target,
        "async_batch": timing.BATCH,
        "peers": peers.loaded,
        "peers_failed": peers.failed,
        "skipped": skipped,
        "bare": {mode: statistics.median(samples[f"bare {mode}"]) for mode in MODES},
        "rows": table,
        "pure_vs_peers": [_pure_vs_peers(entries) for entries in _sections(table).values()],
    }


def _reference(samples: dict[str, list[float]], c: Contender) -> list[float] | None:
    for twin in ("cython", "python"):
        key = f"{c.operation} | {c.mode} | {OURS} ({twin})"
        if key in samples:
            return samples[key]
    return None


def _sections(table: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The rows by (operation, mode), in order."""
    sections: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in table:
        sections.setdefault((entry["operation"], entry["mode"]), []).append(entry)
    return sections


def _pure_vs_peers(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The pure twin's cost over bare against the fastest pure-Python peer's, on one row."""
    first = entries[0]
    verdict: dict[str, Any] = {"operation": first["operation"], "mode": first["mode"],
                               "pure_over_bare": None, "peer": None, "peer_over_bare": None,
                               "ratio": None, "within": None, "target": PURE_TARGET}
    pure = [e for e in entries if e["library"] == OURS and e["variant"] == "python"]
    peers = [e for e in entries if e["library"] != OURS and e["pure_peer"]]
    if pure:
        verdict["pure_over_bare"] = pure[0]["over_bare"]
    if peers:
        fastest = min(peers, key=lambda e: e["over_bare"])
        verdict["peer"] = f"{fastest['label']} {fastest['version']}".strip()
        verdict["peer_over_bare"] = fastest["over_bare"]
    if pure and peers and verdict["peer_over_bare"] > 0:
        verdict["ratio"] = verdict["pure_over_bare"] / verdict["peer_over_bare"]
        verdict["within"] = verdict["ratio"] <= PURE_TARGET
    return verdict


def _verdict_line(verdict: dict[str, Any]) -> str:
    head = "pure twin vs fastest pure-Python peer"
    if verdict["pure_over_bare"] is None:
        return f"{head}: no pure twin in this run"
    if verdict["peer"] is None:
        return f"{head}: none on this row"
    if verdict["ratio"] is None:
        return f"{head} ({verdict['peer']}): its cost over bare is not positive, no ratio"
    met = "met" if verdict["within"] else "MISSED"
    return (
        f"{head} ({verdict['peer']}): {verdict['pure_over_bare']:+.1f} /"
        f" {verdict['peer_over_bare']:+.1f} ns over bare = {verdict['ratio']:.2f}x;"
        f" target <= {PURE_TARGET}x: {met}"
    )


def _print(results: dict[str, Any], out: Callable[[str], object]) -> None:
    env = timing.environment()
    out(f"resilience {__version__} vs peers on {timing.platform_line(env)}, {env['date']}")
    out(
        f"median of {results['repeat']} interleaved rounds; async rows: {timing.BATCH} awaits"
        " per coroutine; over bare: minus f() / await af() timed in the same round;"
        " vs ours: / resilience (cython)"
    )
    out(f"bare call f(): {results['bare']['sync']:.1f} ns; bare await af():"
        f" {results['bare']['async']:.1f} ns")
    sections = _sections(results["rows"])
    for ((operation, mode), entries), verdict in zip(
        sections.items(), results["pure_vs_peers"], strict=True
    ):
        out("")
        out(f"{operation + ' (' + mode + ')':<52}{'ns/op':>10}{'over bare':>11}{'vs ours':>9}")
        for entry in entries:
            ratio = "" if entry["vs_ours"] is None else f"{entry['vs_ours']:.1f}x"
            out(f"  {entry['label'] + ' ' + entry['version']:<50}{entry['ns']:>10.1f}"
                f"{entry['over_bare']:>+11.1f}{ratio:>9}")
        out(f"  {_verdict_line(verdict)}")
    out("")
    loaded = ", ".join(f"{n} {v}" for n, v in results["peers"].items())
    out(f"peers imported: {loaded or 'none (pip install -r benchmarks/requirements.txt)'}")
    for name, why in results["peers_failed"].items():
        out(f"peer not imported: {name}: {why}")
    for skip in results["skipped"]:
        if skip["kind"] != "not imported":  # those rows are the peers named above
            out(f"row skipped: {skip['row']}: {skip['reason']}")
