"""The strict serializer fields take exactly what the OpenAPI document says they take."""

import re
from decimal import Decimal
from typing import Any

import pytest
from rest_framework import serializers

from platform_core.web.fields import (
    StrictCharField,
    StrictDecimalField,
    StrictRegexField,
    plain_decimal_pattern,
)


class Input(serializers.Serializer):
    name = StrictCharField(max_length=5)
    country = StrictRegexField(r"^[A-Z]{2}\Z")
    price = StrictDecimalField(max_digits=6, decimal_places=2, positive=True)


VALID = {"name": "Ada", "country": "GB", "price": "7.50"}


def errors(**changes: Any) -> dict[str, Any]:
    serializer = Input(data={**VALID, **changes})
    serializer.is_valid()
    return dict(serializer.errors)


def test_valid_input_is_taken_and_trimmed():
    serializer = Input(data={**VALID, "name": " Ada "})

    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data == {"name": "Ada", "country": "GB", "price": Decimal("7.50")}


@pytest.mark.parametrize("name", ["", "   ", "Ada\x00", "Adaaaa", "Ada   ", 12])
def test_a_string_is_not_blank_has_no_nul_and_its_length_counts_the_spaces(name):
    assert "name" in errors(name=name)


@pytest.mark.parametrize("country", ["gb", " GB", "GB ", "GB\n"])
def test_a_pattern_is_matched_by_the_string_as_sent(country):
    assert "country" in errors(country=country)


@pytest.mark.parametrize(
    "price", ["0", "0.00", "-1", "1e2", " 7.50", "07.50", "7.505", "10000.00", ".5", 7.5, 7]
)
def test_a_price_is_a_plain_positive_decimal_string(price):
    assert "price" in errors(price=price)


@pytest.mark.parametrize("price", ["0.01", "0.1", "1", "9999.99"])
def test_plain_prices_from_a_cent_are_taken(price):
    assert errors(price=price) == {}


@pytest.mark.parametrize(
    ("text", "matches"),
    [("0", True), ("0.5", True), ("12.05", True), ("012", False), ("1.234", False)],
)
def test_a_non_negative_pattern_takes_zero(text, matches):
    assert bool(re.fullmatch(plain_decimal_pattern(3, 2, positive=False), text)) is matches
