"""Demo data for `make run`: products with stock, a staff user and a customer.

Running it again changes nothing that exists already."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from inventory.commands import RegisterProduct
from platform_core.eventsourcing.errors import Conflict
from platform_core.runtime import runtime

PRODUCTS = (
    ("TEA-EARLGREY", "Earl Grey tea, 250 g", "6.50", 120),
    ("MUG-STONE", "Stoneware mug", "12.00", 40),
    ("KETTLE-1L", "Stovetop kettle, 1 l", "34.90", 15),
    ("COFFEE-BEANS", "Coffee beans, 1 kg", "18.75", 60),
    ("FILTER-PAPER", "Paper filters (100)", "3.20", 300),
)
USERS = (
    ("staff", "staff-demo-pass", True),
    ("customer", "customer-demo-pass", False),
)


class Command(BaseCommand):
    help = "Create demo products and users (idempotent) and print the credentials."

    def handle(self, *args: Any, **options: Any) -> None:
        bus = runtime().bus
        for sku, name, price, stock in PRODUCTS:
            command = RegisterProduct(sku=sku, name=name, price=Decimal(price), initial_stock=stock)
            with contextlib.suppress(Conflict):  # registered by an earlier run
                bus.handle(command)
        runtime().projections.catch_up()
        User = get_user_model()
        self.stdout.write("Demo users (username / password / API token):")
        for username, password, is_staff in USERS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"is_staff": is_staff, "is_superuser": is_staff}
            )
            if created:
                user.set_password(password)
                user.save()
            token, _ = Token.objects.get_or_create(user=user)
            role = "staff" if is_staff else "customer"
            self.stdout.write(f"  {role:9} {username} / {password} / {token.key}")
