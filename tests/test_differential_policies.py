"""Differential tests of the POLICIES: the same policy on both twins, every call form.

``tests/test_differential.py`` drives the core classes in lock step; these
tests drive what a user touches. Each example builds the same policy twice,
once on the compiled core and once on the pure one (``resilience._core.SELECTED``
set to the twin while it is built and while it runs), each with its own
``FakeClock`` started at the same, sometimes extreme, time. Both then get the
same operations, in one ``asyncio.run``: calls through a form drawn per step
(the decorator on a ``def`` and on a method, ``policy.call``, ``with policy:``,
the decorator on an ``async def`` and on an async method, ``await
policy.acall``, ``async with policy:``), ``with`` blocks held open across
steps, clock advances, the policy's own methods, calls inside a ``deadline``
(read on the same FakeClock), and async calls run as tasks side by side that
are cancelled wherever they stand after a drawn number of turns of the event
loop (a permit or a reservation held, a backoff or a queue being waited out).
Every policy is driven: CircuitBreaker, RateLimiter, AdaptiveRateLimiter,
Bulkhead, Retry, Fallback, Timeout (with limits that cannot fire in real time,
or zero), and Pipelines of any of them, nested ones included.

A step's function succeeds, raises (a recorded, an ignored or another
exception, one carrying ``retry_after``, ``CancelledError``), returns a value
that ``failure_if`` / ``retry_if_result`` judges bad, advances the clock while
it runs (slow calls), or calls the policy again from inside (nesting). After
every step both twins must agree on the outcome (the value, or the exception's
type, args, message, attributes and notes, and whether it is the very object
the function raised), the listener calls, and — in the examples that "peek" —
everything the policy shows: ``state``, ``stats`` (as a dict), ``transitions``,
``available``, ``active`` / ``waiting``, ``repr``. Reading ``state`` or
``available`` moves a breaker or a bucket along, so the other examples compare
only what reading cannot change after each step, and everything at the end.

Floats are compared bit for bit, by ``repr``: the twins compute the same floats.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import math
from collections.abc import Callable, Iterator
from random import Random
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import Phase, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from resilience import (
    AdaptiveRateLimiter,
    Bulkhead,
    CircuitBreaker,
    CircuitState,
    Fallback,
    Pipeline,
    RateLimiter,
    Retry,
    RetryBudget,
    Timeout,
    _core,
    deadline,
)
from resilience.backoff import constant, exponential
from resilience.testing import FakeClock

Twins = tuple[SimpleNamespace, SimpleNamespace]
Op = tuple[Any, ...]

# Hypothesis's explain phase traces every line of a failing example; on examples
# this long it takes many minutes and gigabytes. Counts stay the profile's.
NO_EXPLAIN = settings(phases=tuple(p for p in Phase if p is not Phase.explain))

# The clock both twins start at: ordinary, huge, and far below zero.
CLOCK_STARTS = st.sampled_from([0.0, -1e9, 1e9, 12345.678, -0.5]) | st.floats(-1e9, 1e9)

# "mdeco" / "amdeco": the decorator on a method, called on an instance.
SYNC_FORMS = ("deco", "call", "with", "mdeco")
ASYNC_FORMS = ("adeco", "acall", "awith", "amdeco")
AS_SYNC = {"adeco": "deco", "acall": "call", "awith": "with", "amdeco": "mdeco"}
AWAITED = frozenset(ASYNC_FORMS) | {"aiter"}


# -- what the step functions raise ----------------------------------------------------


class Boom(Exception):
    """Recorded by every ``record`` below (and ignored by one ``ignore``)."""


class Benign(Exception):
    """Ignored by most ``ignore`` settings."""


class Other(Exception):
    """Recorded or counted as a success, depending on ``record``."""


class Later(Exception):
    """Carries a ``retry_after``, as a server's refusal would; Retry honours it."""

    def __init__(self, label: str, retry_after: float) -> None:
        super().__init__(label)
        self.retry_after = retry_after


EXCEPTIONS: dict[str, type[BaseException]] = {
    "Boom": Boom,
    "Benign": Benign,
    "Other": Other,
    "Cancel": asyncio.CancelledError,  # never a failure, never retried
}
CAUGHT = (Exception, asyncio.CancelledError)


def judge(result: Any) -> bool:
    """``failure_if`` / ``retry_if_result``: a ("bad", ...) result is a failure."""
    return isinstance(result, tuple) and bool(result) and result[0] == "bad"


def owners(args: tuple[Any, ...]) -> list[str]:
    """The labels of the ``self`` a decorated method passed on before the script."""
    return [owner.label for owner in args[:-1]]


def fallback(*args: Any, tag: Any = None) -> Any:
    """The breaker's fallback: echoes what it was called with."""
    return ("fallback", owners(args), tag, args[-1].n)


def handler(exc: BaseException, *args: Any, tag: Any = None) -> Any:
    """Fallback policy's handler."""
    return ("handled", type(exc).__name__, owners(args), tag, args[-1].n)


def picky_handler(exc: BaseException, *args: Any, tag: Any = None) -> Any:
    """A handler that fails in turn on ``Other``: its error replaces the call's."""
    if isinstance(exc, Other):
        raise Benign(f"handler of {exc}")
    return handler(exc, *args, tag=tag)


async def async_handler(exc: BaseException, *args: Any, tag: Any = None) -> Any:
    """A coroutine handler: the async forms await what it returns."""
    await asyncio.sleep(0)
    return handler(exc, *args, tag=tag)


# -- comparing ------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Exactly equal: same types, floats bit for bit (NaN == NaN, 0.0 != -0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def expect_same(label: str, compiled: Any, pure: Any) -> None:
    if same(compiled, pure):
        return
    if isinstance(compiled, dict) and isinstance(pure, dict):
        keys = sorted(set(compiled) | set(pure), key=str)
        diff = {
            k: (compiled.get(k), pure.get(k))
            for k in keys
            if not same(compiled.get(k), pure.get(k))
        }
        raise AssertionError(f"{label}: compiled != pure at {diff!r}")
    raise AssertionError(f"{label}: compiled {compiled!r} != pure {pure!r}")


