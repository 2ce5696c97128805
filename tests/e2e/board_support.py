"""A real platform for the browser tests: `manage.py runplatform` in a subprocess, on a
database of its own (PostgreSQL when DATABASE_URL points at it, else a temporary SQLite
file), migrated and seeded first; plus a small JSON client for its REST API."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import psycopg
from psycopg import sql

from platform_core.testing.fleet import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Users beside seed_demo's `staff` and `customer`: a second customer, to show what is hidden.
SECOND_CUSTOMER = ("bob", "bob-demo-pass")
ADDRESS = {"name": "Ada", "line1": "1 Road", "city": "Leeds", "postal_code": "LS1", "country": "GB"}


def chromium_path() -> str:
    return os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def database_url(scratch: Path, suffix: str = "board") -> str:
    """A fresh database for the platform under test: `<name>_<suffix>` beside the test
    database on PostgreSQL (dropped first if an earlier run left it), else SQLite."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return f"sqlite:///{scratch / 'db.sqlite3'}"
    parsed = urlparse(url)
    name = f"{parsed.path.lstrip('/') or 'postgres'}_{suffix}"
    with psycopg.connect(url, dbname="postgres", autocommit=True) as admin:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        admin.execute(drop.format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunparse(parsed._replace(path=f"/{name}"))


def platform_environment(
    scratch: Path, embedded: bool = False, database: str = "board"
) -> dict[str, str]:
    """The subprocess's environment: commands and integration events in-process (no Celery
    worker or Kafka broker runs for it), but Redis kept, so the production channel layer is
    the one under test when REDIS_URL is set. `embedded`: nothing but `make run`'s
    defaults, SQLite files in `scratch` included (kept from one start to the next);
    otherwise the database is `database_url(scratch, database)`."""
    env = {**os.environ}
    run = uuid.uuid4().hex[:8]
    services = ("CELERY_BROKER_URL", "KAFKA_BOOTSTRAP_SERVERS")
    for name in services + (("DATABASE_URL", "REDIS_URL") if embedded else ()):
        env.pop(name, None)
    env.update(
        DATABASE_URL=(
            f"sqlite:///{scratch / 'db.sqlite3'}" if embedded else database_url(scratch, database)
        ),
        VAR_DIR=str(scratch),
        # Its own keys in a Redis that other test runs may share.
        CACHE_KEY_PREFIX=f"board-{run}",
        CHANNEL_LAYER_PREFIX=f"board-{run}",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        PYTHONFAULTHANDLER="1",  # a crash leaves its traceback in the log
        ORDER_RATE_LIMIT="off",  # the tests place orders faster than a person would
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


CREATE_SECOND_CUSTOMER = """
from django.contrib.auth import get_user_model
user, _ = get_user_model().objects.get_or_create(username={name!r})
user.set_password({password!r})
user.save()
"""


def prepare(env: dict[str, str]) -> None:
    manage(env, "migrate", "--noinput")
    manage(env, "seed_demo")
    name, password = SECOND_CUSTOMER
    manage(env, "shell", "-c", CREATE_SECOND_CUSTOMER.format(name=name, password=password))


@dataclass
class RunningPlatform:
    url: str
    log: Path

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def wait_until_ready(process: subprocess.Popen[bytes], running: RunningPlatform) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"runplatform exited early:\n{running.log_tail()}"
        try:
            with urllib.request.urlopen(f"{running.url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"/readyz never answered 200:\n{running.log_tail()}")


@contextmanager
def running_platform(
    scratch: Path,
    embedded: bool = False,
    database: str = "board",
    settings: dict[str, str] | None = None,
) -> Iterator[RunningPlatform]:
    """Serve the platform until the block ends, then stop it as Ctrl-C would and check
    that it exits cleanly (`embedded`, `database`: see platform_environment; `settings`:
    more environment variables)."""
    env = {**platform_environment(scratch, embedded, database), **(settings or {})}
    prepare(env)
    port = free_port()
    running = RunningPlatform(url=f"http://127.0.0.1:{port}", log=scratch / "runplatform.log")
    with running.log.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runplatform", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_ready(process, running)
            yield running
        finally:
            process.send_signal(signal.SIGINT)
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGUSR1)  # its threads' stacks, into the log
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=3)
                process.kill()
                stacks = running.log_tail(200)
                raise AssertionError(f"runplatform did not stop:\n{stacks}") from None
    assert code == 0, f"runplatform exited with {code}:\n{running.log_tail()}"


class Api:
    """The REST API as one user sees it (token auth)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.token = ""
        self.token = self.call("POST", "/api/auth/token/", username=username, password=password)[
            "token"
        ]

    def call(self, method: str, path: str, **body: Any) -> Any:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=json.dumps(body).encode() if body else None,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        if self.token:
            request.add_header("Authorization", f"Token {self.token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def place_order(
        self, sku: str = "TEA-EARLGREY", quantity: int = 1, token: str = "tok_visa"
    ) -> str:
        order = self.call(
            "POST",
            "/api/orders/",
            items=[{"sku": sku, "quantity": quantity}],
            shipping_address=ADDRESS,
            payment_token=token,
        )
        return str(order["id"])

    def order(self, order_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/orders/{order_id}/"))

    def wait_for_status(self, order_id: str, status: str, seconds: float = 30) -> dict[str, Any]:
        """Poll the read model (with a deadline) until the order has `status`."""
        return self.wait_for(order_id, lambda order: order["status"] == status, seconds)

    def wait_for(
        self, order_id: str, condition: Callable[[dict[str, Any]], bool], seconds: float = 30
    ) -> dict[str, Any]:
        """Poll the read model (with a deadline) until the order meets `condition`."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                order = self.order(order_id)
                if condition(order):
                    return order
            except urllib.error.HTTPError as error:
                if error.code != 404:  # 404: not projected yet
                    raise
            assert time.monotonic() < deadline, f"order {order_id} never got there"
            time.sleep(0.05)
