"""The card vault port: where the payments context finds the card token an order left
for its charge, by the opaque reference that travels instead of the token."""

from __future__ import annotations

from typing import Protocol


class CardVault(Protocol):
    def redeem(self, reference: str) -> str | None:
        """The token `reference` stands for; None once it is discarded or expired (or
        for a reference never given)."""
        ...

    def discard(self, reference: str) -> None:
        """Forget the token: its charge's outcome is recorded (a no-op when gone)."""
        ...
