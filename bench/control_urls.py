"""The control of bench/fulfillment.py: a bare DRF endpoint that inserts one row.

Bench-only; never part of the product's URLs. The benchmark serves it from a second Daphne
process with the product's settings, middleware and DRF defaults (token authentication
included), only the URL configuration swapped for this module:

    PYTHONPATH=.:platform:bench daphne -b 127.0.0.1 -p PORT control_urls:application

`POST /api/control/` stores the JSON body in `bench_control_rows` (created by the
benchmark) in one transaction and answers 202 with the row's id.
"""

from __future__ import annotations

import json
import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django
from django.conf import settings

settings.ROOT_URLCONF = __name__  # before setup: this module is the whole URL space
django.setup()

from django.db import connection, transaction  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.request import Request  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402


class ControlInsertApi(APIView):
    """Authenticate, parse the JSON body, insert it as one row, answer 202."""

    def post(self, request: Request) -> Response:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bench_control_rows (user_id, body) VALUES (%s, %s) RETURNING id",
                [request.user.pk, json.dumps(request.data)],
            )
            row_id = cursor.fetchone()[0]
        return Response({"id": row_id, "status": "stored"}, status=202)


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("api/control/", ControlInsertApi.as_view(), name="control-insert"),
    path("healthz", healthz, name="healthz"),
]


def __getattr__(name: str) -> Any:
    """`control_urls:application`: the product's ASGI application, built on first use."""
    if name != "application":
        raise AttributeError(name)
    from config.asgi import application

    return application
