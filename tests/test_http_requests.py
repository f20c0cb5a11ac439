"""resilience.http.requests: the resilient adapter, mounted on a real Session, against real servers.

The same servers as the httpx tests (``http_apps``): uvicorn on loopback
failing N times, answering ``Retry-After`` in both forms, hanging and
echoing; a raw server that drops connections; a closed port; a TLS server
no client trusts. The rules are those of the httpx transports (one module
decides for both); these tests prove requests' errors and options reach
them as they should.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
import requests
import urllib3
from http_apps import App, Dropper, Waits, closed_port, fresh, http_date, self_signed
from http_server import serve
from requests.adapters import HTTPAdapter

from resilience import (
    CircuitBreaker,
    CircuitOpenError,
    RateLimiter,
    RateLimitExceeded,
    RetryBudget,
    TimeoutExceeded,
    deadline,
)
from resilience.backoff import constant, exponential
from resilience.http._rules import NEVER, NOT_SENT, SENT
from resilience.http.requests import ResilientAdapter, error_kind


class Recording(ResilientAdapter):
    """Keeps every response the adapter built, discarded ones included."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.built: list[requests.Response] = []

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = super().build_response(req, resp)
        self.built.append(response)
        return response


def session(**options: Any) -> tuple[requests.Session, Recording, Waits]:
    waits = Waits()
    adapter = Recording(sleep=waits, **options)
    http = requests.Session()
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http, adapter, waits


def test_a_status_in_the_forcelist_is_retried_and_discarded_responses_closed(
    url: str, app: App
) -> None:
    http, adapter, waits = session(backoff=constant(0.25))
    path = fresh("/flaky", n=2)
    with http:
        response = http.get(url + path)
    assert response.status_code == 200 and response.text == "ok"
    assert app.seen[path] == 3 and waits.asked == [0.25, 0.25]
    assert [r.raw.closed for r in adapter.built[:2]] == [True, True]
    stats = adapter.stats
    assert (stats.requests, stats.attempts, stats.retries, stats.gave_up) == (1, 3, 2, 0)


def test_the_last_response_is_returned_as_is(url: str, app: App) -> None:
    http, adapter, _ = session(backoff=constant(0.0))
    path = fresh("/flaky", n=10, status=504)
    with http:
        response = http.get(url + path)
    assert response.status_code == 504 and response.text == "failed"
    assert app.seen[path] == 3 and adapter.stats.gave_up == 1


def test_method_first(url: str, app: App) -> None:
    http, _, waits = session()
    with http:
        path = fresh("/flaky", n=1)
        assert http.post(url + path, data=b"x").status_code == 503
        assert app.seen[path] == 1 and waits.asked == []
        path = fresh("/flaky", n=1)
        response = http.post(url + path, data=b"order", headers={"Idempotency-Key": "k"})
        assert response.status_code == 200 and app.bodies[path] == [b"order", b"order"]
        path = fresh("/flaky", n=1)
        assert http.delete(url + path).status_code == 200
        assert app.seen[path] == 2


def test_a_body_that_cannot_be_replayed_is_not_retried(url: str, app: App) -> None:
    http, adapter, waits = session()
    path = fresh("/flaky", n=1)
    with http:
        response = http.put(url + path, data=iter([b"a", b"b"]))
    assert response.status_code == 503 and app.bodies[path] == [b"ab"]
    assert waits.asked == [] and adapter.stats.not_replayable == 1


def test_a_retry_budget(url: str, app: App) -> None:
    http, adapter, waits = session(budget=RetryBudget(ratio=0.0, min_per_second=0.0))
    path = fresh("/flaky", n=1)
    with http:
        assert http.get(url + path).status_code == 503
    assert waits.asked == [] and adapter.stats.budget_exhausted == 1


def test_retry_after(url: str, app: App) -> None:
    http, adapter, waits = session(
        backoff=exponential(max=1.0), status_forcelist=(), retry_after_max=60.0
    )
    with http:
        # Seconds, past the backoff's max; outside the forcelist (413).
        assert http.get(url + fresh("/flaky", n=1, status=413, retry_after=9)).status_code == 200
        date = http_date(30).replace(" ", "%20")
        assert http.get(url + fresh("/flaky", n=1, status=429, retry_after=date)).status_code == 200
        # Beyond retry_after_max: the response, at once.
        path = fresh("/flaky", n=1, status=503, retry_after=61)
        assert http.get(url + path).status_code == 503 and app.seen[path] == 1
        # Beyond the deadline: the same.
        path = fresh("/flaky", n=1, status=503, retry_after=20)
        with deadline(10.0):
            assert http.get(url + path).status_code == 503
        assert app.seen[path] == 1
    assert waits.asked[0] == 9.0 and 25.0 < waits.asked[1] <= 30.0 and len(waits.asked) == 2
    assert adapter.stats.retry_after_too_long == 2 and adapter.stats.retry_after_honoured == 2


def test_a_malformed_retry_after_is_ignored_and_counted(url: str, app: App) -> None:
    http, adapter, waits = session(backoff=constant(0.5))
    with http:
        assert http.get(url + fresh("/flaky", n=1, retry_after="later")).status_code == 200
    assert waits.asked == [0.5] and adapter.stats.retry_after_malformed == 1


