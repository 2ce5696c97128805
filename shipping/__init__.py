"""Shipping context: the Shipment aggregate, the carrier port and the built-in fake carrier."""
