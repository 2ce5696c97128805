"""Check the invariants I1 to I7 against what is stored (see config/invariants.py).
Run it once the system is quiet: an order still on its way is reported as unsettled."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.command_bus import build_gateway
from config.invariants import INVARIANTS, Report, verify
from platform_core.runtime import runtime


class Command(BaseCommand):
    help = (
        "Check I1-I7: every order settled, no double charge, stock conserved, no saga "
        "unfinished, read models equal a fresh fold, outbox published, no effect twice. "
        "Prints each violation and a count per invariant; exits 1 when anything is wrong."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json",
            dest="as_json",
            action="store_true",
            help="print the report as one JSON object (for scripts), nothing else",
        )

    def handle(self, *args: Any, as_json: bool = False, **options: Any) -> None:
        rt = runtime()
        report = verify(rt.store, rt.codec, rt.projections, gateway=build_gateway())
        if as_json:
            self.stdout.write(json.dumps(report.as_json(), indent=2, default=str))
        else:
            self._print(report)
        if report.violations:
            raise CommandError(f"{len(report.violations)} violation(s)")

    def _print(self, report: Report) -> None:
        for violation in report.violations:
            self.stdout.write(str(violation))
        for code, n in report.counts().items():
            self.stdout.write(f"{code} {INVARIANTS[code]}: {n} violation(s)")
        counts = ", ".join(f"{n} {status}" for status, n in sorted(report.orders.items()))
        self.stdout.write(f"{sum(report.orders.values())} orders ({counts or 'none'})")
        if not report.violations:
            self.stdout.write(self.style.SUCCESS("consistent"))
