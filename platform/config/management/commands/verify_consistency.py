"""Check the fulfillment guarantees against what is stored (see config/consistency.py).
Run it once the system is quiet: an order still on its way is reported as unsettled."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from config.command_bus import build_gateway
from config.consistency import verify
from platform_core.runtime import runtime


class Command(BaseCommand):
    help = (
        "Check every order and product: settled, confirmed or cancelled consistently, "
        "no double charge, stock conserved. Exits 1 when anything is wrong."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rt = runtime()
        report = verify(rt.store, rt.codec, gateway=build_gateway())
        for subject, why in report.violations:
            self.stdout.write(f"{subject}: {why}")
        counts = ", ".join(f"{n} {status}" for status, n in sorted(report.orders.items()))
        self.stdout.write(f"{sum(report.orders.values())} orders ({counts or 'none'})")
        if report.violations:
            raise CommandError(f"{len(report.violations)} violation(s)")
        self.stdout.write(self.style.SUCCESS("consistent"))
