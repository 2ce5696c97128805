"""DRF helpers for a CQRS layout, where reads and writes of one URL live in different apps."""

from __future__ import annotations

from typing import Any

from rest_framework.views import APIView


def route_by_method(name: str, *views: type[APIView]) -> type[APIView]:
    """One view class for a URL whose methods are served by different view classes.

    Each method keeps its own view's permissions and throttles, so a public GET and a
    staff-only or rate-limited POST can share a path. The merged class is a real
    APIView, so the OpenAPI generator sees every method with its own serializers.
    """
    owners: dict[str, type[APIView]] = {}
    for view in views:
        for method in view.http_method_names:
            if method != "options" and hasattr(view, method):
                if method in owners:
                    raise ValueError(f"{method.upper()} is served by two views")
                owners[method] = view

    def owner(self: APIView) -> type[APIView]:
        return owners.get((self.request.method or "").lower(), views[0])

    def get_permissions(self: APIView) -> list[Any]:
        return [permission() for permission in owner(self).permission_classes]

    def get_throttles(self: APIView) -> list[Any]:
        return [throttle() for throttle in owner(self).throttle_classes]

    attributes: dict[str, Any] = {
        "get_permissions": get_permissions,
        "get_throttles": get_throttles,
        "__doc__": "\n".join(view.__doc__ or "" for view in views),
        "__module__": views[0].__module__,
    }
    return type(name, views, attributes)
