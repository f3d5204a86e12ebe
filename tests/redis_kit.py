"""Real Redis for the tests: the machine's (STORE_TEST_REDIS_URL, default 127.0.0.1:6379) with a key prefix of the
test's own, deleted after; and a private `redis-server` on a port of the test's own, which a test may stop and start
again (Redis restarted mid-run) or pause and resume (a Redis that stalls, then answers). .ci/run sets
STORE_TEST_REQUIRE_REDIS=1: there an unreachable Redis fails."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.helpers import free_port

REDIS_URL = os.environ.get("STORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_REQUIRED = os.environ.get("STORE_TEST_REQUIRE_REDIS") == "1"


def _unreachable(reason: str) -> None:
    (pytest.fail if REDIS_REQUIRED else pytest.skip)(reason)


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(url, prefix) on the machine's Redis; the prefix's keys are deleted after the test."""
    import redis  # noqa: PLC0415 - only the tests that ask load it

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        _unreachable(f"Redis at {REDIS_URL} is unreachable ({type(exc).__name__}); set STORE_TEST_REDIS_URL")
    prefix = f"test-{secrets.token_hex(4)}:"
    try:
        yield REDIS_URL, prefix
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


class PrivateRedis:
    """A redis-server of the test's own (nothing on disk), which can be stopped and started on the same port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _unreachable("redis-server is not installed (Debian package redis-server)")
        self.binary = str(binary)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not start on port {self.port}")

    def pause(self) -> None:
        """SIGSTOP: connections stay open, commands wait unanswered until `resume` (then run, in order)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()
