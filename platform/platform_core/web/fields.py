"""Serializer fields that take a JSON value of their own type only.

DRF's fields coerce: `CharField` turns 123 into "123" and `IntegerField` takes "2" and
2.0. An API that accepts what its schema does not say hides clients' bugs, so request
bodies use these: anything but the declared JSON type is a 400 naming the field.
"""

from __future__ import annotations

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
    json_types = (str,)
    expected = "a string"


class StrictRegexField(_OnlyJsonType, serializers.RegexField):
    json_types = (str,)
    expected = "a string"


class StrictIntegerField(_OnlyJsonType, serializers.IntegerField):
    json_types = (int,)
    expected = "an integer"


class StrictDecimalField(_OnlyJsonType, serializers.DecimalField):
    """A decimal as a JSON string ("7.50"), the way responses show it: a JSON number
    would go through a binary float on many clients."""

    json_types = (str,)
    expected = 'a decimal in a string, like "7.50"'


class QueryIntegerField(serializers.IntegerField):
    """An integer query parameter: ASCII digits only (DRF's takes "1.0" and " 1")."""

    default_error_messages = {"invalid": "A whole number of ASCII digits is required."}

    def to_internal_value(self, data: Any) -> int:
        if not (isinstance(data, str) and data.isascii() and data.isdigit()):
            self.fail("invalid")
        return int(super().to_internal_value(data))