def plain(value: Any, policy: Any = None) -> Any:
    """``value`` made comparable across the twins (no object identities left)."""
    if policy is not None and value is policy:
        return "<the policy>"
    if isinstance(value, BaseException):
        return describe(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Not dataclasses.asdict: it deep-copies fields (exceptions included).
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(plain(v, policy) for v in value)
    if value is None or isinstance(value, (bool, int, float, str, enum.Enum, type)):
        return value
    return f"<{type(value).__name__}>"


def describe(exc: BaseException, original: BaseException | None = None) -> tuple[Any, ...]:
    """An exception by everything one can see of it."""
    fields = {k: plain(v) for k, v in vars(exc).items()}  # __notes__ included
    return (
        "raised",
        type(exc),
        plain(exc.args),
        str(exc),
        fields,
        exc is original,
        type(exc.__context__),
        type(exc.__cause__),
    )


def transitions(breaker: CircuitBreaker) -> dict[str, int]:
    return {f"{old.value}->{new.value}": n for (old, new), n in breaker.transitions.items()}


# -- one twin's side of an example ------------------------------------------------------


class Side:
    """One twin's policy, clock, listener log and open ``with`` blocks."""

    def __init__(self, impl: SimpleNamespace, start: float) -> None:
        self.impl = impl
        self.clock = FakeClock(start)
        self.log: list[Any] = []
        self.held: list[tuple[bool, Any]] = []  # (async?, context manager), oldest first
        self.outcomes: list[Any] = []  # what each operation returned or raised
        self.policy: Any = None
        self.deco: Any = None
        self.adeco: Any = None
        self.holder: Any = None  # an instance whose methods the policy decorates


@contextlib.contextmanager
def selected(impl: SimpleNamespace) -> Iterator[None]:
    """Policies built (and run) in here take their core classes from ``impl``."""
    saved = _core.SELECTED
    _core.SELECTED = impl
    try:
        yield
    finally:
        _core.SELECTED = saved


class Script:
    """What one step's function does, attempt after attempt (Retry calls it again).

    An attempt is ``(kind, arg, delay)``: ``delay`` seconds pass on the side's
    clock while it runs, then it returns ("ok" / "bad"), raises ("raise",
    "later") or makes an inner step through the policy ("nest").
    """

    def __init__(self, side: Side, attempts: tuple[Op, ...]) -> None:
        self.side = side
        self.attempts = attempts
        self.n = 0
        self.last: BaseException | None = None

    def _next(self) -> Op:
        attempt = self.attempts[min(self.n, len(self.attempts) - 1)]
        self.n += 1
        return attempt

    def _finish(self, kind: str, arg: Any, tag: Any) -> Any:
        if kind in ("ok", "bad"):
            return (kind, arg, tag, self.n)
        if kind == "later":
            exc: BaseException = Later(f"later#{self.n}", arg)
        else:
            exc = EXCEPTIONS[arg](f"{arg}#{self.n}")
        self.last = exc
        raise exc

    def run(self, tag: Any) -> Any:
        kind, arg, delay = self._next()
        if delay:
            self.side.clock.advance(delay)
        if kind == "nest":
            form, attempts = arg
            return ("nested", step_sync(self.side, AS_SYNC.get(form, form), attempts, None))
        return self._finish(kind, arg, tag)

    async def arun(self, tag: Any) -> Any:
        kind, arg, delay = self._next()
        if delay:
            await self.side.clock.asleep(delay)
        if kind == "nest":
            form, attempts = arg
            return ("nested", await step_async(self.side, form, attempts, None))
        return self._finish(kind, arg, tag)


def work(script: Script, tag: Any = None) -> Any:
    return script.run(tag)


async def awork(script: Script, tag: Any = None) -> Any:
    return await script.arun(tag)


class Holder:
    """The owner of decorated methods: the wrappers must bind ``self`` as functions do."""

    label = "holder"


def method_work(self: Holder, script: Script, tag: Any = None) -> Any:
    return script.run((self.label, tag))


async def amethod_work(self: Holder, script: Script, tag: Any = None) -> Any:
    return await script.arun((self.label, tag))


def holder_of(policy: Any) -> Holder:
    """An instance of a class whose ``run`` / ``arun`` methods ``policy`` decorates."""
    methods = {"run": policy(method_work), "arun": policy(amethod_work)}
    return type("Decorated", (Holder,), methods)()  # type: ignore[no-any-return]


def kwargs_of(tag: Any) -> dict[str, Any]:
    return {} if tag is None else {"tag": tag}


def finished(side: Side, script: Script, value: Any) -> Any:
    return ("returned", plain(value, side.policy), script.n)


def step_sync(side: Side, form: str, attempts: tuple[Op, ...], tag: Any) -> Any:
    """One call through a sync form; its outcome, made comparable."""
    script = Script(side, attempts)
    policy = side.policy
    try:
        if form == "deco":
            value = side.deco(script, **kwargs_of(tag))
        elif form == "mdeco":
            value = side.holder.run(script, **kwargs_of(tag))
        elif form == "call":
            value = policy.call(work, script, **kwargs_of(tag))
        elif form == "with":
            with policy as entered:
                value = (plain(entered, policy), work(script, tag))
        elif form == "iter":  # Retry: for attempt in retry: with attempt: ...
            value = None
            for attempt in policy:
                with attempt:
                    value = (attempt.number, work(script, tag))
        else:
            raise AssertionError(form)
    except CAUGHT as exc:
        return (*describe(exc, script.last), script.n)
    return finished(side, script, value)


async def step_async(side: Side, form: str, attempts: tuple[Op, ...], tag: Any) -> Any:
    """One call through any form; its outcome, made comparable."""
    if form not in AWAITED:
        return step_sync(side, form, attempts, tag)
    script = Script(side, attempts)
    policy = side.policy
    try:
        if form == "adeco":
            value = await side.adeco(script, **kwargs_of(tag))
        elif form == "amdeco":
            value = await side.holder.arun(script, **kwargs_of(tag))
        elif form == "acall":
            value = await policy.acall(awork, script, **kwargs_of(tag))
        elif form == "awith":
            async with policy as entered:
                value = (plain(entered, policy), await awork(script, tag))
        else:  # "aiter"
            value = None
            async for attempt in policy:
                with attempt:
                    value = (attempt.number, await awork(script, tag))
    except CAUGHT as exc:
        return (*describe(exc, script.last), script.n)
    return finished(side, script, value)


def exit_exception(kind: str | None) -> BaseException | None:
    return None if kind is None else EXCEPTIONS[kind](f"{kind} in with")


async def apply(side: Side, op: Op) -> Any:
    """Run ``op`` on one side; what it returned or raised."""
    name = op[0]
    policy = side.policy
    if name == "advance":
        side.clock.advance(op[1])
        return None
    if name == "step":
        return await step_async(side, op[1], op[2], op[3])
    if name == "within":  # the inner operation inside a deadline on the side's clock
        with deadline(op[1], clock=side.clock):
            return ("within", await apply(side, op[2]))
    if name == "tasks":
        return await as_tasks(side, op[1], op[2:])
    if name == "open":  # enter a with block and keep it open across steps
        try:
            entered = await policy.__aenter__() if op[1] else policy.__enter__()
        except CAUGHT as exc:
            return describe(exc)
        side.held.append((op[1], policy))
        return ("entered", plain(entered, policy))
    if name == "close":  # leave one of the open blocks, with or without an exception
        if not side.held:
            return "nothing held"
        is_async, cm = side.held.pop(op[1] % len(side.held))
        exc = exit_exception(op[2])
        args = (None if exc is None else type(exc), exc, None)
        try:
            result = await cm.__aexit__(*args) if is_async else cm.__exit__(*args)
        except CAUGHT as error:
            return describe(error)
        return ("exited", plain(result))
    if name in ("method", "amethod"):
        try:
            result = getattr(policy, op[1])(*op[2])
            if name == "amethod":
                result = await result
        except CAUGHT as exc:
            return describe(exc)
        return plain(result, policy)
    raise AssertionError(op)


async def as_tasks(side: Side, turns: int, ops: tuple[Op, ...]) -> Any:
    """``ops`` as tasks side by side; those still running after ``turns`` turns of
    the loop are cancelled, wherever they stand (the turns are the same on both twins)."""
    tasks = [asyncio.ensure_future(apply(side, op)) for op in ops]
    for _ in range(turns):
        if all(task.done() for task in tasks):
            break
        await asyncio.sleep(0)
    cancelled = [task.cancel() for task in tasks]
    results = []
    for task in tasks:
        try:
            results.append(await task)
        except asyncio.CancelledError:  # cancelled before it started
            results.append("never started")
    return ("tasks", cancelled, results)


# -- observing ---------------------------------------------------------------------------


def observe(policy: Any, full: bool) -> dict[str, Any]:
    """What ``policy`` shows. Unless ``full``, only what reading cannot change."""
    seen: dict[str, Any] = {}
    if isinstance(policy, CircuitBreaker):
        seen["transitions"] = transitions(policy)
        if full:
            seen["state"] = policy.state
            seen["stats"] = plain(policy.stats)
            seen["repr"] = repr(policy)
            seen["transitions again"] = transitions(policy)  # reading state may move it
    elif isinstance(policy, RateLimiter):
        seen["rate"] = policy.rate
        if full:
            seen["available"] = policy.available
            seen["stats"] = plain(policy.stats)
            seen["repr"] = repr(policy)
    elif isinstance(policy, Bulkhead):
        seen["active"] = policy.active
        seen["waiting"] = policy.waiting
        seen["stats"] = plain(policy.stats)
        seen["repr"] = repr(policy)
    elif isinstance(policy, (Retry, Fallback, Timeout)):
        seen["stats"] = plain(policy.stats)
    elif isinstance(policy, Pipeline):
        for i, member in enumerate(policy.policies):
            for key, value in observe(member, full).items():
                seen[f"{i}:{type(member).__name__}.{key}"] = value
        if full:
            seen["stats"] = plain(policy.stats)
    else:
        raise AssertionError(policy)
    return seen


def compare(label: str, sides: list[Side], full: bool) -> None:
    a, b = sides
    expect_same(f"{label}: listener calls", a.log, b.log)
    expect_same(f"{label}: clock", a.clock(), b.clock())
    expect_same(f"{label}: with blocks open", len(a.held), len(b.held))
    with selected(a.impl):
        seen_a = observe(a.policy, full)
    with selected(b.impl):
        seen_b = observe(b.policy, full)
    expect_same(label, seen_a, seen_b)


def note_outcome(op: Op, result: Any) -> None:
    """Statistics (``--hypothesis-show-statistics``): what the steps ended in."""
    if not currently_in_test_context():
        return
    if op[0] == "within":
        note_outcome(op[2], result[1])
    elif op[0] == "tasks":
        _, cancelled, results = result
        event(f"tasks: {sum(cancelled)} of {len(cancelled)} cancelled")
        for inner, inner_result in zip(op[2:], results, strict=True):
            if inner_result != "never started":
                note_outcome(inner, inner_result)
    elif op[0] == "step":
        what = result[1].__name__ if result[0] == "raised" else str(result[1][0])[:12]
        event(f"{op[1]} -> {what}")
    elif op[0] in ("method", "amethod"):
        what = result[1].__name__ if isinstance(result, tuple) and result[0] == "raised" else "ok"
        event(f"{op[1]} -> {what}")


def lockstep(
    twins: Twins, build: Callable[[Side], Any], start: float, ops: list[Op], peek: bool
) -> list[Side]:
    """Build on both twins, run ``ops`` on both, compare after every step."""
    sides = [Side(impl, start) for impl in twins]
    made = []
    for side in sides:
        with selected(side.impl):
            try:
                side.policy = build(side)
            except Exception as exc:
                made.append(describe(exc))
                continue
            made.append("built")
            side.deco = side.policy(work)
            side.adeco = side.policy(awork)
            side.holder = holder_of(side.policy)
    expect_same("construction", *made)
    if made[0] != "built":
        return sides

    async def run() -> None:
        compare("built", sides, full=True)
        for i, op in enumerate(ops):
            label = f"op {i} {op!r}"
            results = []
            for side in sides:
                with selected(side.impl):
                    results.append(await apply(side, op))
            expect_same(f"{label}: outcome", *results)
            for side, result in zip(sides, results, strict=True):
                side.outcomes.append(result)
            note_outcome(op, results[0])
            compare(label, sides, full=peek)
        compare("at the end", sides, full=True)
        if currently_in_test_context():
            for key, value in observe(sides[0].policy, full=False).items():
                if key.endswith("transitions"):
                    for change in value:
                        event(f"transition {change}")

    asyncio.run(run())
    return sides


# -- drawing ---------------------------------------------------------------------------


def weighted(*rows: tuple[list[Any], int]) -> st.SearchStrategy[Any]:
    """One of the values, each row's values ``weight`` times as likely."""
    return st.sampled_from([v for values, weight in rows for v in values for _ in range(weight)])


@st.composite
def attempt(
    draw: st.DrawFn,
    kinds: st.SearchStrategy[str],
    delays: list[float],
    retry_afters: list[float],
    nest_forms: tuple[str, ...] = (),
) -> Op:
    """One attempt of a step's function: ``(kind, arg, delay)``."""
    kind = draw(kinds)
    delay = draw(st.sampled_from(delays))
    if kind == "nest" and not nest_forms:
        kind = "ok"
    if kind in ("ok", "bad"):
        return (kind, draw(st.integers(0, 2)), delay)
    if kind == "raise":
        return (
            kind,
            draw(weighted((["Boom"], 4), (["Benign", "Other"], 2), (["Cancel"], 1))),
            delay,
        )
    if kind == "later":
        return (kind, draw(st.sampled_from(retry_afters)), delay)
    inner = draw(attempt(kinds.filter(lambda k: k != "nest"), delays, retry_afters))
    return ("nest", (draw(st.sampled_from(nest_forms)), (inner,)), delay)


def scripts(
    kinds: st.SearchStrategy[str],
    delays: list[float],
    retry_afters: tuple[float, ...] | list[float] = (0.0,),
    nest_forms: tuple[str, ...] = (),
    max_attempts: int = 1,
) -> st.SearchStrategy[tuple[Op, ...]]:
    one = attempt(kinds, delays, list(retry_afters), nest_forms)
    if max_attempts == 1:
        return st.tuples(one)
    failing = attempt(
        kinds.filter(lambda k: k in ("raise", "later", "bad")), delays, list(retry_afters)
    )
    # fail k times, then succeed; or any sequence of attempts
    k_then_ok = st.tuples(failing, st.integers(0, max_attempts)).map(
        lambda fk: (fk[0],) * fk[1] + (("ok", 0, 0.0),)
    )
    return k_then_ok | st.lists(one, min_size=1, max_size=max_attempts).map(tuple)


TAGS = weighted(([None], 3), (["t"], 1))


def step_ops(
    forms: tuple[str, ...], script_strategy: st.SearchStrategy[tuple[Op, ...]]
) -> st.SearchStrategy[Op]:
    return st.tuples(st.just("step"), st.sampled_from(forms), script_strategy, TAGS)


def advances(amounts: list[float]) -> st.SearchStrategy[Op]:
    return st.tuples(st.just("advance"), st.sampled_from(amounts))


def held_ops(exit_kinds: list[str | None], *, sync: bool, asyn: bool) -> st.SearchStrategy[Op]:
    families = [False] * sync + [True] * asyn
    return st.tuples(st.just("open"), st.sampled_from(families)) | st.tuples(
        st.just("close"), st.integers(0, 3), st.sampled_from(exit_kinds)
    )


def task_ops(*ops: st.SearchStrategy[Op]) -> st.SearchStrategy[Op]:
    """One or two of ``ops`` as tasks side by side, cancelled after 1 to 5 turns of the loop
    (mostly early: a step suspends once or twice, at its own awaits and its waits)."""
    return st.builds(
        lambda turns, inner: ("tasks", turns, *inner),
        st.sampled_from([1, 1, 1, 2, 2, 3, 5]),
        st.lists(st.one_of(*ops), min_size=1, max_size=2),
    )


def within_ops(seconds: list[float], inner: st.SearchStrategy[Op]) -> st.SearchStrategy[Op]:
    """``inner`` inside ``deadline(seconds)`` on the side's clock."""
    return st.tuples(st.just("within"), st.sampled_from(seconds), inner)


def method(name: str, *args: st.SearchStrategy[Any], awaited: bool = False) -> Any:
    return st.tuples(st.just("amethod" if awaited else "method"), st.just(name), st.tuples(*args))


@st.composite
def pick(draw: st.DrawFn, table: list[st.SearchStrategy[Op]]) -> Op:
    return draw(draw(st.sampled_from(table)))


def ops_of(*rows: tuple[st.SearchStrategy[Op], int], max_size: int = 40) -> Any:
    """Lists of operations, each drawn from a row chosen by weight.

    (Not ``st.one_of``: it flattens nested alternatives, losing the weights.)
    """
    table = [s for s, weight in rows for _ in range(weight)]
    return st.lists(pick(table), min_size=max_size // 4, max_size=max_size)


# -- CircuitBreaker --------------------------------------------------------------------

RECORDS = [Exception, Boom, (Boom, Other), (Boom, Later)]
IGNORES = [(), Benign, (Benign, Other), Boom]
BREAKER_KINDS = weighted((["ok"], 6), (["raise"], 6), (["bad"], 2), (["later", "nest"], 1))


@st.composite
def breaker_scenarios(draw: st.DrawFn, timed: bool) -> tuple[dict[str, Any], float, list[Op]]:
    rt = draw(st.sampled_from([1.0, 0.25, 3.0, 0.1]))
    config: dict[str, Any] = {
        "failure_threshold": draw(st.sampled_from([2, 1, 3, 0, 5])),
        "minimum_calls": draw(st.integers(1, 4)),
        "reset_timeout": rt,
        "reset_timeout_max": draw(st.none() | st.sampled_from([rt, 2.0 * rt, 5.0 * rt])),
        "half_open_calls": draw(st.integers(1, 3)),
        "name": draw(st.sampled_from([None, "db"])),
    }
    # Half the examples judge nothing but exceptions by the threshold: that is
    # when the compiled decorator takes its fast path, which any of the
    # options below turns off.
    if draw(st.booleans()):
        config.update(
            failure_rate=draw(st.none() | st.sampled_from([0.5, 1.0, 0.34])),
            slow_call_duration=draw(st.none() | st.sampled_from([0.5, 1.0, 2.0])),
            slow_call_rate=draw(st.none() | st.sampled_from([0.5, 1.0, 0.3])),
            record=draw(st.sampled_from(RECORDS)),
            ignore=draw(st.sampled_from(IGNORES)),
            failure_if=draw(st.sampled_from([None, judge])),
            fallback=draw(st.sampled_from([None, fallback])),
        )
    slow = config.get("slow_call_duration")
    if slow is None:
        config.pop("slow_call_rate", None)  # a slow-call rate without a duration is refused
    win = 1.0
    if timed:
        win = draw(st.sampled_from([0.5, 2.0, 5.0]))
        config["window_duration"] = win
    else:
        config["window"] = draw(st.integers(1, 6))
    unit = rt if slow is None else slow
    delays = [0.0, 0.0, 0.0, 0.0, 0.5 * unit, unit, 1.001 * unit, 2.0 * unit]
    script = scripts(BREAKER_KINDS, delays, [0.0, 1.5], nest_forms=SYNC_FORMS + ASYNC_FORMS)
    amounts = [0.5 * rt, rt, 1.001 * rt, 2.0 * rt, 4.0 * rt, 0.1 * unit, unit, 0.5 * win, win]
    durations = st.sampled_from([0.0, 0.5 * unit, unit, 2.0 * unit])
    ops = draw(
        ops_of(
            (step_ops(SYNC_FORMS + ASYNC_FORMS, script), 16),
            (task_ops(step_ops(ASYNC_FORMS, script)), 5),
            (advances(amounts), 7),
            (held_ops([None, "Boom", "Benign", "Other", "Cancel"], sync=True, asyn=True), 3),
            (method("allow") | method("release"), 1),
            (method("record_success", durations) | method("record_failure", durations), 1),
            (method("force_open") | method("disable") | method("reset"), 1),
            max_size=48,
        )
    )
    return config, draw(CLOCK_STARTS), ops


def breaker_builder(config: dict[str, Any]) -> Callable[[Side], CircuitBreaker]:
    def build(side: Side) -> CircuitBreaker:
        breaker = CircuitBreaker(clock=side.clock, **config)
        breaker.on_state_change(lambda b, old, new: side.log.append((old, new)))
        return breaker

    return build


@given(scenario=breaker_scenarios(timed=False), peek=st.booleans())
@NO_EXPLAIN
def test_breaker_count_window(twins: Twins, scenario: Any, peek: bool) -> None:
    config, start, ops = scenario
    lockstep(twins, breaker_builder(config), start, ops, peek)


@given(scenario=breaker_scenarios(timed=True), peek=st.booleans())
@NO_EXPLAIN
def test_breaker_time_window(twins: Twins, scenario: Any, peek: bool) -> None:
    config, start, ops = scenario
    lockstep(twins, breaker_builder(config), start, ops, peek)


def script_op(form: str, kind: str, arg: Any = 0, delay: float = 0.0) -> Op:
    return ("step", form, ((kind, arg, delay),), None)


def test_breaker_decorator_fail_ok_fail_stays_closed(twins: Twins) -> None:
    """failure_threshold=2: fail, ok, fail is never two failures in a row, in any form."""
    forms = SYNC_FORMS + ASYNC_FORMS
    for form in forms:
        for start in (0.0, -1e9, 1e9):
            ops = [
                script_op(form, "raise", "Boom"),
                script_op(form, "ok"),
                script_op(form, "raise", "Boom"),
            ]
            sides = lockstep(twins, breaker_builder({"failure_threshold": 2}), start, ops, False)
            for side in sides:
                assert side.policy.state is CircuitState.CLOSED, (form, side.impl.IMPLEMENTATION)
                assert side.policy.stats.consecutive_failures == 1
                assert side.log == []


def test_breaker_round_trip_in_every_form(twins: Twins) -> None:
    """Trip, wait, probe, close: every transition, both twins, each form."""
    for form in SYNC_FORMS + ASYNC_FORMS:
        ops = [
            script_op(form, "raise", "Boom"),
            script_op(form, "raise", "Boom"),  # trips
            script_op(form, "ok"),  # refused
            ("advance", 30.0),
            script_op(form, "ok", 0, 1.0),  # a slow probe...
            script_op(form, "ok"),  # ...and the second closes
            script_op(form, "bad"),
        ]
        config = {
            "failure_threshold": 2,
            "half_open_calls": 2,
            "slow_call_duration": 0.5,
            "failure_if": judge,
        }
        sides = lockstep(twins, breaker_builder(config), -1e9, ops, True)
        for side in sides:
            assert side.log == [
                (CircuitState.CLOSED, CircuitState.OPEN),
                (CircuitState.OPEN, CircuitState.HALF_OPEN),
                (CircuitState.HALF_OPEN, CircuitState.CLOSED),
            ]
            assert side.policy.stats.total_slow_calls == 1


def test_breaker_lost_probe_taken_back_at_the_open_time(twins: Twins) -> None:
    """A probe held for exactly the open time is taken back: the next call is let through."""
    for form in SYNC_FORMS + ASYNC_FORMS:
        for start in (0.0, -1e9, 1e9, 12345.678):
            for held, wait, expected in (
                (("open", False), 2.0, "returned"),
                (("open", True), 2.0, "returned"),
                (("method", "allow", ()), 2.0, "returned"),
                (("open", False), 1.5, "raised"),
            ):
                ops = [
                    script_op(form, "raise", "Boom"),  # trips (failure_threshold=1)
                    ("advance", 2.0),
                    held,  # the only probe, never answered
                    ("advance", wait),
                    script_op(form, "ok"),
                ]
                config = {"failure_threshold": 1, "reset_timeout": 2.0}
                sides = lockstep(twins, breaker_builder(config), start, ops, False)
                for side in sides:
                    assert side.outcomes[-1][0] == expected, (form, start, held, side.impl)


def cancelled_in_a_task(side: Side, index: int) -> type[BaseException] | None:
    """What the one step that ``side``'s operation ``index`` ran as a task (and then
    cancelled) raised; None if it returned."""
    _, cancelled, (outcome,) = side.outcomes[index]
    assert cancelled == [True], side.outcomes[index]
    return outcome[1] if outcome[0] == "raised" else None


def test_breaker_probe_cancelled_while_it_awaits_gives_its_slot_back(twins: Twins) -> None:
    """A probe cancelled from outside is answered with no outcome: the next call is the probe."""
    for form in ASYNC_FORMS:
        for start in (0.0, -1e9):
            ops = [
                script_op(form, "raise", "Boom"),  # trips (failure_threshold=1)
                ("advance", 2.0),
                ("tasks", 1, script_op(form, "ok", 0, 0.5)),  # the only probe, cancelled
                script_op(form, "ok"),  # a probe again, which closes the breaker
            ]
            config = {"failure_threshold": 1, "reset_timeout": 2.0}
            sides = lockstep(twins, breaker_builder(config), start, ops, True)
            for side in sides:
                assert cancelled_in_a_task(side, 2) is asyncio.CancelledError
                assert side.outcomes[-1][0] == "returned", (form, side.impl.IMPLEMENTATION)
                assert side.policy.state is CircuitState.CLOSED


# -- RateLimiter and AdaptiveRateLimiter ------------------------------------------------

LIMITER_KINDS = weighted((["ok"], 8), (["raise"], 3), (["bad", "nest"], 1))


@st.composite
def limiter_scenarios(draw: st.DrawFn, adaptive: bool) -> tuple[Any, float, list[Op]]:
    per = draw(st.sampled_from([1.0, 0.1, 2.5]))
    rate = draw(st.sampled_from([1.0, 2.0, 5.0, 0.5, 3.3]))
    max_wait = draw(weighted(([0.0], 3), ([0.5 * per, 2.0 * per, float("inf")], 1)))
    # A wait sleeps with the clock: FakeClock.sleep serves sync calls only,
    # FakeClock.asleep async ones only; without waits every form may run.
    mode = "both" if max_wait == 0.0 else draw(st.sampled_from(["sync", "async"]))
    config: dict[str, Any] = {
        "per": per,
        "burst": draw(st.sampled_from([None, 1.0, 2.0, 3.5])),
        "max_wait": max_wait,
        "name": draw(st.sampled_from([None, "api"])),
    }
    if adaptive:
        config.update(
            min_rate=draw(st.sampled_from([0.5, 1.0])),
            max_rate=draw(st.sampled_from([5.0, 8.0, 2.0])),
            increase=draw(st.sampled_from([1.0, 0.5, 2.5])),
            decrease=draw(st.sampled_from([0.5, 0.9, 0.25])),
            latency_target=draw(st.sampled_from([None, 0.5 * per, per])),
        )
    forms = {"both": SYNC_FORMS + ASYNC_FORMS, "sync": SYNC_FORMS, "async": ASYNC_FORMS}[mode]
    delays = [0.0, 0.0, 0.0, 0.25 * per, per, 2.0 * per]
    script = scripts(LIMITER_KINDS, delays, nest_forms=forms)
    amounts = [0.1 * per / rate, 0.5 * per / rate, per / rate, 3.0 * per, 0.001]
    tokens = st.sampled_from([1, 0.5, 2.0, 0, 100.0])
    timeouts = st.sampled_from([None, 0.0] + ([0.5 * per, 3.0 * per] if mode != "both" else []))
    held = held_ops([None, "Boom", "Cancel"], sync=mode != "async", asyn=mode != "sync")
    rows = [
        (step_ops(forms, script), 10),
        (advances(amounts), 5),
        (method("try_acquire", tokens), 2),
        (held, 2),
        # a deadline nearer than max_wait shortens the wait a call may make
        (within_ops([0.0, 0.25 * per, 2.0 * per, math.inf], step_ops(forms, script) | held), 2),
    ]
    if mode != "async":
        rows.append((method("acquire", tokens, timeouts), 1))
    if mode != "sync":
        awaited = method("aacquire", tokens, timeouts, awaited=True)
        rows.append((awaited, 1))
        rows.append((task_ops(step_ops(ASYNC_FORMS, script), awaited), 3))
    if adaptive:
        durations = st.sampled_from([0.0, 0.25 * per, per, 2.0 * per])
        rows.append((method("record_success", durations) | method("record_failure"), 2))
    ops = draw(ops_of(*rows))
    return (rate, mode, config), draw(CLOCK_STARTS), ops


def limiter_builder(kind: type[RateLimiter], rate: float, mode: str, config: Any) -> Any:
    def build(side: Side) -> RateLimiter:
        sleep = side.clock.asleep if mode == "async" else side.clock.sleep
        return kind(rate, clock=side.clock, sleep=sleep, **config)

    return build


@given(scenario=limiter_scenarios(adaptive=False), peek=st.booleans())
@NO_EXPLAIN
def test_rate_limiter(twins: Twins, scenario: Any, peek: bool) -> None:
    (rate, mode, config), start, ops = scenario
    lockstep(twins, limiter_builder(RateLimiter, rate, mode, config), start, ops, peek)


@given(scenario=limiter_scenarios(adaptive=True), peek=st.booleans())
@NO_EXPLAIN
def test_adaptive_rate_limiter(twins: Twins, scenario: Any, peek: bool) -> None:
    (rate, mode, config), start, ops = scenario
    lockstep(twins, limiter_builder(AdaptiveRateLimiter, rate, mode, config), start, ops, peek)


def test_limiter_call_cancelled_while_it_waits_gives_its_token_back(twins: Twins) -> None:
    """The token a cancelled wait reserved goes back: the next call needs no wait."""
    for kind in (RateLimiter, AdaptiveRateLimiter):
        config: dict[str, Any] = {"burst": 1.0, "max_wait": 5.0}
        if kind is AdaptiveRateLimiter:
            config.update(min_rate=1.0, max_rate=1.0)  # the rate stays put
        for form in ASYNC_FORMS:
            ops = [
                script_op(form, "ok"),  # the only token
                ("tasks", 1, script_op(form, "ok")),  # reserves the next, cancelled in its wait
                script_op(form, "ok"),  # the refunded token has come in meanwhile
            ]
            sides = lockstep(twins, limiter_builder(kind, 1.0, "async", config), -1e6, ops, True)
            for side in sides:
                assert cancelled_in_a_task(side, 1) is asyncio.CancelledError
                assert side.outcomes[-1][0] == "returned", (kind, form, side.impl)
                assert side.clock() == -1e6 + 1.0  # one wait of one second, never finished


# -- Bulkhead ----------------------------------------------------------------------------

BULKHEAD_KINDS = weighted((["ok"], 5), (["raise"], 2), (["nest"], 3))


@st.composite
def bulkhead_scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], list[Op]]:
    # A patient bulkhead's queued callers wait until a permit is handed over:
    # only async calls, each in a task that is cancelled if it still waits. An
    # impatient one's queued wait is real time (nobody else runs to release):
    # kept short, and then no tasks run side by side (who is served would
    # depend on real time).
    patient = draw(st.booleans())
    max_queue = draw(st.sampled_from([1, 2] if patient else [0, 0, 1, 2]))
    if patient:
        max_wait = 1e6
    else:
        max_wait = draw(st.sampled_from([0.0, 0.0, 0.0005])) if max_queue else 0.0
    config = {
        "max_concurrent": draw(st.integers(1, 3)),
        "max_queue": max_queue,
        "max_wait": max_wait,
        "name": draw(st.sampled_from([None, "pool"])),
    }
    forms = ASYNC_FORMS if patient else SYNC_FORMS + ASYNC_FORMS
    script = scripts(BULKHEAD_KINDS, [0.0, 0.0, 1.0], nest_forms=forms)
    immediate = st.sampled_from([0.0] if patient else [None, 0.0])
    rows = [
        (method("try_acquire") | method("release"), 2),
        (method("acquire", immediate), 1),
        (method("aacquire", immediate, awaited=True), 1),
        (advances([1.0]), 1),
    ]
    if patient:
        queueing = method("aacquire", st.sampled_from([None, 0.0]), awaited=True)
        rows.append((task_ops(step_ops(forms, script), queueing), 10))
    else:
        rows.append((step_ops(forms, script), 8))
        rows.append((held_ops([None, None, "Boom", "Cancel"], sync=True, asyn=True), 6))
        if max_wait == 0.0:
            rows.append((task_ops(step_ops(ASYNC_FORMS, script)), 3))
    return config, draw(ops_of(*rows))


