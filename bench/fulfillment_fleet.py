"""The deployment fulfillment.py measures, started as subprocesses on this machine: where
the brokers are, the processes' environment and database connections, the demo users and
the bench's products, and the --serve-consumer child that runs `manage.py consume`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from _common import APP_PREFIX, REDIS, ROOT, Fleet, Http, Proc, free_port, wait_http
from fulfillment_load import Sizes

from platform_core.testing.kafka_mock import MockKafkaProcess

BENCH = Path(__file__).resolve().parent
ENTRY_POINT = BENCH / "fulfillment.py"  # each consumer runs it again, with --serve-consumer
RABBIT = "amqp://guest:guest@127.0.0.1:5672"
VHOST = "bench_fulfillment"
BIN = Path(sys.executable).parent
TOPICS = ("orders.events.v1", "inventory.events.v1", "payments.events.v1", "shipping.events.v1")
PARTITIONS = 3
PRODUCTS = 50
# Django under ASGI runs each request in a thread of its own, so a persistent connection
# (CONN_MAX_AGE > 0) is never reused and lingers until garbage-collected: under load the
# server runs out of connections ("too many clients"). Django's documentation says to
# disable persistent connections under ASGI: a pool per process is what reuses them.
CONNECTION_ENVS = {
    "reuse": {
        "web": {"CONN_MAX_AGE": "0", "DATABASE_POOL": "true", "DATABASE_POOL_MAX": "16"},
        "worker": {
            "CONN_MAX_AGE": "300",
            "CELERY_DB_REUSE_MAX": "1000",
            "CONN_HEALTH_CHECKS": "0",
        },
    },
    "per-use": {"web": {"CONN_MAX_AGE": "0"}, "worker": {}},
}


# --------------------------------------------------------------------------- child modes


def serve_consumer(group: str, fetch_wait_ms: int) -> None:
    """Child process: `manage.py consume GROUP` with fetch.wait.max.ms lowered for the mock
    broker (which, unlike Kafka, holds an empty fetch for that long even when data comes)."""
    import django

    django.setup()
    from django.core.management import call_command

    from platform_core.messaging import kafka

    kafka.CONSUMER_DEFAULTS["fetch.wait.max.ms"] = fetch_wait_ms
    call_command("consume", group)


# --------------------------------------------------------------------------- setup


def base_env(url: str, bootstrap: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "platform")]),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": url,
            "REDIS_URL": REDIS,
            "CACHE_KEY_PREFIX": f"bench-fulfillment-{os.getpid()}",
            "CELERY_BROKER_URL": f"{RABBIT}/{VHOST}",
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            # A deployment's settings: DEBUG off (no query log), plain HTTP on loopback.
            "SECRET_KEY": f"bench-{uuid.uuid4().hex}{uuid.uuid4().hex}",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "ORDER_RATE_LIMIT": "off",  # a few users place every order of the load
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


# --------------------------------------------------------------------------- HTTP


def token_for(port: int, username: str, password: str) -> str:
    status, body = Http(port).request(
        "POST", "/api/auth/token/", {"username": username, "password": password}
    )
    if status != 200:
        raise RuntimeError(f"no token for {username}: {status} {body[:200]!r}")
    return str(json.loads(body)["token"])


# --------------------------------------------------------------------------- the run


@dataclass
class Setup:
    url: str
    fleet: Fleet
    web: Proc
    control: Proc
    relay: Proc
    web_port: int
    control_port: int
    token: str
    skus: list[str]
    logdir: Path


def start_system(
    args: argparse.Namespace, sizes: Sizes, logdir: Path, broker: MockKafkaProcess
) -> Setup:
    url = args.database_url
    env = base_env(url, broker.bootstrap_servers)
    fleet = Fleet(env, logdir, root=ROOT, app_prefix=APP_PREFIX)
    fleet.run("migrate", "migrate", "--noinput")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE bench_control_rows (id bigserial PRIMARY KEY, user_id bigint,"
            " body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
    fleet.run("seed_demo", "seed_demo")
    web_port, control_port = free_port(), free_port()
    # The server the Dockerfile runs (Daphne with its body limit), for both.
    daphne = [str(BIN / "python"), "-m", "platform_core.web.server"]
    asgi_env = dict(CONNECTION_ENVS[args.connections]["web"])
    web = fleet.start(
        "web",
        [*daphne, "-b", "127.0.0.1", "-p", str(web_port), "config.asgi:application"],
        asgi_env,
    )
    control = fleet.start(
        "control",
        [*daphne, "-b", "127.0.0.1", "-p", str(control_port), "control_urls:application"],
        {**asgi_env, "PYTHONPATH": os.pathsep.join([env["PYTHONPATH"], str(BENCH)])},
    )
    poll = [] if args.poll is None else ["--poll", str(args.poll)]
    relay = fleet.manage("relay", "relay_outbox", *poll)
    fleet.manage("projector", "run_projections", *poll)
    fleet.manage("saga-timers", "run_saga_timers")
    for group in ("order-fulfillment", "orders", "inventory"):
        fleet.start(
            f"consumer {group}",
            [
                sys.executable,
                str(ENTRY_POINT),
                "--serve-consumer",
                group,
                "--mock-fetch-wait-ms",
                str(args.mock_fetch_wait_ms),
            ],
        )
    celery, worker_env = [str(BIN / "celery")], dict(CONNECTION_ENVS[args.connections]["worker"])
    fleet.start(
        "worker",
        [
            *celery,
            "-A",
            "config.celery:app",
            "worker",
            "-Q",
            "orders,inventory,payments,shipping",
            "-c",
            str(args.celery_concurrency),
            "-P",
            args.celery_pool,
            "--without-mingle",
            "--without-gossip",
            "-n",
            f"bench-fulfillment-{os.getpid()}@%h",
        ],
        worker_env,
    )
    wait_http(web_port, fleet, "the web server")
    wait_http(control_port, fleet, "the control server")
    staff = token_for(web_port, "staff", "staff-demo-pass")
    token = token_for(web_port, "customer", "customer-demo-pass")
    skus = [f"BENCH-{n:03d}" for n in range(PRODUCTS)]
    http_ = Http(web_port, staff)
    for n, sku in enumerate(skus):
        status, body = http_.request(
            "POST",
            "/api/products/",
            {
                "sku": sku,
                "name": f"Bench product {n}",
                "price": f"{5 + n % 20}.50",
                "initial_stock": 1_000_000,
            },
        )
        if status != 202:
            raise RuntimeError(f"registering {sku}: {status} {body[:200]!r}")
    # Orders price their lines from the product read model: wait for the projector.
    deadline = time.monotonic() + 60
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM read_product_stock WHERE sku LIKE 'BENCH-%%'"
            ).fetchone()
            if row and row[0] == len(skus):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the projector did not project the bench's products")
            fleet.check_alive()
            time.sleep(0.1)
    return Setup(url, fleet, web, control, relay, web_port, control_port, token, skus, logdir)
