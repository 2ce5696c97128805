"""Payments context: the Payment aggregate (one charge per order), the gateway port and
the built-in fake gateway."""
