"""Request body serializers that refuse what they do not declare."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A serializer for request bodies that refuses keys it does not declare.

    DRF ignores them, so a misspelt optional field or a read-only one (`id`, `status`,
    the token endpoint's `token`) would be dropped without a word; here each is a 400
    naming it, beside any other error of the body.
    """

    default_error_messages = {"unknown_field": "Unknown field."}

    def to_internal_value(self, data: Any) -> Any:
        writable = {field.field_name for field in self._writable_fields}
        unknown = sorted(set(data) - writable) if isinstance(data, Mapping) else []
        errors: dict[str, Any] = {}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as invalid:
            if not isinstance(invalid.detail, dict):
                raise
            errors = dict(invalid.detail)
        for key in unknown:
            errors[key] = [self.error_messages["unknown_field"]]
        if errors:
            raise serializers.ValidationError(errors)
        return value
