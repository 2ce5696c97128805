"""The platform as docker-compose.yml deploys it, on this machine: the web (Daphne), the
outbox relay, the projector, the saga timers, the three consumer groups and a Celery
worker, each a process of its own (tracked by pid file), on a PostgreSQL database and a
RabbitMQ vhost of the run's own, with librdkafka's mock cluster as Kafka. Tests stop,
kill and restart these processes while orders flow, then check the result with
`manage.py verify_consistency`."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import psycopg

from platform_core.testing.fleet import Fleet, Proc, free_port, queued, recreate_vhost
from platform_core.testing.kafka_mock import MockKafkaProcess
from tests.e2e.board_support import ROOT, Api, database_url

TOPICS = ("orders.events.v1", "inventory.events.v1", "payments.events.v1", "shipping.events.v1")
CONSUMER_GROUPS = ("order-fulfillment", "orders", "inventory")
COMMAND_QUEUES = ("orders", "inventory", "payments", "shipping")
BIN = Path(sys.executable).parent
STOCK = 100_000
SKU = "FAULT-TEA"


def _roles(port: int, worker_name: str, worker_pool: str, copies: int) -> dict[str, list[str]]:
    """Each role's command line: the web once, every other process `copies` times (the
    first copy named for its role, the n-th `<role>-n`)."""
    manage = [sys.executable, str(ROOT / "manage.py")]
    # The server the Dockerfile runs: Daphne refusing oversized bodies unread.
    web = [
        *(sys.executable, "-m", "platform_core.web.server"),
        *("-b", "127.0.0.1", "-p", str(port), "config.asgi:application"),
    ]
    roles = {"web": web}
    for n in range(1, copies + 1):
        copy = "" if n == 1 else f"-{n}"
        roles[f"relay{copy}"] = [*manage, "relay_outbox"]
        roles[f"projector{copy}"] = [*manage, "run_projections"]
        roles[f"saga-timers{copy}"] = [*manage, "run_saga_timers"]
        roles[f"worker{copy}"] = [
            str(BIN / "celery"),
            *("-A", "config.celery:app", "worker", "-Q", ",".join(COMMAND_QUEUES)),
            *("-P", worker_pool, "-c", "8" if worker_pool == "threads" else "3"),
            *("--without-mingle", "--without-gossip"),
            *("-n", worker_name.replace("@", f"{copy}@"), "--loglevel", "INFO"),
        ]
        for group in CONSUMER_GROUPS:
            roles[f"consumer-{group}{copy}"] = [
                *(*manage, "consume", group, "--instance-id", f"{group}-{n}"),
            ]
    return roles


@dataclass
class Deployment:
    fleet: Fleet
    procs: dict[str, Proc]
    url: str
    database_url: str
    kafka: MockKafkaProcess
    vhost: str

    def commands_queued(self) -> int:
        """Command messages in RabbitMQ: waiting, running, or held for a retry."""
        return sum(n for name, n in queued(self.vhost).items() if name in COMMAND_QUEUES)

    def stop(self, role: str) -> None:
        """SIGTERM, as an orchestrator stops a container (SIGKILL after 10 s)."""
        self.fleet.stop(self.procs[role])

    def kill(self, role: str) -> None:
        """SIGKILL: no chance to leave a consumer group or finish a batch."""
        self.fleet.kill(self.procs[role])

    def start(self, role: str) -> None:
        self.procs[role] = self.fleet.restart(self.procs[role])

    def api(self, username: str = "customer", password: str = "customer-demo-pass") -> Api:
        return Api(self.url, username, password)

    def query(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 180) -> None:
        """Poll `condition` (every 0.2 s, for at most `timeout` s) while every process
        that should run runs."""
        deadline = time.monotonic() + timeout
        while not condition():
            self.fleet.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:.0f} s\n{self.logs()}")
            time.sleep(0.2)

    def settled(self) -> bool:
        """No saga running or compensating, nothing left in the outbox, every projection
        at the end of the log (what verify_consistency's I5 folds)."""
        [(live, unsent, behind)] = self.query(
            "SELECT (SELECT count(*) FROM saga_instances"
            "        WHERE status IN ('running', 'compensating')),"
            "       (SELECT count(*) FROM outbox WHERE published_at IS NULL),"
            "       (SELECT count(*) FROM projection_checkpoints c WHERE EXISTS ("
            "          SELECT 1 FROM event_store e WHERE (e.transaction_id, e.position)"
            "          > (c.transaction_id::text::xid8, c.position)))"
        )
        return live == 0 and unsent == 0 and behind == 0

    def verify(self) -> str:
        """`manage.py verify_consistency`'s report; fails the test on any violation."""
        try:
            return self.fleet.run("verify", "verify_consistency", timeout=120)
        except RuntimeError as failed:
            raise AssertionError(f"verify_consistency found violations:\n{failed}") from None

    def orders_by_status(self) -> dict[str, int]:
        return dict(self.query("SELECT status, count(*) FROM read_order_summary GROUP BY status"))

    def settle(self, timeout: float = 240) -> str:
        """Wait until every saga has ended, the outbox is empty and every placed order is
        projected and past `pending`; then `verify_consistency`'s report."""
        self.wait_until(self.settled, "sagas ended, outbox empty, projections caught up", timeout)

        def all_projected() -> bool:
            by_status = self.orders_by_status()
            [(placed,)] = self.query(
                "SELECT count(*) FROM event_store WHERE event_type = 'orders.OrderPlaced'"
            )
            return sum(by_status.values()) == placed and not by_status.get("pending")

        self.wait_until(all_projected, "every order projected and none pending", timeout)
        return self.verify()

    def logs(self, lines: int = 12) -> str:
        return "\n".join(f"--- {p.role}\n{p.tail(lines)}" for p in self.procs.values())


def _environment(database: str, bootstrap: str, vhost: str, settings: Mapping[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    run = uuid.uuid4().hex[:8]
    broker = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "platform")]),
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=database,
        CELERY_BROKER_URL=urlunparse(urlparse(broker)._replace(path=f"/{vhost}")),
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        CACHE_KEY_PREFIX=f"deploy-{run}",
        CHANNEL_LAYER_PREFIX=f"deploy-{run}",
        SECRET_KEY=f"deployment-under-test-{uuid.uuid4().hex}{uuid.uuid4().hex}",
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="0",
        CONN_MAX_AGE="300",
        CELERY_DB_REUSE_MAX="1000",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        PYTHONFAULTHANDLER="1",
        ORDER_RATE_LIMIT="off",  # one customer places every order of a test
        **settings,
    )
    return env


