"""Log records that carry the message context, as text or as one JSON object a line."""

from __future__ import annotations

import logging

import pythonjsonlogger.json

from platform_core.eventsourcing.messages import current_context


class MessageContextFilter(logging.Filter):
    """Adds correlation_id, causation_id and actor to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_context()
        record.correlation_id = context.correlation_id if context else "-"
        record.causation_id = context.causation_id if context else None
        record.actor = context.actor if context else None
        return True


class JsonFormatter(pythonjsonlogger.json.JsonFormatter):
    """One JSON object a line: time (UTC), level, logger, message, the message context,
    every field given with `extra=`, and the exception's traceback when there is one."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s %(correlation_id)s %(causation_id)s %(actor)s",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
            timestamp="time",
            json_default=str,
        )
