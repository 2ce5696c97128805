"""Page-number pagination that refuses a malformed page number, and describes its `page`
parameter as it reads it."""

from __future__ import annotations

from typing import Any

from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

_MAX_DIGITS = 9


class PageNumberPagination(pagination.PageNumberPagination):
    """DRF's page numbers, with `?page=abc`, `?page=0` and `?page=` a 400 naming the
    parameter: DRF answers those with 404 or the first page, as if the client had asked
    for something that exists. A page past the end stays a 404."""

    def get_page_number(self, request: Request, paginator: Any) -> Any:
        text = request.query_params.get(self.page_query_param)
        if text is None:
            return 1
        if text in self.last_page_strings:
            return paginator.num_pages
        if text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS and int(text) >= 1:
            return int(text)
        raise ValidationError(
            {self.page_query_param: ["A page number is a whole number from 1, or 'last'."]}
        )

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"] = {
                    **parameter["schema"],
                    "minimum": 1,
                    "maximum": 10**_MAX_DIGITS - 1,
                }
        return parameters
