"""Request body parsers. Imported by DRF's settings while `rest_framework.views` loads, so
this module imports nothing of DRF's views."""

from __future__ import annotations

from typing import Any

from django.utils.http import parse_header_parameters
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.parsers import JSONParser

JSON_CHARSETS = frozenset({"utf-8", "utf8"})


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, refusing what it would guess at or crash on.

    JSON travels in UTF-8 (RFC 8259, section 8.1): a body declared in another charset,
    or in one nobody knows, is a 415 rather than decoded as declared (Django's choice) or
    as UTF-8 (DRF's, for an unknown one). Nesting too deep for Python's decoder is a 400
    like any other malformed body (DRF lets the RecursionError through as a server error).
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        _, parameters = parse_header_parameters(media_type or "")
        charset = parameters.get("charset")
        if charset is not None and charset.strip().lower() not in JSON_CHARSETS:
            raise UnsupportedMediaType(
                media_type or "", detail=f"JSON must be sent in UTF-8, not {charset!r}."
            )
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
