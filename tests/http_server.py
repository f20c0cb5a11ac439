"""Real HTTP servers for the HTTP tests: an ASGI app served by uvicorn on loopback.

``serve(app)`` runs uvicorn in a daemon thread on 127.0.0.1, on a port the
OS picks, and yields the base URL (``http://127.0.0.1:<port>``) once the
server accepts connections; leaving the block shuts it down and joins the
thread. Real sockets, a real HTTP/1.1 server: what the clients and the
middleware meet in production, not a mocked transport.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn

HOST = "127.0.0.1"
READY_SECONDS = 10.0  # a server starts in milliseconds; this only bounds a failure
STOP_SECONDS = 10.0


@contextmanager
def serve(app: Any, **config: Any) -> Iterator[str]:
    """Serve ``app`` (ASGI 3) until the block ends; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host=HOST, port=0, log_level="warning", lifespan="off", **config)
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + READY_SECONDS
        while not (server.started and server.servers):
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail(f"uvicorn did not start within {READY_SECONDS:g} s")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(STOP_SECONDS)
        if thread.is_alive():
            server.force_exit = True
            thread.join(STOP_SECONDS)
