import io
import json
import logging

from platform_core.eventsourcing.messages import MessageContext, message_context
from platform_core.operations.logs import JsonFormatter, MessageContextFilter


def _logger() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MessageContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.logs")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_every_log_line_carries_the_correlation_and_causation_of_its_message():
    logger, stream = _logger()
    with message_context(MessageContext(correlation_id="req-7", causation_id="cmd-1", actor="u:3")):
        logger.info("placing order %s", "o-1")
    line = json.loads(stream.getvalue())
    assert line["message"] == "placing order o-1"
    assert (line["correlation_id"], line["causation_id"], line["actor"]) == (
        "req-7",
        "cmd-1",
        "u:3",
    )


def test_a_log_line_outside_any_message_says_so():
    logger, stream = _logger()
    logger.warning("starting up")
    assert json.loads(stream.getvalue())["correlation_id"] == "-"


def test_a_json_line_keeps_the_extra_fields_and_the_exception():
    logger, stream = _logger()
    try:
        raise ValueError("no such sku")
    except ValueError:
        logger.exception("restock failed", extra={"sku": "MUG-1", "attempt": 3})
    line = json.loads(stream.getvalue())
    assert (line["message"], line["sku"], line["attempt"]) == ("restock failed", "MUG-1", 3)
    assert (line["level"], line["logger"]) == ("ERROR", "tests.logs")
    assert "ValueError: no such sku" in line["exception"]
    assert line["time"].endswith("+00:00")