@given(scenario=bulkhead_scenarios(), peek=st.booleans())
@NO_EXPLAIN
def test_bulkhead(twins: Twins, scenario: Any, peek: bool) -> None:
    config, ops = scenario
    lockstep(twins, lambda side: Bulkhead(**config), 0.0, ops, peek)


def test_bulkhead_nested_permits_in_every_form(twins: Twins) -> None:
    """Permits held by open blocks and outer calls: the inner call finds the bulkhead full."""
    for outer in SYNC_FORMS + ASYNC_FORMS:
        for inner in SYNC_FORMS + ASYNC_FORMS:
            ops = [
                ("open", outer.startswith("a")),
                ("step", outer, (("nest", (inner, (("ok", 0, 0.0),)), 0.0),), None),
                ("close", 0, None),
                ("step", outer, (("nest", (inner, (("ok", 0, 0.0),)), 0.0),), None),
                ("method", "release", ()),
            ]
            sides = lockstep(twins, lambda side: Bulkhead(2), 0.0, ops, True)
            for side in sides:
                assert side.policy.stats.rejected == 1
                assert side.policy.active == 0


def test_bulkhead_calls_cancelled_holding_and_queued_leave_nothing_behind(twins: Twins) -> None:
    """Cancelled while one holds the permit and one is queued for it (or after the handover)."""
    for form in ASYNC_FORMS:
        for turns in (1, 2, 3):
            ops = [
                ("tasks", turns, script_op(form, "ok", 0, 1.0), script_op(form, "ok", 0, 1.0)),
                # a task too: with a permit lost, it would wait for ever
                ("tasks", 3, script_op(form, "ok")),
            ]
            build = lambda side: Bulkhead(1, max_queue=1, max_wait=1e6)  # noqa: E731
            sides = lockstep(twins, build, 0.0, ops, True)
            for side in sides:
                _, _, (last,) = side.outcomes[-1]
                assert last[0] == "returned", (form, turns, side.impl)
                assert (side.policy.active, side.policy.waiting) == (0, 0)


