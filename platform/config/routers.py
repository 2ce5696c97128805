"""Database routing of the embedded default: the fake payment gateway's log in a SQLite
file of its own (see GATEWAY_DATABASE in settings), everything else in the main one."""

from __future__ import annotations

from typing import Any

from django.conf import settings

_GATEWAY_LOG = ("payments", "gatewayattempt")


class GatewayLogRouter:
    def db_for_read(self, model: type[Any], **hints: Any) -> str | None:
        return self._gateway_if(model)

    def db_for_write(self, model: type[Any], **hints: Any) -> str | None:
        return self._gateway_if(model)

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool:
        return ((app_label, model_name) == _GATEWAY_LOG) == (db == settings.GATEWAY_DATABASE)

    def _gateway_if(self, model: type[Any]) -> str | None:
        meta = model._meta
        if (meta.app_label, meta.model_name) == _GATEWAY_LOG:
            return str(settings.GATEWAY_DATABASE)
        return None
