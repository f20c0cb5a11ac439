"""What the HTTP client tests serve and record: a counting ASGI app, a dropping raw server.

``App`` (served by ``http_server.serve``) fails N times then succeeds,
answers with ``Retry-After`` in both forms, hangs, echoes headers and counts
what it saw per path and query; ``fresh`` makes a URL no other request used,
so each test reads its own counts. ``Dropper`` is a raw socket server that
closes connections without an answer. ``Waits`` records the waits a client
asks for, so no test sleeps for a retry.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

HANG_SECONDS = 2.0  # a hanging endpoint's answer comes this late (well past any test's timeout)


class App:
    """The test server's ASGI app. Every request is counted by its path and query.

    ``/flaky?n=N&status=S[&retry_after=V]``: S (default 503), with
    ``Retry-After: V`` if given, the first N times; then 200 ``ok``.
    ``/status?status=S``: always S. ``/echo``: the request's headers as JSON.
    ``/hang``: answers after HANG_SECONDS. Bodies received are kept per key.
    """

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.bodies: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        query = scope["query_string"].decode()
        key = scope["path"] + ("?" + query if query else "")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        with self.lock:
            self.seen[key] += 1
            seen = self.seen[key]
            self.bodies.setdefault(key, []).append(body)
        params = {name: values[0] for name, values in parse_qs(query).items()}
        status, headers, content = 200, [], b"ok"
        path = scope["path"]
        if path == "/flaky" and seen <= int(params["n"]):
            status, content = int(params.get("status", "503")), b"failed"
            if "retry_after" in params:
                headers.append((b"retry-after", params["retry_after"].encode()))
        elif path == "/status":
            status = int(params["status"])
        elif path == "/echo":
            content = json.dumps({k.decode(): v.decode() for k, v in scope["headers"]}).encode()
        elif path == "/hang":
            await asyncio.sleep(HANG_SECONDS)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


_unique = iter(range(1, 1 << 30))


def fresh(path: str, **params: object) -> str:
    """``path`` with ``params`` and a query key no other request used: its own counter."""
    query = "&".join(f"{name}={value}" for name, value in params.items())
    return f"{path}?{query}&k={next(_unique)}" if query else f"{path}?k={next(_unique)}"


class Waits:
    """A recording ``sleep=``: the waits asked for, none made."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


class Dropper:
    """A raw HTTP server that closes the first ``drops`` connections without an answer."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.seen = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5.0)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.seen += 1
                if self.seen > self.drops:
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    )

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5.0)
        self.listener.close()


def self_signed(folder: Path) -> tuple[str, str]:
    """A key and a self-signed certificate for 127.0.0.1 in ``folder``: (keyfile, certfile)."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(key), str(cert)