# -- Retry -------------------------------------------------------------------------------

# Retry has no ``with`` form; ``for attempt in retry: with attempt:`` instead.
RETRY_SYNC_FORMS = ("deco", "call", "iter", "mdeco")
RETRY_ASYNC_FORMS = ("adeco", "acall", "aiter", "amdeco")
RETRY_KINDS = weighted((["raise"], 6), (["ok"], 3), (["bad", "later"], 2))


@st.composite
def retry_scenarios(draw: st.DrawFn) -> tuple[Any, float, list[Op]]:
    backoff = draw(st.sampled_from(["constant", "constant", "exponential"]))
    delay = draw(st.sampled_from([0.0, 0.5, 1.0])) if backoff == "constant" else None
    # Waits sleep with the clock: FakeClock.sleep for sync, .asleep for async.
    mode = draw(st.sampled_from(["sync", "async"] + ["both"] * (delay == 0.0)))
    config: dict[str, Any] = {
        "attempts": draw(st.sampled_from([3, 1, 2, 5])),
        "on": draw(
            st.sampled_from([Exception, Boom, (Boom, Later), lambda e: not isinstance(e, Benign)])
        ),
        "retry_if_result": draw(st.sampled_from([None, judge])),
        "deadline": draw(st.sampled_from([None, None, 1.0, 4.0])),
        "name": draw(st.sampled_from([None, "fetch"])),
    }
    # (ratio, min_per_second) of a RetryBudget on the side's clock: one that bites
    budget = draw(st.sampled_from([None, None, (0.0, 0.2), (0.5, 0.1)]))
    forms = {
        "both": RETRY_SYNC_FORMS + RETRY_ASYNC_FORMS,
        "sync": RETRY_SYNC_FORMS,
        "async": RETRY_ASYNC_FORMS,
    }[mode]
    retry_afters = [0.0] if mode == "both" else [0.0, 0.25, 2.0, 100.0]
    script = scripts(RETRY_KINDS, [0.0, 0.0, 0.3], retry_afters, max_attempts=6)
    rows = [
        (step_ops(forms, script), 6),
        (advances([0.5, 10.0]), 1),
        # a deadline cuts the retries short, as the retry's own one does
        (within_ops([0.0, 0.5, 2.0, math.inf], step_ops(forms, script)), 2),
    ]
    if mode != "sync":  # cancelled during an attempt or during the backoff after one
        rows.append((task_ops(step_ops(RETRY_ASYNC_FORMS, script)), 2))
    ops = draw(ops_of(*rows, max_size=16))
    return (backoff, delay, mode, config, budget), draw(CLOCK_STARTS), ops


