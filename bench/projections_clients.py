"""The load of projections.py's push part: websocket clients on ws/orders/ that note when
each order.updated frame arrived, and the customer placing orders at a fixed rate."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections.abc import Iterable
from typing import Any

from _common import ADDRESS, Http

FINAL = {"confirmed", "cancelled"}  # what an order placed in the push phase ends as


class Client:
    """One websocket client: every order.updated frame with the time it arrived."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[tuple[float, str, str]] = []  # (received, position, order id)
        self.final: set[str] = set()  # orders seen confirmed or cancelled
        self.task: asyncio.Task[None] | None = None

    async def listen(self) -> None:
        with contextlib.suppress(Exception):
            async for message in self.ws:
                received = time.time()
                frame = json.loads(message)
                if frame.get("type") != "order.updated":
                    continue
                order = frame.get("order") or {}
                self.frames.append((received, frame["position"], str(order.get("id", ""))))
                if order.get("status") in FINAL:
                    self.final.add(str(order["id"]))


async def connect_clients(port: int, token: str, count: int, into: list[Client]) -> None:
    """Connect `count` clients on ws/orders/, each added to `into` once connected (so the
    caller can close them whatever happens)."""
    from websockets.asyncio.client import connect

    gate = asyncio.Semaphore(10)  # handshakes at a time: each one is a token lookup

    async def one() -> None:
        async with gate:
            ws = await connect(
                f"ws://127.0.0.1:{port}/ws/orders/",
                additional_headers={"Authorization": f"Token {token}"},
                ping_interval=None,
                open_timeout=60,
            )
        client = Client(ws)
        into.append(client)
        client.task = asyncio.create_task(client.listen())

    await asyncio.gather(*(one() for _ in range(count)))


async def close_clients(clients: Iterable[Client]) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.ws.close(), 5)
        if client.task is not None:
            client.task.cancel()
            with contextlib.suppress(BaseException):
                await client.task


class Placer(threading.Thread):
    """POSTs orders as the customer at a fixed rate (by schedule, not back to back)."""

    def __init__(self, port: int, token: str, skus: list[str], rate: float, count: int) -> None:
        super().__init__(name="placer", daemon=True)
        self.port, self.token, self.skus, self.rate, self.count = port, token, skus, rate, count
        self.placed: list[tuple[str, float, float]] = []  # (order id, sent, answered)
        self.errors: list[str] = []

    def run(self) -> None:
        rng, http = random.Random(7), Http(self.port, self.token)
        start = time.monotonic()
        try:
            for n in range(self.count):
                time.sleep(max(0.0, start + n / self.rate - time.monotonic()))
                lines = rng.sample(self.skus, rng.choice((1, 1, 2)))
                body = {
                    "items": [{"sku": sku, "quantity": rng.randint(1, 3)} for sku in lines],
                    "shipping_address": ADDRESS,
                    "payment_token": "tok_visa",
                }
                sent = time.time()
                status, answer = http.request("POST", "/api/orders/", body)
                if status != 202:
                    self.errors.append(f"{status} {answer[:120]!r}")
                    continue
                self.placed.append((str(json.loads(answer)["id"]), sent, time.time()))
        except Exception as error:  # reported by the caller
            self.errors.append(repr(error))
        finally:
            http.close()


async def place_and_listen(
    port: int, token: str, skus: list[str], clients: list[Client], rate: float, count: int
) -> Placer:
    """Place `count` orders, then wait (up to 30 s) until every client saw each one end."""
    placer = Placer(port, token, skus, rate, count)
    placer.start()
    await asyncio.to_thread(placer.join)
    ids = {order_id for order_id, _, _ in placer.placed}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(not ids <= c.final for c in clients):
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # frames for positions after the final one (none expected)
    return placer
