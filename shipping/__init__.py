"""Shipping context: the Shipment aggregate and carrier port arrive with the saga (issue 4)."""
