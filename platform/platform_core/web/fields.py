"""Serializer fields that take a JSON value of their own type only.

DRF's fields coerce: `CharField` turns 123 into "123" and `IntegerField` takes "2" and
2.0. An API that accepts what its schema does not say hides clients' bugs, so request
bodies use these: anything but the declared JSON type is a 400 naming the field. Each
accepts exactly what its OpenAPI schema says (platform_core.web.openapi maps them).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from rest_framework import serializers

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


class _OnlyJsonType:
    json_types: ClassVar[tuple[type, ...]]
    default_error_messages: ClassVar[dict[str, StrOrPromise]] = {
        "wrong_type": "Wrong type: {expected}."
    }
    expected: ClassVar[str]

    def to_internal_value(self, data: Any) -> Any:
        if (isinstance(data, bool) and bool not in self.json_types) or not isinstance(
            data, self.json_types
        ):
            self.fail("wrong_type", expected=self.expected)  # type: ignore[attr-defined]
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictCharField(_OnlyJsonType, serializers.CharField):
    """A string, its `max_length` counted before surrounding spaces are trimmed (as the
    schema's `maxLength` is); not blank unless `allow_blank`."""

    json_types = (str,)
    expected = "a string"

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class StrictRegexField(_OnlyJsonType, serializers.RegexField):
    """A string matching `regex` as sent: nothing is trimmed first."""

    json_types = (str,)
    expected = "a string"

    def __init__(self, regex: str, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(regex, **kwargs)


class StrictIntegerField(_OnlyJsonType, serializers.IntegerField):
    json_types = (int,)
    expected = "an integer"


class StrictDecimalField(_OnlyJsonType, serializers.DecimalField):
    """A decimal as a JSON string of plain digits ("12.50"): no sign, exponent, spaces or
    leading zeros, at most `decimal_places` after the point; above zero if `positive`.
    Its `pattern` is the whole rule, so the schema can state it."""

    json_types = (str,)
    expected = 'a string of digits like "12.50"'
    default_error_messages: ClassVar[dict[str, StrOrPromise]] = {
        "not_plain": 'A plain decimal like "12.50" is required (at most {places} places).'
    }

    def __init__(
        self, *, max_digits: int, decimal_places: int, positive: bool = False, **kwargs: Any
    ) -> None:
        self.pattern = plain_decimal_pattern(max_digits - decimal_places, decimal_places, positive)
        if positive:
            kwargs.setdefault("min_value", Decimal(1).scaleb(-decimal_places))
        super().__init__(max_digits=max_digits, decimal_places=decimal_places, **kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        # DRF's own parsing would take "1e2", " 7" and "-0" too.
        if isinstance(data, str) and not re.fullmatch(self.pattern, data):
            self.fail("not_plain", places=self.decimal_places)
        return super().to_internal_value(data)  # type: ignore[no-any-return]


def plain_decimal_pattern(whole_digits: int, decimal_places: int, positive: bool) -> str:
    """A regular expression, the same in ECMA and Python (no look-around), for decimals
    written plainly; `positive` leaves out every spelling of zero."""
    fraction = f"(?:\\.[0-9]{{1,{decimal_places}}})?" if decimal_places else ""
    above_zero = f"[1-9][0-9]{{0,{whole_digits - 1}}}{fraction}"
    if not positive:
        return f"^(?:0{fraction}|{above_zero})$"
    if not decimal_places:
        return f"^{above_zero}$"
    return f"^(?:{above_zero}|0\\.(?:{_not_all_zeros(decimal_places)}))$"


def _not_all_zeros(places: int) -> str:
    """1 to `places` digits, not all zero: "[1-9][0-9]{0,1}|0[1-9]" for two places."""
    options = []
    for zeros in range(places):
        rest = places - zeros - 1
        options.append("0" * zeros + "[1-9]" + (f"[0-9]{{0,{rest}}}" if rest else ""))
    return "|".join(options)


class QueryIntegerField(serializers.IntegerField):
    """An integer query parameter: ASCII digits only (DRF's takes "1.0" and " 1")."""

    default_error_messages = {"invalid": "A whole number of ASCII digits is required."}

    def to_internal_value(self, data: Any) -> int:
        if not (isinstance(data, str) and data.isascii() and data.isdigit()):
            self.fail("invalid")
        return int(super().to_internal_value(data))