def test_connect_errors_are_retried_for_any_method() -> None:
    http, adapter, waits = session(backoff=constant(0.1))
    with http, pytest.raises(requests.ConnectionError) as caught:
        http.post(f"http://127.0.0.1:{closed_port()}/", data=b"x")
    assert waits.asked == [0.1, 0.1] and adapter.stats.attempts == 3
    assert isinstance(caught.value.args[0], urllib3.exceptions.MaxRetryError)  # requests' own



def test_a_dropped_connection_is_retried_for_allowed_methods_only(dropper: Dropper) -> None:
    http, _, waits = session()
    with http:
        assert http.get(dropper.url).text == "ok"
        assert dropper.seen == 2 and len(waits.asked) == 1
        dropper.drops = 10
        with pytest.raises(requests.ConnectionError):
            http.post(dropper.url, data=b"x")
    assert dropper.seen == 3 and len(waits.asked) == 1


def test_a_read_timeout_is_retried_for_allowed_methods_only(url: str, app: App) -> None:
    http, _, waits = session(attempts=2)
    with http:
        path = fresh("/hang")
        with pytest.raises(requests.exceptions.ReadTimeout):
            http.get(url + path, timeout=0.2)
        assert app.seen[path] == 2 and len(waits.asked) == 1
        path = fresh("/hang")
        with pytest.raises(requests.exceptions.ReadTimeout):
            http.post(url + path, timeout=0.2)
        assert app.seen[path] == 1


def test_a_tls_verification_failure_is_never_retried(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    key, cert = self_signed(tmp_path_factory.mktemp("tls"))
    http, adapter, waits = session()
    with (
        serve(App(), ssl_keyfile=key, ssl_certfile=cert) as url,
        http,
        pytest.raises(requests.exceptions.SSLError),
    ):
        http.get(url.replace("http://", "https://"))
    assert waits.asked == [] and adapter.stats.attempts == 1


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (requests.exceptions.ConnectTimeout(), NOT_SENT),
        (requests.exceptions.ReadTimeout(), SENT),
        (requests.exceptions.InvalidURL(), NEVER),
    ],
)
def test_error_kinds(error: Exception, kind: int) -> None:
    assert error_kind(error) == kind


def test_a_full_pool_is_not_sent() -> None:
    # urllib3 raises EmptyPoolError inside requests' error; it is found down the chain.
    try:
        try:
            raise urllib3.exceptions.EmptyPoolError(urllib3.HTTPConnectionPool("127.0.0.1"), "full")
        except urllib3.exceptions.EmptyPoolError as empty:
            raise requests.ConnectionError(empty) from empty
    except requests.ConnectionError as error:
        assert error_kind(error) == NOT_SENT


def test_the_deadline_caps_the_timeouts_and_travels(url: str, app: App) -> None:
    http, _, _ = session(attempts=1, propagate_deadline=True)
    with http:
        path = fresh("/hang")
        with deadline(0.3), pytest.raises(requests.exceptions.ReadTimeout):
            http.get(url + path, timeout=(5.0, 30.0))  # uncapped, the answer would come
        with deadline(5.0):
            sent = http.get(url + "/echo").json()
        assert 4.0 < float(sent["request-timeout"]) <= 5.0
        path = fresh("/echo")
        with deadline(0.0), pytest.raises(TimeoutExceeded):
            http.get(url + path)
        assert app.seen[path] == 0


def test_breaker_and_limiter_per_attempt(url: str, app: App) -> None:
    made: list[str] = []

    def breaker(origin: str) -> CircuitBreaker:
        made.append(origin)
        return CircuitBreaker(origin, failure_threshold=2, reset_timeout=60.0)

    http, _, waits = session(breaker=breaker, attempts=3)
    path = fresh("/status", status=502)
    with http:
        for _ in range(3):
            assert http.get(url + fresh("/status", status=404)).status_code == 404  # successes
        with pytest.raises(CircuitOpenError):
            http.get(url + path)  # two 502s open it; the third attempt is refused
    assert made == [url] and app.seen[path] == 2 and len(waits.asked) == 2

    http, _, waits = session(limiter=RateLimiter(1, per=60.0, burst=1))
    with http:
        assert http.get(url + "/echo").status_code == 200
        with pytest.raises(RateLimitExceeded):
            http.get(url + "/echo")
    assert waits.asked == []


@pytest.mark.parametrize(
    ("options", "error", "text"),
    [
        ({"attempts": 0}, ValueError, "attempts"),
        ({"allowed_methods": "GET"}, TypeError, "allowed_methods"),
        ({"status_forcelist": [99]}, ValueError, "status_forcelist"),
        ({"retry_after_max": -1}, ValueError, "retry_after_max"),
        ({"breaker": 3}, TypeError, "breaker"),
        ({"propagate_deadline": None}, TypeError, "propagate_deadline"),
        ({"max_origins": -1}, ValueError, "max_origins"),
    ],
)
def test_bad_options(options: dict[str, Any], error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        ResilientAdapter(**options)


def test_urllib3_retries_stay_off() -> None:
    adapter = ResilientAdapter()
    assert isinstance(adapter, HTTPAdapter) and adapter.max_retries.total == 0


def test_the_adapter_is_not_copied() -> None:
    adapter = ResilientAdapter()
    for duplicate in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError, match="cannot be copied or pickled"):
            duplicate(adapter)
