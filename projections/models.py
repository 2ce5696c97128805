"""Read-model tables. Only projectors write them; everything else only reads."""

from __future__ import annotations

from django.db import models


class OrderSummary(models.Model):
    id = models.UUIDField(primary_key=True)
    customer_id = models.BigIntegerField(db_index=True)
    status = models.CharField(max_length=20, db_index=True)
    items = models.JSONField(default=list)
    total = models.DecimalField(max_digits=14, decimal_places=2)
    payment_status = models.CharField(max_length=20, blank=True)
    shipment_id = models.CharField(max_length=64, blank=True)
    shipment_status = models.CharField(max_length=20, blank=True)
    tracking_number = models.CharField(max_length=64, blank=True)
    cancellation_reason = models.TextField(blank=True)
    history = models.JSONField(default=list)
    placed_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # The log position of the last event applied to the row (see LogPosition).
    last_transaction_id = models.BigIntegerField(default=0)
    last_position = models.BigIntegerField(default=0)

    class Meta:
        db_table = "read_order_summary"
        ordering = ("-placed_at", "id")
        indexes = [
            models.Index(fields=["customer_id", "-placed_at"], name="order_customer_idx"),
            models.Index(
                fields=["last_transaction_id", "last_position"], name="order_position_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"order {self.id} ({self.status})"


class ProductStock(models.Model):
    sku = models.CharField(primary_key=True, max_length=64)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    on_hand = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    updated_at = models.DateTimeField()
    last_transaction_id = models.BigIntegerField(default=0)
    last_position = models.BigIntegerField(default=0)

    class Meta:
        db_table = "read_product_stock"
        ordering = ("sku",)

    def __str__(self) -> str:
        return self.sku

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved
