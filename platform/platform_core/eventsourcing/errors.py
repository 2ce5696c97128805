"""Domain error categories; the HTTP layer maps each category to a status code."""


class DomainError(Exception):
    """Base of every error a command can raise on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidCommand(DomainError):
    """The command is malformed or breaks a rule that no retry can fix (HTTP 400)."""


class NotFound(DomainError):
    """The command names something that does not exist (HTTP 404)."""


class Conflict(DomainError):
    """The command is valid but the current state forbids it (HTTP 409)."""
