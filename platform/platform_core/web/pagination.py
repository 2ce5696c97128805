"""DRF's page-number pagination, its `page` parameter described as it is read."""

from __future__ import annotations

from typing import Any

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """Pages count from 1; a page that is not there (0, past the end) answers 404."""

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1}
        return parameters
