from collections.abc import Awaitable, Callable
from typing import Any, final

from typing_extensions import Self

from ._breaker_c import BreakerCore
from ._bucket_c import TokenBucket
from ._counters_c import Counters
from ._semaphore_c import SemaphoreCore

@final
class BreakerCall:
    def __init__(
        self,
        fn: Callable[..., Any],
        core: BreakerCore,
        name: str | None,
        fallback: Callable[..., Any] | None,
        settle: Callable[[int, BaseException | None, Any, float], object],
        clock: Callable[[], float] | None,
        timed: bool,
        judges_results: bool,
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: object, objtype: type | None = None, /) -> Any: ...

@final
class AsyncBreakerCall:
    def __init__(
        self,
        fn: Callable[..., Awaitable[Any]],
        core: BreakerCore,
        name: str | None,
        settle: Callable[[int, BaseException | None, Any, float], object],
        clock: Callable[[], float] | None,
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...
    def __get__(self, obj: object, objtype: type | None = None, /) -> Any: ...

@final
class LimiterCall:
    def __init__(
        self,
        fn: Callable[..., Any],
        bucket: TokenBucket,
        name: str | None,
        waits: bool,
        limit: Callable[[], float],
        pause: Callable[[float], object],
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: object, objtype: type | None = None, /) -> Any: ...

@final
class RetryCall:
    def __init__(
        self,
        fn: Callable[..., Any],
        counts: Counters,
        resume: Callable[..., Any],
        clock: Callable[[], float] | None,
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: object, objtype: type | None = None, /) -> Any: ...

@final
class AsyncLimiterCall:
    def __init__(
        self,
        fn: Callable[..., Awaitable[Any]],
        bucket: TokenBucket,
        name: str | None,
        waits: bool,
        limit: Callable[[], float],
        pause: Callable[[float, Awaitable[Any]], Awaitable[Any]],
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...
    def __get__(self, obj: object, objtype: type | None = None, /) -> Any: ...

@final
class AsyncRetryCall:
    def __init__(
        self,
        fn: Callable[..., Awaitable[Any]],
        counts: Counters,
        resume: Callable[..., Awaitable[Any]],
        clock: Callable[[], float] | None,
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...
    def __get__(self, obj: object, objtype: type | None = None, /) -> Any: ...

@final
class BulkheadCall:
    def __init__(
        self,
        fn: Callable[..., Any],
        core: SemaphoreCore,
        acquire: Callable[[], object],
        release: Callable[[], object],
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: object, objtype: type | None = None, /) -> Any: ...

class BulkheadGate:
    def _bind_core(self, core: Any) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None: ...
    def __aenter__(self) -> Awaitable[None]: ...
    def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Awaitable[None]: ...
