"""The API answers as its OpenAPI document says: schemathesis, every check and every phase
(examples, coverage, fuzzing, stateful through the document's links), against a real
platform (`manage.py runplatform`, DEBUG off) as two customers and a staff user.

Seeded and bounded (tests/e2e/schemathesis.toml), so a run is repeatable and takes a few
minutes; `make test-schema` runs it, CI too. Not in the default run (marker `schema`).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from inventory.management.commands.seed_demo import PRODUCTS, USERS
from platform_core.web.read_your_writes import MIN_POSITION_HEADER
from tests.e2e.board_support import ROOT, SECOND_CUSTOMER, Api, running_platform

pytestmark = pytest.mark.schema

CONFIG = ROOT / "tests" / "e2e" / "schemathesis.toml"
# As a deployment runs: JSON error pages, not Django's debug pages. A read asked to wait for
# a position the projection has not reached answers 503 after this long, not 5 s.
DEPLOYED = {
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "127.0.0.1",
    "SECURE_SSL_REDIRECT": "0",
    "READ_YOUR_WRITES_TIMEOUT": "0.2",
    # schemathesis sends wrong passwords for the accounts it logs in as, and many orders:
    # the lockout and the order rate would refuse its own logins and links.
    "LOGIN_FAILURE_LIMIT": "1000000",
    "ORDER_RATE_LIMIT": "off",
}
# The identities schemathesis acts as; customer and bob must not see each other's orders.
ACCOUNTS = {name: password for name, password, _ in USERS} | dict([SECOND_CUSTOMER])


def narrowed(document: dict[str, Any], shipment_id: str) -> dict[str, Any]:
    """The served document, narrowed where validity depends on this platform's data (the
    document cannot list them): an order names products of the catalog, a login a real
    account. Without this every valid-looking unknown SKU or password would count as a
    valid request refused; with it, they count as invalid ones, which must be refused.
    A shipment that exists is the example of the shipment operations' path parameter."""
    for path in ("/api/shipments/{shipment_id}/dispatch/", "/api/shipments/{shipment_id}/deliver/"):
        [parameter] = document["paths"][path]["post"]["parameters"]
        parameter["example"] = shipment_id
    schemas = document["components"]["schemas"]
    skus = [sku for sku, *_ in PRODUCTS]
    schemas["OrderPlaceItem"]["properties"]["sku"] = {"type": "string", "enum": skus}
    # schemathesis 4.32.5's coverage phase makes header values of letters and digits only:
    # for a header whose pattern needs a ".", it sends a wrong one and calls it valid. The
    # header is tested in tests/platform_core/web/test_read_your_writes.py instead.
    for operation in document["paths"].values():
        for method in operation.values():
            method["parameters"] = [
                parameter
                for parameter in method.get("parameters", [])
                if parameter["name"] != MIN_POSITION_HEADER
            ]
    schemas["TokenInput"] = {
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "username": {"type": "string", "enum": [username]},
                    "password": {"type": "string", "enum": [password]},
                },
                "required": ["username", "password"],
                "additionalProperties": False,
            }
            for username, password in ACCOUNTS.items()
        ]
    }
    return document


def booked_shipment(url: str) -> str:
    """The shipment of an order the saga has taken that far."""
    customer = Api(url, "customer", ACCOUNTS["customer"])
    order = customer.wait_for(customer.place_order(), lambda order: order["shipment"]["id"])
    return str(order["shipment"]["id"])


def login(username: str, password: str) -> dict[str, Any]:
    """A Web Fuzzing Commons login entry: the token from POST /api/auth/token/."""
    return {
        "name": username,
        "loginEndpointAuth": {
            "endpoint": "/api/auth/token/",
            "verb": "POST",
            "contentType": "application/json",
            "payloadUserPwd": {
                "username": username,
                "usernameField": "username",
                "password": password,
                "passwordField": "password",
            },
            "token": {
                "extractFrom": "body",
                "extractSelector": "/token",
                "sendIn": "header",
                "sendName": "Authorization",
                "sendTemplate": "Token {token}",
            },
        },
    }


def test_the_api_answers_as_its_openapi_document_says(tmp_path: Path) -> None:
    with running_platform(tmp_path, database="schema", settings=DEPLOYED) as platform:
        with urllib.request.urlopen(f"{platform.url}/api/schema/?format=json") as response:
            document = json.load(response)
        schema = tmp_path / "openapi.json"
        schema.write_text(json.dumps(narrowed(document, booked_shipment(platform.url))))
        # The order says who is tried first on an operation: staff last.
        accounts = [login(name, ACCOUNTS[name]) for name in ("customer", SECOND_CUSTOMER[0])]
        accounts.append(login("staff", ACCOUNTS["staff"]))
        auth = tmp_path / "auth.json"
        auth.write_text(json.dumps({"auth": accounts}))

        done = subprocess.run(
            [
                *(sys.executable, "-m", "schemathesis.cli"),
                *("--config-file", str(CONFIG), "--no-color", "run", str(schema)),
                *("--url", platform.url, "--checks", "all"),
            ],
            cwd=ROOT,
            env={**os.environ, "SCHEMATHESIS_WFC_AUTH": str(auth)},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    print(done.stdout[-3000:])
    assert done.returncode == 0, f"{done.stdout[-30000:]}\n{done.stderr[-5000:]}"
