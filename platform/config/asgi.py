"""The ASGI application: HTTP through Django, websockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Set Django up before importing anything that touches models (the consumers do).
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # type: ignore[import-untyped]  # noqa: E402
from django.urls import path  # noqa: E402

from platform_core.live.websocket_auth import WebsocketAuthMiddleware  # noqa: E402
from projections.consumers import OrderDetailConsumer, OrderListConsumer  # noqa: E402

websocket_routes = [
    path("ws/orders/", OrderListConsumer.as_asgi()),
    path("ws/orders/<uuid:order_id>/", OrderDetailConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": WebsocketAuthMiddleware(URLRouter(websocket_routes)),
    }
)
