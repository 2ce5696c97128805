"""Log records that carry the message context, as text or as one JSON object a line."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from platform_core.eventsourcing.messages import current_context


class MessageContextFilter(logging.Filter):
    """Adds correlation_id, causation_id and actor to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_context()
        record.correlation_id = context.correlation_id if context else "-"
        record.causation_id = context.causation_id if context else None
        record.actor = context.actor if context else None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", None),
            "causation_id": getattr(record, "causation_id", None),
            "actor": getattr(record, "actor", None),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
