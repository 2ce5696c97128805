"""The edge's limits in real Daphne processes (platform_core.web.server), as deployed: a
huge body is refused before it is read, so the process's memory stays flat; failed logins
and the order rate are counted across processes (the database, Redis)."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path

import psycopg
import pytest

from platform_core.testing.fleet import Fleet, Proc, free_port
from tests.e2e.board_support import ROOT, database_url

# The order rate is counted in Redis, failed logins in the database, across processes.
pytestmark = [pytest.mark.redis, pytest.mark.postgres]

MiB = 1 << 20
BODY_LIMIT = 256 * 1024
LOGIN_LIMIT = 3
# How much a process may grow while refusing a 100 MiB body: it used to grow by 94 MiB.
MEMORY_BOUND = 16 * MiB


@dataclass
class Web:
    proc: Proc
    port: int

    def peak_memory(self) -> int:
        """The process's peak resident memory (VmHWM), in bytes."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024

    def post(self, path: str, body: dict, token: str = "") -> tuple[int, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        if token:
            request.add_header("Authorization", f"Token {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


def _wait_until_up(web: Web) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert web.proc.alive, web.proc.tail()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web.port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the web process never answered:\n{web.proc.tail()}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[tuple[str, list[Web]]]:
    """Two web processes of one deployment: one database, one Redis."""
    scratch = tmp_path_factory.mktemp("daphne")
    database = database_url(scratch, suffix="daphne")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "platform")]),
        "DATABASE_URL": database,
        "VAR_DIR": str(scratch),
        "CACHE_KEY_PREFIX": f"daphne-{uuid.uuid4().hex[:8]}",
        "MAX_REQUEST_BYTES": str(BODY_LIMIT),
        "LOGIN_FAILURE_LIMIT": str(LOGIN_LIMIT),
        "ORDER_RATE_LIMIT": "2/day",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("CELERY_BROKER_URL", None)
    fleet = Fleet(env, scratch, root=ROOT, app_prefix="daphne-test:")
    try:
        fleet.run("migrate", "migrate", "--noinput")
        fleet.run("seed", "seed_demo")
        servers = []
        for n in range(2):
            port = free_port()
            argv = [sys.executable, "-m", "platform_core.web.server", "-p", str(port)]
            servers.append(Web(fleet.start(f"web-{n}", [*argv, "config.asgi:application"]), port))
        for web in servers:
            _wait_until_up(web)
        yield database, servers
    finally:
        fleet.stop()


@pytest.fixture
def webs(deployment) -> list[Web]:
    """The web processes, every client address's failed logins forgotten."""
    database, servers = deployment
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute("DELETE FROM axes_accessattempt")
    return servers


def send_body(web: Web, headers: str, chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """Send a request's head, then its body for as long as the server reads it; the
    response's first bytes and how many body bytes went out."""
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as connection:
        connection.sendall(
            f"POST /api/orders/ HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n".encode()
        )
        sent = 0
        for chunk in chunks:
            readable, _, _ = select.select([connection], [], [], 0)
            if readable:
                break
            try:
                connection.sendall(chunk)
            except OSError:  # closed on us, the answer already on its way
                break
            sent += len(chunk)
        try:
            return connection.recv(4096), sent
        except ConnectionResetError:
            return b"", sent


def chunks_of(total: int, size: int = MiB) -> Iterator[bytes]:
    return (b"x" * size for _ in range(total // size))


def chunked(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    return (b"%x\r\n%s\r\n" % (size, b"x" * size) for _ in range(total // size))


@pytest.mark.parametrize("size", [10 * MiB, 100 * MiB])
def test_a_huge_body_is_refused_unread_and_memory_stays_flat(webs, size):
    web = webs[0]
    before = web.peak_memory()

    answer, sent = send_body(
        web, f"Content-Type: application/json\r\nContent-Length: {size}\r\n", chunks_of(size)
    )

    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"code": "request_too_large"' in answer
    assert sent < size / 2, "the server stopped reading"
    assert web.peak_memory() - before < MEMORY_BOUND


def test_a_chunked_body_is_refused_once_it_passes_the_limit(webs):
    web = webs[0]
    before = web.peak_memory()

    answer, sent = send_body(
        web, "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", chunked(100 * MiB)
    )

    assert answer.startswith(b"HTTP/1.1 413 ") or answer == b"", answer[:200]
    assert sent < 50 * MiB, "the server stopped reading"
    assert web.peak_memory() - before < MEMORY_BOUND


def test_a_client_expecting_100_continue_gets_the_413_instead(webs):
    head = f"Content-Type: application/json\r\nContent-Length: {MiB}\r\nExpect: 100-continue\r\n"

    answer, _ = send_body(webs[0], head, iter(()))

    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]


def test_a_body_within_the_limit_is_served(webs):
    """Refused for its 2,000-character password, by the view: the body was read."""
    status, body = webs[0].post(
        "/api/auth/token/", {"username": "customer", "password": "x" * 2000}
    )

    assert (status, body["error"]["code"]) == (400, "invalid")


def test_failed_logins_are_counted_across_processes_and_lock_out(webs):
    first, second = webs
    assert first.post("/api/auth/token/", {"username": "staff", "password": "no"})[0] == 400
    assert second.post("/api/auth/token/", {"username": "staff", "password": "no"})[0] == 400

    status, body = first.post("/api/auth/token/", {"username": "staff", "password": "no"})
    locked, _ = second.post(
        "/api/auth/token/", {"username": "staff", "password": "staff-demo-pass"}
    )

    assert (status, body["error"]["code"]) == (429, "too_many_login_failures")
    assert locked == 429


def test_the_login_form_is_locked_out_too(webs):
    """The board's login form, through AxesMiddleware under Daphne's ASGI handler."""
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar := CookieJar()))
    url = f"http://127.0.0.1:{webs[0].port}/accounts/login/"
    with browser.open(url, timeout=10) as page:
        csrf = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.read()).group(1)
    assert any(cookie.name == "csrftoken" for cookie in jar)
    statuses = []
    for _ in range(LOGIN_LIMIT):
        form = b"csrfmiddlewaretoken=%s&username=customer&password=wrong" % csrf
        request = urllib.request.Request(url, data=form, headers={"Referer": url})
        try:
            with browser.open(request, timeout=10) as page:
                statuses.append(page.status)
        except urllib.error.HTTPError as error:
            statuses.append(error.code)
            body = error.read()

    assert statuses == [200] * (LOGIN_LIMIT - 1) + [429]
    assert b'data-testid="locked-out"' in body


def test_the_order_rate_is_counted_across_processes(webs):
    first, second = webs
    status, body = first.post(
        "/api/auth/token/", {"username": "customer", "password": "customer-demo-pass"}
    )
    assert status == 200, body
    token = body["token"]
    order = {"items": [], "shipping_address": {}, "payment_token": "tok_visa"}  # refused, counted
    assert first.post("/api/orders/", order, token)[0] == 400
    assert second.post("/api/orders/", order, token)[0] == 400

    status, body = first.post("/api/orders/", order, token)

    assert (status, body["error"]["code"]) == (429, "throttled")