def retry_builder(
    backoff: str, delay: float | None, mode: str, config: Any, budget: Any = None
) -> Any:
    def build(side: Side) -> Retry:
        if backoff == "constant":
            made: Any = constant(delay)
        else:  # jittered: each twin draws from its own, equally seeded generator
            made = exponential(initial=0.5, max=2.0, random=Random(7))
        shared = None if budget is None else RetryBudget(*budget, ttl=5.0, clock=side.clock)
        retry = Retry(
            backoff=made,
            budget=shared,
            sleep=side.clock.asleep if mode == "async" else side.clock.sleep,
            clock=side.clock,
            **config,
        )
        retry.on_retry(lambda state: side.log.append(plain(state)))
        return retry

    return build


@given(scenario=retry_scenarios())
@NO_EXPLAIN
def test_retry(twins: Twins, scenario: Any) -> None:
    (backoff, delay, mode, config, budget), start, ops = scenario
    lockstep(twins, retry_builder(backoff, delay, mode, config, budget), start, ops, True)


def test_retry_times_its_deadline_from_the_first_attempts_start(twins: Twins) -> None:
    """A slow first attempt (the fast paths make it) counts against the deadline:
    0.3 s spent, 0.4 s left, a 0.5 s backoff cannot fit; without a deadline it retries."""
    slow_failure = (("raise", "Boom", 0.3), ("ok", 0, 0.0))
    start = -1e9
    for mode, forms in (("sync", RETRY_SYNC_FORMS), ("async", RETRY_ASYNC_FORMS)):
        for form in forms:
            for deadline_, expected in ((0.7, "raised"), (None, "returned")):
                config = {"attempts": 3, "deadline": deadline_}
                build = retry_builder("constant", 0.5, mode, config)
                ops = [("step", form, slow_failure, None)]
                for side in lockstep(twins, build, start, ops, True):
                    assert side.outcomes[-1][0] == expected, (form, deadline_, side.impl)
                    elapsed = [state["elapsed"] for state in side.log]
                    assert elapsed == ([] if deadline_ else [(start + 0.3) - start]), elapsed


