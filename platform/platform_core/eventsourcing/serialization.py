"""Turning event objects into stored JSON and back, upcasting old schema versions.

Event classes are frozen dataclasses that name themselves with two class variables:
`event_type` (the stored name, stable forever) and `schema_version`. Decimal, UUID and
datetime fields round-trip exactly because decoding is driven by the field types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownEventType(LookupError):
    """No event class is registered under a stored event type."""


@dataclass(frozen=True, slots=True)
class _Registration:
    cls: type[Any]
    schema_version: int
    decoder: msgspec.json.Decoder[Any]


class EventCodec:
    """The registry of event classes, their stored names and their upcasters."""

    def __init__(self, event_classes: Iterable[type[Any]] = ()) -> None:
        self._by_name: dict[str, _Registration] = {}
        self._names: dict[type[Any], str] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._encoder = msgspec.json.Encoder(decimal_format="string")
        for cls in event_classes:
            self.register(cls)

    def register(self, cls: type[Any]) -> None:
        name: str = cls.event_type
        if name in self._by_name and self._by_name[name].cls is not cls:
            raise ValueError(f"event type {name!r} is already registered")
        version = int(getattr(cls, "schema_version", 1))
        self._by_name[name] = _Registration(cls, version, msgspec.json.Decoder(cls))
        self._names[cls] = name

    def register_upcaster(self, event_type: str, from_version: int, upcaster: Upcaster) -> None:
        """`upcaster` turns the JSON of `from_version` into that of `from_version + 1`."""
        self._upcasters[(event_type, from_version)] = upcaster

    def name_of(self, cls: type[Any]) -> str:
        return self._names[cls]

    def knows(self, event_type: str) -> bool:
        return event_type in self._by_name

    def encode(self, event: Any) -> tuple[str, int, bytes]:
        """(event type, schema version, JSON) of an event object."""
        registration = self._by_name[self._names[type(event)]]
        return self._names[type(event)], registration.schema_version, self._encoder.encode(event)

    def upcast(self, event_type: str, schema_version: int, data: bytes) -> tuple[int, bytes]:
        """Stored JSON as the current schema has it: (schema version, JSON). What the
        upcasters drop (a field no longer kept) is never shown or sent again. An unknown
        type is answered as stored."""
        registration = self._by_name.get(event_type)
        if registration is None or schema_version == registration.schema_version:
            return schema_version, data
        event = self.decode(event_type, schema_version, data)
        return registration.schema_version, self._encoder.encode(event)

    def decode(self, event_type: str, schema_version: int, data: bytes) -> Any:
        """The event object for stored JSON, upcast to the current schema first."""
        registration = self._by_name.get(event_type)
        if registration is None:
            raise UnknownEventType(event_type)
        if schema_version == registration.schema_version:
            return registration.decoder.decode(data)
        document = msgspec.json.decode(data)
        for version in range(schema_version, registration.schema_version):
            upcaster = self._upcasters.get((event_type, version))
            if upcaster is None:
                raise UnknownEventType(f"{event_type} has no upcaster from version {version}")
            document = upcaster(document)
        return msgspec.convert(document, registration.cls)


_json_encoder = msgspec.json.Encoder(decimal_format="string")


def to_json(value: Any) -> bytes:
    """JSON of dataclasses, structs, Decimal (as a string), UUID and datetimes."""
    return _json_encoder.encode(value)


def from_json(data: bytes | str, cls: type[Any]) -> Any:
    """Inverse of `to_json` for a value of type `cls`."""
    return msgspec.json.decode(data, type=cls)


def to_primitives(value: Any) -> Any:
    """A dataclass as dicts, lists, strings and numbers (UUID, Decimal, datetime as text):
    what a Celery task's keyword arguments can carry."""
    return msgspec.to_builtins(value)


def from_primitives(value: Any, cls: type[Any]) -> Any:
    """Inverse of `to_primitives` for a value of type `cls`; ValueError if it does not fit."""
    try:
        return msgspec.convert(value, cls)
    except msgspec.ValidationError as error:
        raise ValueError(str(error)) from error
