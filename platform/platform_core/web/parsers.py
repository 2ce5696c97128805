"""Request body parsers. Imported by DRF's settings while `rest_framework.views` loads, so
this module imports nothing of DRF's views."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, with nesting too deep for Python's decoder a 400 like any other
    malformed body (DRF lets the RecursionError through as a server error)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