# -- Fallback ----------------------------------------------------------------------------

FALLBACK_KINDS = weighted((["raise"], 5), (["ok"], 3), (["bad", "later", "nest"], 1))
# Neither Fallback nor Timeout is a sync context manager; Fallback no async one either.
CALL_FORMS = {"sync": ("deco", "call", "mdeco"), "async": ("adeco", "acall", "amdeco")}


@st.composite
def fallback_scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], list[Op]]:
    mode = draw(st.sampled_from(["sync", "async"]))
    handlers = [handler, picky_handler] + [async_handler] * (mode == "async")
    config = {
        "handler": draw(st.sampled_from(handlers)),
        "on": draw(
            st.sampled_from([Exception, Boom, (Boom, Other), lambda e: not isinstance(e, Benign)])
        ),
        "name": draw(st.sampled_from([None, "cached"])),
    }
    forms = CALL_FORMS[mode]
    script = scripts(FALLBACK_KINDS, [0.0, 0.0, 0.5], [1.0], nest_forms=forms)
    rows = [(step_ops(forms, script), 8), (advances([1.0]), 1)]
    if mode == "async":
        rows.append((task_ops(step_ops(forms, script)), 2))
    return config, draw(ops_of(*rows, max_size=20))


@given(scenario=fallback_scenarios())
@NO_EXPLAIN
def test_fallback(twins: Twins, scenario: Any) -> None:
    config, ops = scenario
    lockstep(twins, lambda side: Fallback(**config), 0.0, ops, True)