# As docker-compose.yml: the worker reuses its connections without a health-check query
# before each task (a command on a connection that had died runs again on a new one).
_ROLE_ENV = {role: {"CONN_HEALTH_CHECKS": "0"} for role in ("worker", "worker-2")}


@contextlib.contextmanager
def deployment(
    scratch: Path, *, worker_pool: str = "threads", copies: int = 1, **settings: str
) -> Iterator[Deployment]:
    """Run the deployment until the block ends, with `settings` in every process's
    environment (SAGA_STEP_SECONDS=5, say), the Celery worker on `worker_pool`
    (`threads`, as docker-compose runs it, or `prefork`) and `copies` of each process but
    the web (the second relay a standby, the second worker `<name>-2`, the second
    consumer of each group `--instance-id <group>-2`)."""
    vhost = f"deploy-{os.getpid()}"
    recreate_vhost(vhost)
    kafka = MockKafkaProcess(dict.fromkeys(TOPICS, 3), log=scratch / "kafka.log")
    database = database_url(scratch, suffix="deploy")
    fleet = Fleet(
        _environment(database, kafka.bootstrap_servers, vhost, settings), scratch, root=ROOT
    )
    try:
        fleet.run("migrate", "migrate", "--noinput")
        fleet.run("seed", "seed_demo")
        port = free_port()
        roles = _roles(port, f"deploy-{os.getpid()}@%h", worker_pool, copies)
        procs = {role: fleet.start(role, argv, _ROLE_ENV.get(role)) for role, argv in roles.items()}
        running = Deployment(fleet, procs, f"http://127.0.0.1:{port}", database, kafka, vhost)
        _stock_a_product(running)
        yield running
    finally:
        fleet.stop()
        kafka.close()


def _stock_a_product(running: Deployment) -> None:
    def web_answers() -> bool:
        with contextlib.suppress(OSError, AssertionError, KeyError):
            running.api("staff", "staff-demo-pass")
            return True
        return False

    running.wait_until(web_answers, "the web server answering")
    running.api("staff", "staff-demo-pass").call(
        "POST", "/api/products/", sku=SKU, name="Fault tea", price="4.00", initial_stock=STOCK
    )
    running.wait_until(
        lambda: bool(running.query("SELECT 1 FROM read_product_stock WHERE sku = %s", [SKU])),
        "the product in the read model",
    )
