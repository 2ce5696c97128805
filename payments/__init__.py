"""Payments context: the Payment aggregate and gateway port arrive with the saga (issue 4)."""
