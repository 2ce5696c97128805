"""The context a message is handled in: correlation, causation and actor.

It travels in a context variable so that log lines and stored events pick it up
without every function passing it along.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageContext:
    """Who asked for the work in progress, and in which causal chain."""

    correlation_id: str
    causation_id: str | None = None
    actor: str | None = None
    tenant: str | None = None

    def caused_by(self, message_id: str) -> MessageContext:
        """The context of a message caused by the message `message_id`."""
        return replace(self, causation_id=message_id)


_current: ContextVar[MessageContext | None] = ContextVar("message_context", default=None)


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def clean_correlation_id(value: str | None) -> str | None:
    """An incoming correlation id if it is safe to log and store, else None."""
    if value and _SAFE_ID.match(value):
        return value
    return None


def current_context() -> MessageContext | None:
    return _current.get()


def ensure_context() -> MessageContext:
    """The current context, or a fresh one starting a new correlation."""
    return _current.get() or MessageContext(correlation_id=new_correlation_id())


@contextlib.contextmanager
def message_context(context: MessageContext) -> Iterator[MessageContext]:
    """Run a block with `context` as the current message context."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
