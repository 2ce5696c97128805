"""Daphne, refusing a request body over DATA_UPLOAD_MAX_MEMORY_SIZE before reading it.

Daphne (on Twisted) receives a whole body, to a temporary file, before the application
runs, then hands all of it to the application's queue at once: a 100 MiB POST grew the
process by 94 MiB, although Django answered 413 without looking at it. Here the request
answers 413 itself (the API's error format, `Connection: close`) as soon as its
`Content-Length`, or the chunks received so far, pass the limit, and the connection is
closed without reading the rest.

`python -m platform_core.web.server` takes Daphne's command line (`-b`, `-p`, ...,
`config.asgi:application`); `manage.py runplatform` serves with `Server`.
"""

from __future__ import annotations

import json
from typing import Any

from daphne.cli import CommandLineInterface as DaphneCommandLine
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.server import Server as DaphneServer
from django.conf import settings


def _too_large(limit: int) -> bytes:
    body = json.dumps(
        {"error": {"code": "request_too_large", "message": f"The body exceeds {limit} bytes."}}
    ).encode()
    head = (
        "HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class BodyLimitedRequest(WebRequest):  # type: ignore[misc]
    """Daphne's HTTP request, answering 413 once the body passes the limit."""

    refused = False

    def gotLength(self, length: int | None) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and length is not None and length > limit:
            # Not "100 Continue" to a client waiting for it: the answer is no.
            self.requestHeaders.removeHeader(b"expect")
            self._refuse(limit)
        super().gotLength(None if self.refused else length)

    def handleContentChunk(self, data: bytes) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if not self.refused and limit is not None and self.content.tell() + len(data) > limit:
            self._refuse(limit)
        if not self.refused:
            super().handleContentChunk(data)

    def process(self) -> Any:
        return None if self.refused else super().process()

    def _refuse(self, limit: int) -> None:
        self.refused = True
        self.channel.transport.write(_too_large(limit))
        self.channel.loseConnection()


class BodyLimitedHTTPFactory(HTTPFactory):  # type: ignore[misc]
    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = BodyLimitedRequest
        return protocol


class Server(DaphneServer):  # type: ignore[misc]
    """Daphne's server, its HTTP requests `BodyLimitedRequest`s."""

    @property
    def http_factory(self) -> HTTPFactory:
        return self._http_factory

    @http_factory.setter
    def http_factory(self, factory: HTTPFactory) -> None:
        # Daphne's run() builds its factory and listens with it at once: the one place
        # to put ours in its stead.
        self._http_factory = BodyLimitedHTTPFactory(factory.server)


class CommandLineInterface(DaphneCommandLine):  # type: ignore[misc]
    server_class = Server


if __name__ == "__main__":
    CommandLineInterface.entrypoint()