# -- Timeout -----------------------------------------------------------------------------

TIMEOUT_KINDS = weighted((["ok"], 5), (["raise"], 3), (["nest"], 2))
# Limits that real time cannot reach while a step runs (it takes microseconds;
# its seconds pass on the FakeClock), or none: a limit of 0 refuses a sync call
# and cancels an async one at its first suspension. Deadlines, likewise.
TIMEOUT_LIMITS = weighted(([math.inf, 1e6], 3), ([0.0], 1))
TIMEOUT_DEADLINES = [0.0, 1e7, math.inf]


@st.composite
def timeout_scenarios(draw: st.DrawFn) -> tuple[Any, list[Op]]:
    mode = draw(st.sampled_from(["sync", "async"]))
    seconds = draw(TIMEOUT_LIMITS)
    # a sync call runs in a worker thread; async ones (and blocks) in the task
    forms = CALL_FORMS["sync"] if mode == "sync" else ASYNC_FORMS
    script = scripts(TIMEOUT_KINDS, [0.0, 0.0, 1.0], nest_forms=forms)
    rows = [
        (step_ops(forms, script), 8),
        (within_ops(TIMEOUT_DEADLINES, step_ops(forms, script)), 2),
        (advances([1.0]), 1),
    ]
    if mode == "async":
        rows.append((task_ops(step_ops(forms, script)), 2))
    return (seconds, draw(st.sampled_from([None, "slow"]))), draw(ops_of(*rows, max_size=20))


@given(scenario=timeout_scenarios())
@NO_EXPLAIN
def test_timeout(twins: Twins, scenario: Any) -> None:
    (seconds, name), ops = scenario
    lockstep(twins, lambda side: Timeout(seconds, name=name), 0.0, ops, True)


# -- Pipeline ----------------------------------------------------------------------------

