"""The one execution protocol every policy is built on, and every form derived from it.

A policy implements two steps (see docs/architecture.md, "The protocol"):

- ``_enter(args, kwargs)`` takes what a call needs (a breaker permit, a
  token, a bulkhead permit...) and returns a *token* for ``_exit``. It
  raises to refuse (a ``RejectedError``, or an injected fault), returns a
  ``Wait`` when the call must wait first (a limiter's reservation, a
  bulkhead's queue), or returns ``Replace(value)`` to answer the call
  without running it (a breaker's fallback, a chaos result). ``args`` is
  None for a ``with`` block, which nothing can replace.
- ``_exit(token, error, result)`` settles the outcome — ``error`` is the
  exception the call raised, or None and ``result`` its value — and says
  what happens next: None (return the result, or re-raise the error
  unchanged), ``Replace(value)`` (a fallback), or a ``Wait`` after which the
  call runs again with the token its ``done()`` gives (Retry). It may also
  raise (``RetryError``).

From those two, this module derives — once — ``call``, ``acall``, the
decorators (functions and methods, sync and async), ``with`` / ``async
with`` and the composition of ``Pipeline``. The steps are driven by a
generator that exchanges *outcomes*, ``(error, result)`` pairs, with a sync
or an async driver: the protocol is written once, only the drivers differ
in how they call and wait. Interrupts and cancellation reach a policy as
the outcome of its call (never a failure: see ``NEVER_FAILURES``) or, while
it waits, as ``Wait.abandon()``.

Waiting goes through one sleep hook, ``sleep_sync`` / ``sleep_async``, whose
default sleep ``resilience.testing.instant()`` skips.
A policy whose ``call`` (or ``acall``) is its own — a sync ``Timeout``,
which runs the call on a worker thread, or a user's subclass — is honoured
by every form: drivers hand it the rest of the call.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from contextvars import ContextVar
from types import FrameType, MethodType, TracebackType
from typing import Any, NoReturn, ParamSpec, TypeAlias, TypeVar, overload

from ._core._nocopy import NoCopy

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("resilience")
# A library adds no handler of its own but this one: what is logged goes where
# the application's logging sends it, and nowhere (not to stderr) without any.
logger.addHandler(logging.NullHandler())


class _TrioCancelledType(type):
    """The metaclass of ``TrioCancelled``: instance checks ask ``trio.Cancelled``, if imported.

    Trio is never imported for it: a ``trio.Cancelled`` cannot exist before
    trio is, so without trio in ``sys.modules`` nothing is one. Trio makes
    the class final, so an identity test of the type is the whole check (and
    skips the ABC machinery of Trio's metaclass on every failure judged)."""

    def __instancecheck__(cls, instance: object) -> bool:
        trio = sys.modules.get("trio")
        return trio is not None and type(instance) is trio.Cancelled

    def __subclasscheck__(cls, subclass: type) -> bool:
        trio = sys.modules.get("trio")
        return trio is not None and subclass is trio.Cancelled


class TrioCancelled(BaseException, metaclass=_TrioCancelledType):
    """Stands for ``trio.Cancelled`` in ``isinstance`` / ``issubclass`` without importing trio.

    Never raised; ``except TrioCancelled`` does not catch (``except`` looks
    at the real classes), so it is only for the checks below."""


# Never a failure and never retried, whatever ``record`` / ``on`` say: the
# caller is being cancelled (by asyncio or Trio) or the process is stopping.
NEVER_FAILURES: tuple[type[BaseException], ...] = (
    asyncio.CancelledError,
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
    TrioCancelled,
)

# The longest single sleep; a longer wait is made of several. Not the
# platform's bound for timed waits, ``threading.TIMEOUT_MAX``: time.sleep
# adds the wait to the clock's reading in 64-bit nanoseconds, so
# time.sleep(TIMEOUT_MAX) fails (EINVAL) as time.sleep(1e10) does
# (OverflowError). A day fits on every platform, and waking once a day costs
# nothing.
MAX_SLEEP = min(86400.0, float(threading.TIMEOUT_MAX))


# -- the one sleep hook ------------------------------------------------------------

# True while ``resilience.testing`` has the default sleeps skipped (it sets
# this; nothing else does). Read only where a sleep is about to happen, so
# the hot paths never pay for it.
instant = False


def sleep_sync(seconds: float, sleep: Callable[[float], Any] | None = None) -> None:
    """Sleep in sync code: with a policy's own ``sleep`` unless it is None or async.

    In instant mode (``resilience.testing``) the default sleep returns at once;
    a policy's own ``sleep`` is still called."""
    if sleep is not None and not inspect.iscoroutinefunction(sleep):
        sleep(seconds)
        return
    if instant:
        return
    while seconds > 0.0:
        step = min(seconds, MAX_SLEEP)
        time.sleep(step)
        seconds -= step


def running_trio() -> bool:
    """Whether the async code running now runs under Trio (asked of sniffio).

    Asked only where an async path is about to wait or sleep, never on a
    hot path. Without trio imported nothing can be running under it, so
    asyncio-only programs import neither trio nor sniffio."""
    if "trio" not in sys.modules:
        return False
    import sniffio  # trio depends on it: present whenever trio is

    try:
        return sniffio.current_async_library() == "trio"
    except sniffio.AsyncLibraryNotFoundError:
        return False


def asyncio_only(what: str) -> None:
    """Raise RuntimeError if running under Trio: ``what`` needs an asyncio event loop."""
    if running_trio():
        raise RuntimeError(f"{what} runs on asyncio only, not under Trio")


async def library_sleep(seconds: float) -> None:
    """One sleep of the running async library (asyncio or Trio): 0 yields once."""
    if running_trio():
        import trio

        await trio.sleep(seconds)
    else:
        await asyncio.sleep(seconds)


async def sleep_async(seconds: float, sleep: Callable[[float], Any] | None = None) -> None:
    """Sleep in async code: with a policy's own ``sleep`` if it is a coroutine function.

    The default sleep is the running library's (asyncio or Trio). In instant
    mode it only yields to the loop once."""
    if sleep is not None and inspect.iscoroutinefunction(sleep):
        await sleep(seconds)
        return
    if instant:
        # Still a turn of the loop, as a real wait gives: other tasks run and
        # a cancellation lands here, so a retry loop cannot hog the loop.
        await library_sleep(0)
        return
    while True:  # at least one await, so a zero wait still yields to the loop
        step = min(seconds, MAX_SLEEP)
        await library_sleep(step)
        seconds -= step
        if seconds <= 0.0:
            return


# -- what the steps return -----------------------------------------------------------


class Replace:
    """The call's result is ``value``: what a fallback or an injected result gives."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class Wait:
    """The call must wait before it runs (from ``_enter``) or runs again (from ``_exit``).

    The driver waits with ``wait_sync()`` or ``await wait_async()``, then
    takes the token to go on with from ``done()`` (which may raise: a
    bulkhead wait that ran out). Interrupted or cancelled while waiting, it
    calls ``abandon()`` instead, so whatever was reserved goes back.
    """

    __slots__ = ()

    def wait_sync(self) -> None:
        raise NotImplementedError

    async def wait_async(self) -> None:
        raise NotImplementedError

    def done(self) -> Any:
        return None

    def abandon(self) -> None:
        pass


class Sleep(Wait):
    """A timed wait through the sleep hook, with the policy's own ``sleep`` if it has one."""

    __slots__ = ("_on_abandon", "_sleep", "seconds", "then")

    def __init__(
        self,
        seconds: float,
        sleep: Callable[[float], Any] | None,
        then: Any = None,
        on_abandon: Callable[[], object] | None = None,
    ) -> None:
        self.seconds = seconds
        self._sleep = sleep
        self.then = then
        self._on_abandon = on_abandon

    def wait_sync(self) -> None:
        sleep_sync(self.seconds, self._sleep)

    async def wait_async(self) -> None:
        await sleep_async(self.seconds, self._sleep)

    def done(self) -> Any:
        return self.then

    def abandon(self) -> None:
        if self._on_abandon is not None:
            self._on_abandon()


class Acquiring(Wait):
    """A subclass's own ``acquire`` / ``aacquire``, which every form must go through."""

    __slots__ = ("_policy",)

    def __init__(self, policy: Any) -> None:
        self._policy = policy

    def wait_sync(self) -> None:
        self._policy.acquire()

    async def wait_async(self) -> None:
        await self._policy.aacquire()


def finish_sync(token: Any) -> Any:
    """``token``, or, when it is a ``Wait``, what its ``done()`` gives after waiting.

    For the public methods that wait (``acquire``): the wait the drivers make.
    """
    if not isinstance(token, Wait):
        return token
    try:
        token.wait_sync()
    except BaseException:
        token.abandon()
        raise
    return token.done()


async def finish_async(token: Any) -> Any:
    """``finish_sync`` for async code (``aacquire``)."""
    if not isinstance(token, Wait):
        return token
    try:
        await token.wait_async()
    except BaseException:
        token.abandon()
        raise
    return token.done()


# -- the protocol, driven --------------------------------------------------------------

# What a run of the protocol asks its driver for (it yields one of these and
# is sent back the outcome): run what is inside; wait; resolve a replacing
# value (awaited in async code); or run the rest through a policy's own call.
CALL = object()
Outcome: TypeAlias = "tuple[BaseException | None, Any]"
Steps: TypeAlias = "Generator[Any, Any, Outcome]"


class Delegate:
    """The member at ``index`` runs calls itself: the driver gives it the rest of the call."""

    __slots__ = ("index", "policy")

    def __init__(self, policy: Policy, index: int) -> None:
        self.policy = policy
        self.index = index


def _steps(
    policies: tuple[Policy, ...], index: int, delegates: tuple[bool, ...], args: Any, kwargs: Any
) -> Steps:
    """The protocol of ``policies[index]`` around everything inside it."""
    outcome: Outcome
    if index == len(policies):  # no policy at all (an empty Pipeline)
        outcome = yield CALL
        return outcome
    policy = policies[index]
    if delegates[index]:
        outcome = yield Delegate(policy, index)
        return outcome
    try:
        token = policy._enter(args, kwargs)
        if isinstance(token, Wait):
            token = yield from _waited(token)
    except BaseException as error:
        return error, None
    return (yield from _around(policies, index, delegates, args, kwargs, token, None))


def _around(
    policies: tuple[Policy, ...],
    index: int,
    delegates: tuple[bool, ...],
    args: Any,
    kwargs: Any,
    token: Any,
    outcome: Outcome | None,
) -> Steps:
    """After ``policies[index]`` entered with ``token``: run what is inside and settle it,
    as often as the policy asks. ``outcome``: that of a first run made already."""
    policy = policies[index]
    inner = index + 1 < len(policies)
    while True:
        if outcome is None:
            if token.__class__ is Replace:
                replaced: Outcome = yield token
                return replaced
            if inner:
                outcome = yield from _steps(policies, index + 1, delegates, args, kwargs)
            else:
                outcome = yield CALL
        error, result = outcome
        outcome = None
        try:
            token = policy._exit(token, error, result)
            if token is None:
                return error, result
            if token.__class__ is not Replace:
                token = yield from _waited(token)
        except BaseException as raised:
            return raised, None


def _waited(wait: Wait) -> Generator[Any, Any, Any]:
    """Wait (in the driver), then the token ``wait.done()`` gives; raises what interrupted."""
    error, _ = yield wait
    if error is not None:
        wait.abandon()
        raise error
    return wait.done()


def _settled(outcome: Outcome) -> Any:
    error, result = outcome
    if error is not None:
        try:
            raise error  # the caller's exception, unchanged
        finally:
            del error  # no reference cycle through this frame
    return result


def run_sync(
    policies: tuple[Policy, ...],
    delegates: tuple[bool, ...],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    index: int = 0,
) -> Any:
    """``fn(*args, **kwargs)`` through ``policies[index:]``, outermost first."""
    steps = _steps(policies, index, delegates, args, kwargs)
    return _drive_sync(steps, policies, delegates, fn, args, kwargs)


def _drive_sync(
    steps: Steps,
    policies: tuple[Policy, ...],
    delegates: tuple[bool, ...],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Answer what ``steps`` ask for in sync code; their outcome, raised or returned."""
    send = steps.send
    reply: Outcome
    try:
        request = send(None)
        while True:
            try:
                if request is CALL:
                    reply = None, fn(*args, **kwargs)
                elif isinstance(request, Wait):
                    request.wait_sync()
                    reply = None, None
                elif request.__class__ is Replace:
                    reply = None, request.value
                else:
                    rest = functools.partial(_rest_sync, policies, delegates, fn, request.index + 1)
                    reply = None, request.policy.call(rest, *args, **kwargs)
            except BaseException as error:
                reply = error, None
            request = send(reply)
    except StopIteration as stop:
        outcome: Outcome = stop.value
    # Out of the except block: the caller's error is not chained to StopIteration.
    return _settled(outcome)


async def run_async(
    policies: tuple[Policy, ...],
    delegates: tuple[bool, ...],
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    index: int = 0,
) -> Any:
    """``await fn(*args, **kwargs)`` through ``policies[index:]``, outermost first."""
    steps = _steps(policies, index, delegates, args, kwargs)
    return await _drive_async(steps, policies, delegates, fn, args, kwargs)


async def _drive_async(
    steps: Steps,
    policies: tuple[Policy, ...],
    delegates: tuple[bool, ...],
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """``_drive_sync`` in async code."""
    send = steps.send
    reply: Outcome
    try:
        request = send(None)
        while True:
            try:
                if request is CALL:
                    reply = None, await fn(*args, **kwargs)
                elif isinstance(request, Wait):
                    await request.wait_async()
                    reply = None, None
                elif request.__class__ is Replace:
                    value = request.value
                    reply = None, (await value if inspect.isawaitable(value) else value)
                else:
                    inside = request.index + 1
                    rest = functools.partial(_rest_async, policies, delegates, fn, inside)
                    reply = None, await request.policy.acall(rest, *args, **kwargs)
            except BaseException as error:
                reply = error, None
            request = send(reply)
    except StopIteration as stop:
        outcome: Outcome = stop.value
    # Out of the except block: the caller's error is not chained to StopIteration.
    return _settled(outcome)


def resume_sync(
    policy: Policy,
    token: Any,
    error: BaseException,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Go on with a call that a fast path entered (``token``) and ran once, to ``error``."""
    steps = _around((policy,), 0, (False,), args, kwargs, token, (error, None))
    return _drive_sync(steps, (policy,), (False,), fn, args, kwargs)


async def resume_async(
    policy: Policy,
    token: Any,
    error: BaseException,
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """``resume_sync`` in async code."""
    steps = _around((policy,), 0, (False,), args, kwargs, token, (error, None))
    return await _drive_async(steps, (policy,), (False,), fn, args, kwargs)


def _rest_sync(
    policies: Any, delegates: Any, fn: Any, index: int, *args: Any, **kwargs: Any
) -> Any:
    """What a delegating member's ``call`` runs: the members inside it, then ``fn``."""
    return run_sync(policies, delegates, fn, args, kwargs, index)


async def _rest_async(
    policies: Any, delegates: Any, fn: Any, index: int, *args: Any, **kwargs: Any
) -> Any:
    return await run_async(policies, delegates, fn, args, kwargs, index)


def runs_calls_itself(policy: Policy, asynchronous: bool) -> bool:
    """Whether ``policy``'s class has a ``call`` (``acall``) of its own, not the derived one."""
    kind = type(policy)
    return kind.acall is not Policy.acall if asynchronous else kind.call is not Policy.call


# -- with blocks ------------------------------------------------------------------------


class SyncBlock:
    """``with`` derived from the protocol (for policies that have it).

    Entering runs the protocol up to the call, raising a refusal before the
    block starts; leaving hands the block's outcome to the policy. A block
    cannot be re-run or replaced, so asking for that is a TypeError.
    """

    __slots__ = ()

    def __enter__(self) -> Any:
        steps = _block_steps(self)  # type: ignore[arg-type]
        try:
            request = steps.send(None)
            while request is not CALL:
                request = steps.send(_outcome_of(_block_wait(self, request).wait_sync))
        except StopIteration as stop:
            refusal = stop.value
        else:
            push_entry(self, steps)
            return self
        _refused(self, refusal)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return _block_end(self, pop_entry(self), exc)


class AsyncBlock:
    """``async with`` derived from the protocol, as ``SyncBlock`` derives ``with``."""

    __slots__ = ()

    async def __aenter__(self) -> Any:
        steps = _block_steps(self)  # type: ignore[arg-type]
        try:
            request = steps.send(None)
            while request is not CALL:
                wait = _block_wait(self, request)
                request = steps.send(await _outcome_of_async(wait.wait_async))
        except StopIteration as stop:
            refusal = stop.value
        else:
            push_entry(self, steps)
            return self
        _refused(self, refusal)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return _block_end(self, pop_entry(self), exc)


class Block(SyncBlock, AsyncBlock):
    """Both ``with`` and ``async with``, derived from the protocol."""

    __slots__ = ()


def _block_steps(policy: Policy) -> Steps:
    members, _ = policy._plan(False)
    return _steps(members, 0, (False,) * len(members), None, None)


def _outcome_of(step: Callable[[], object]) -> Outcome:
    try:
        step()
    except BaseException as error:
        return error, None
    return None, None


async def _outcome_of_async(step: Callable[[], Awaitable[object]]) -> Outcome:
    try:
        await step()
    except BaseException as error:
        return error, None
    return None, None


def _block_wait(owner: object, request: Any) -> Wait:
    if not isinstance(request, Wait):
        raise TypeError(f"{owner!r} cannot answer a with block with {request!r}")
    return request


def _refused(owner: object, outcome: Outcome) -> NoReturn:
    """The protocol ended before the block could start: raise why."""
    _settled(outcome)
    raise TypeError(f"{owner!r} cannot answer a with block with a value")


def _block_end(owner: object, steps: Steps, exc: BaseException | None) -> bool:
    try:
        request = steps.send((exc, None))
    except StopIteration as stop:
        outcome: Outcome = stop.value
    else:
        steps.close()
        raise TypeError(
            f"{owner!r} cannot run a with block again or replace its outcome: {request!r}"
        )
    error, _ = outcome
    if error is exc:
        return False  # the block's own exception (or none) goes on unchanged
    if error is None:
        return True  # the policy answered it: the exception is swallowed
    raise error


# -- the policies' base ---------------------------------------------------------------------


class _Decorated(functools.partial):  # type: ignore[type-arg]
    """A decorator's result that behaves as a function: it binds like one (so
    it decorates methods too) and is pickled by reference (its module and
    qualified name, so a decorated module-level function crosses to worker
    processes); copying gives the object itself."""

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        return self if instance is None else MethodType(self, instance)

    def __reduce__(self) -> str:
        return str(self.__qualname__)  # type: ignore[attr-defined]


class AsyncCall(_Decorated):
    """An async function bound to its policy and function: the async decorator's result.

    Calling it makes the coroutine itself, so a decorated call is one
    coroutine deep, not two. ``inspect.iscoroutinefunction`` sees through
    partials.
    """


class SyncCall(_Decorated):
    """``policy.call`` bound to one function: the sync decorator's generic result."""


class Policy(NoCopy):
    """Base of the policies: every form of a call derived from ``_enter`` / ``_exit``.

    Policies are neither copied nor pickled (``NoCopy``): each is live state.
    """

    __slots__ = ()
    _name: str | None

    @property
    def name(self) -> str | None:
        """The name given at construction (used in errors, stats and metrics)."""
        return self._name

    # -- the protocol ------------------------------------------------------------------

    def _enter(self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None) -> Any:
        """Take what a call needs; the token for ``_exit`` (see the module's docstring)."""
        return None

    def _exit(self, token: Any, error: BaseException | None, result: Any) -> Any:
        """Settle the call's outcome; None to let it stand (see the module's docstring)."""
        return None

    # -- the forms ------------------------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)`` through this policy."""
        members, delegates = self._plan(False)
        return run_sync(members, delegates, fn, args, kwargs)  # type: ignore[no-any-return]

    async def acall(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """``await fn(*args, **kwargs)`` through this policy."""
        members, delegates = self._plan(True)
        return await run_async(members, delegates, fn, args, kwargs)  # type: ignore[no-any-return]

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate ``fn`` (a function or method, sync or async) with this policy."""
        if not callable(fn):
            raise TypeError(f"{type(self).__name__} decorates a callable, got {fn!r}")
        wrapper: Any
        if inspect.iscoroutinefunction(fn):
            wrapper = None if runs_calls_itself(self, True) else self._fast_async(fn)
            if wrapper is None:
                wrapper = AsyncCall(type(self).acall, self, fn)
        else:
            wrapper = None if runs_calls_itself(self, False) else self._fast_sync(fn)
            if wrapper is None:
                wrapper = SyncCall(type(self).call, self, fn)
        functools.update_wrapper(wrapper, fn)
        return wrapper  # type: ignore[no-any-return]

    def _fast_sync(self, fn: Callable[..., Any]) -> Any:
        """A compiled wrapper doing what ``call`` does, faster; None where there is none."""
        return None

    def _fast_async(self, fn: Callable[..., Any]) -> Any:
        """An ``AsyncCall`` doing what ``acall`` does, faster; None where there is none."""
        return None

    def _plan(self, asynchronous: bool) -> tuple[tuple[Policy, ...], tuple[bool, ...]]:
        """The members a call goes through, outermost first, and which run calls themselves.

        A policy alone is its own only member and never delegates to itself
        (a subclass's ``call`` may call ``super().call``); a Pipeline has its own.
        """
        return (self,), (False,)


async def _coroutine_code() -> None:
    pass


def coroutine_function(wrapper: Any) -> Any:
    """``wrapper`` (an object that returns awaitables), marked so that
    ``inspect.iscoroutinefunction`` and ``asyncio.iscoroutinefunction`` say
    True of it, as of the async function it decorates — frameworks choose
    how to call a handler by asking. None where the marks are not read (an
    interpreter that only believes real functions): then there is no fast path.
    """
    if hasattr(inspect, "markcoroutinefunction"):  # 3.12+
        inspect.markcoroutinefunction(wrapper)
    else:
        # What inspect accepts as function-like: a coroutine's code and defaults.
        wrapper.__code__ = _coroutine_code.__code__
        wrapper.__defaults__ = None
        wrapper.__kwdefaults__ = None
        wrapper.__name__ = "wrapper"  # replaced by the decorated function's own
    return wrapper if inspect.iscoroutinefunction(wrapper) else None


def keeps(obj: object, base: type, *methods: str) -> bool:
    """Whether ``obj``'s class has ``base``'s own ``methods``, none overridden.

    A fast path may stand in for them only then: a subclass that overrides
    ``acquire`` or ``release`` must see every call go through it.
    """
    kind = type(obj)
    return all(getattr(kind, method) is getattr(base, method) for method in methods)


class _Entry:
    """What one open ``with`` block took on entry, for its exit to settle."""

    __slots__ = ("frame", "open", "owner", "value")

    def __init__(self, owner: object, value: Any, frame: FrameType) -> None:
        self.owner = owner
        self.value = value
        self.frame = frame  # the frame running the block
        self.open = True


# The open blocks of this thread or task, innermost last. A context variable,
# so threads and asyncio tasks sharing one policy each see their own.
_entries: ContextVar[tuple[_Entry, ...]] = ContextVar("resilience_entries", default=())

# A generator or coroutine frame can be resumed elsewhere: a generator closed
# by another thread, an async generator finalised by the event loop, runs the
# block's exit in a context that holds no entry for it. Blocks entered in such
# frames are also found by their frame. A plain function's frame always leaves
# its block where it entered it, and costs nothing here.
_RESUMABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
_by_frame: dict[FrameType, list[_Entry]] = {}
# Entries closed from another context, which the context that entered them
# may still list (it drops them on its next block): while there are any, a
# push filters its context's entries; otherwise it pays nothing for them.
# A hint, not a count to rely on: threads may race on it.
_closed_elsewhere = 0


def push_entry(owner: object, value: Any) -> None:
    """Remember ``value`` for the ``__exit__`` of ``owner``'s innermost block here.

    Called by ``__enter__`` / ``__aenter__`` themselves: the frame two up runs the block.
    """
    frame = sys._getframe(2)
    entry = _Entry(owner, value, frame)
    entries = _entries.get()
    if _closed_elsewhere and entries:
        kept = tuple(e for e in entries if e.open)
        if len(kept) < len(entries):
            _dropped_closed(len(entries) - len(kept))
            entries = kept
    _entries.set((*entries, entry))
    if frame.f_code.co_flags & _RESUMABLE:
        _by_frame.setdefault(frame, []).append(entry)


def pop_entry(owner: object) -> Any:
    """The value ``push_entry`` kept for ``owner``'s innermost open block.

    Looked for in this thread or task, then (for a generator or coroutine
    frame resumed elsewhere) by the frame running the block. Called by
    ``__exit__`` / ``__aexit__`` themselves.
    """
    entries = _entries.get()
    for i in range(len(entries) - 1, -1, -1):  # blocks nest: the innermost is the usual one
        entry = entries[i]
        if entry.owner is owner and entry.open:
            _entries.set(entries[:i] + entries[i + 1 :])
            return _close(entry)
    frame = sys._getframe(2)
    for entry in reversed(_by_frame.get(frame, ())):
        if entry.owner is owner:
            global _closed_elsewhere
            _closed_elsewhere += 1  # the context that entered it drops it on its next block
            return _close(entry)
    raise RuntimeError("__exit__ without a matching __enter__")


def _dropped_closed(n: int) -> None:
    global _closed_elsewhere
    _closed_elsewhere = max(0, _closed_elsewhere - n)


def _close(entry: _Entry) -> Any:
    entry.open = False
    if entry.frame.f_code.co_flags & _RESUMABLE:
        pending = _by_frame[entry.frame]
        pending.remove(entry)
        if not pending:
            del _by_frame[entry.frame]
    return entry.value


class SyncEntry:
    """``async with`` that does what ``with`` does: for entries that never wait."""

    __slots__ = ()

    async def __aenter__(self) -> Any:
        return self.__enter__()  # type: ignore[attr-defined]

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        return self.__exit__(exc_type, exc, tb)  # type: ignore[attr-defined]


# -- argument checks shared by the policies ----------------------------------------------


def check_name(name: object) -> str | None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {name!r}")
    return name


def check_exception_types(
    argument: str, value: object
) -> tuple[type[BaseException], ...]:
    """An exception class or a tuple of them, as a tuple."""
    types = value if isinstance(value, tuple) else (value,)
    for kind in types:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise TypeError(
                f"{argument} must be an exception class or a tuple of them, got {value!r}"
            )
    return types


def check_on(value: object) -> Callable[[BaseException], bool]:
    """``on=``: exception classes (a class or a tuple) or a predicate on the exception.

    Returns the test to apply to an exception. A class that is not an
    exception is neither, though it is callable.
    """
    if isinstance(value, (tuple, type)):
        types = check_exception_types("on", value)
        return lambda exc: isinstance(exc, types)
    if callable(value):
        return lambda exc: bool(value(exc))
    raise TypeError(f"on must be an exception class, a tuple of them or a predicate, got {value!r}")


def check_callable(argument: str, value: object) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{argument} must be callable or None, got {value!r}")
    return value


C = TypeVar("C", bound=Callable[..., object])


def add_listener(listeners: list[C], callback: C) -> C:
    """Append a listener after checking it can be called; returns it (for decorators)."""
    if not callable(callback):
        raise TypeError(f"callback must be callable, got {callback!r}")
    listeners.append(callback)
    return callback


def notify(callbacks: list[Callable[..., object]], *args: object) -> None:
    """Call each listener; one that raises is logged and the others still run."""
    for callback in callbacks:
        try:
            callback(*args)
        except Exception:
            logger.exception("resilience listener %r failed", callback)