PIPELINE_KINDS = weighted((["ok"], 5), (["raise"], 5), (["bad", "later"], 1))
PIPELINE_MEMBERS = ("breaker", "limiter", "bulkhead", "retry", "fallback", "timeout")
# The members with a ``with`` (``async with``) form: a pipeline has it when all of them do.
SYNC_BLOCKS = {"breaker", "limiter", "bulkhead"}
ASYNC_BLOCKS = SYNC_BLOCKS | {"timeout"}


def flat(order: list[Any]) -> list[str]:
    """The member names of ``order``, nested pipelines' included."""
    return [name for item in order for name in (flat(item) if isinstance(item, list) else [item])]


@st.composite
def pipeline_orders(draw: st.DrawFn) -> list[Any]:
    """Member names, outermost first; a list in it is a nested pipeline."""
    usual = ["breaker", "limiter", "bulkhead", "retry"]
    order: list[Any] = draw(
        st.one_of(
            st.just(usual),
            st.permutations(usual),
            st.lists(st.sampled_from(PIPELINE_MEMBERS), min_size=1, max_size=4, unique=True),
        )
    )
    if len(order) >= 3 and draw(st.booleans()):
        i = draw(st.integers(0, len(order) - 2))
        order = [*order[:i], order[i : i + 2], *order[i + 2 :]]
    if "fallback" not in order and draw(weighted(([False], 3), ([True], 1))):
        order = ["fallback", *order]
    return order


@st.composite
def pipeline_scenarios(draw: st.DrawFn) -> tuple[Any, float, list[Op]]:
    mode = draw(st.sampled_from(["sync", "async"]))
    order = draw(pipeline_orders())
    names = set(flat(order))
    config = {
        "order": order,
        "breaker": {
            "failure_threshold": draw(st.sampled_from([2, 1, 3])),
            "reset_timeout": 2.0,
            "half_open_calls": draw(st.integers(1, 2)),
            "failure_if": draw(st.sampled_from([None, judge])),
            "fallback": draw(st.sampled_from([None, None, fallback])),
            "slow_call_duration": draw(st.sampled_from([None, 0.5])),
        },
        "adaptive": draw(st.booleans()),
        "limiter": {
            "burst": draw(st.sampled_from([2.0, 4.0])),
            "max_wait": draw(st.sampled_from([0.0, 0.0, 1.0])),
        },
        "bulkhead": draw(st.integers(1, 2)),
        "retry": {
            "attempts": draw(st.sampled_from([1, 2, 3])),
            "backoff": constant(draw(st.sampled_from([0.0, 0.25]))),
            "retry_if_result": draw(st.sampled_from([None, judge])),
            "on": draw(st.sampled_from([Exception, Boom])),
        },
        "timeout": draw(st.sampled_from([math.inf, 1e6])),
        "on": draw(st.sampled_from([Exception, Boom])),  # the Fallback's
    }
    forms = CALL_FORMS[mode]
    if names <= (SYNC_BLOCKS if mode == "sync" else ASYNC_BLOCKS):
        forms += ("with",) if mode == "sync" else ("awith",)
    script = scripts(PIPELINE_KINDS, [0.0, 0.0, 0.7], [0.0, 0.5], max_attempts=3)
    deadlines = TIMEOUT_DEADLINES if "timeout" in names else [0.0, 0.5, 3.0, math.inf]
    rows = [
        (step_ops(forms, script), 10),
        (advances([0.3, 1.0, 2.5]), 4),
        (within_ops(deadlines, step_ops(forms, script)), 2),
    ]
    if names <= SYNC_BLOCKS:
        rows.append((held_ops([None, "Boom"], sync=mode == "sync", asyn=mode == "async"), 2))
    if mode == "async":
        rows.append((task_ops(step_ops(forms, script)), 3))
    return (mode, config), draw(CLOCK_STARTS), draw(ops_of(*rows, max_size=30))


def pipeline_builder(mode: str, config: dict[str, Any]) -> Callable[[Side], Pipeline]:
    def member(side: Side, name: Any) -> Any:
        sleep = side.clock.asleep if mode == "async" else side.clock.sleep
        if isinstance(name, list):
            return Pipeline(*(member(side, inner) for inner in name), name="inner")
        if name == "breaker":
            breaker = CircuitBreaker(clock=side.clock, **config["breaker"])
            breaker.on_state_change(lambda b, old, new: side.log.append((old, new)))
            return breaker
        if name == "limiter" and config["adaptive"]:
            return AdaptiveRateLimiter(
                2.0,
                min_rate=1.0,
                max_rate=4.0,
                clock=side.clock,
                sleep=sleep,
                **config["limiter"],
            )
        if name == "limiter":
            return RateLimiter(2.0, clock=side.clock, sleep=sleep, **config["limiter"])
        if name == "bulkhead":
            return Bulkhead(config["bulkhead"])
        if name == "retry":
            retry = Retry(clock=side.clock, sleep=sleep, **config["retry"])
            retry.on_retry(lambda state: side.log.append(plain(state)))
            return retry
        if name == "timeout":
            return Timeout(config["timeout"])
        assert name == "fallback", name
        return Fallback(handler, on=config["on"])

    def build(side: Side) -> Pipeline:
        return Pipeline(*(member(side, name) for name in config["order"]))

    return build


@given(scenario=pipeline_scenarios(), peek=st.booleans())
@NO_EXPLAIN
def test_pipeline(twins: Twins, scenario: Any, peek: bool) -> None:
    (mode, config), start, ops = scenario
    lockstep(twins, pipeline_builder(mode, config), start, ops, peek)


# -- clocks outside FakeClock's contract: known divergences ------------------------------


class SteppingClock:
    """A user clock that the step function moves, backwards if told (wall clocks do)."""

    def __init__(self, reading: Any) -> None:
        self.reading = reading

    def __call__(self) -> Any:
        return self.reading


def on_each_twin(twins: Twins, run: Callable[[], Any]) -> list[Any]:
    results = []
    for impl in twins:
        with selected(impl):
            try:
                results.append(run())
            except Exception as exc:
                results.append(describe(exc))
    return results


def test_breaker_decorator_when_the_clock_steps_back(twins: Twins) -> None:
    def run() -> Any:
        clock = SteppingClock(100.0)
        breaker = CircuitBreaker(slow_call_duration=1.0, clock=clock)

        @breaker
        def stepped_back() -> str:
            clock.reading -= 5.0
            return "ok"

        try:
            value: Any = stepped_back()
        except Exception as exc:
            value = describe(exc)
        return value, plain(breaker.stats)

    expect_same("clock stepping back", *on_each_twin(twins, run))


@pytest.mark.parametrize("reading", [7, float("nan")])
def test_retry_decorator_with_a_clock_that_is_not_a_finite_float(
    twins: Twins, reading: Any
) -> None:
    def run() -> Any:
        states: list[Any] = []
        retry = Retry(3, backoff=constant(0), clock=SteppingClock(reading), on_retry=states.append)
        script = Script(Side(twins[0], 0.0), (("raise", "Boom", 0.0), ("ok", 0, 0.0)))
        try:
            value: Any = retry(work)(script)
        except Exception as exc:
            value = describe(exc)
        return plain(value), plain(states), plain(retry.stats)

    expect_same(f"clock reading {reading!r}", *on_each_twin(twins, run))
