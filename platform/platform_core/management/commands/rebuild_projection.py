"""Rebuild one projection from the start of the log, then swap it in atomically."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from platform_core.projections.checkpoints import ProjectionFailed
from platform_core.projections.rebuild import ProjectionRebuild
from platform_core.runtime import runtime


class Command(BaseCommand):
    help = (
        "Replay the whole log into a shadow copy of a projection's tables (reads keep "
        "answering from the live tables), then swap it in atomically."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="the projection, e.g. order_summary")
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, name: str, batch_size: int, no_progress: bool, **_: Any) -> None:
        runner = runtime().projections
        if name not in runner.names:
            raise CommandError(f"no projection {name!r}; known: {', '.join(runner.names)}")
        with tqdm(
            total=ProjectionRebuild.estimated_events(),
            unit=" events",
            unit_scale=True,
            smoothing=0.1,
            disable=no_progress,
            desc=name,
        ) as bar:
            rebuild = ProjectionRebuild(runner, name, batch_size=batch_size, progress=bar.update)
            try:
                report = rebuild.run()
            except ProjectionFailed as failure:
                raise CommandError(
                    f"{failure} ({failure.__cause__}); the live projection is untouched"
                ) from failure
        rate = report.events / report.seconds if report.seconds else 0.0
        self.stdout.write(
            f"rebuilt {name}: {report.events} events in {report.seconds:.1f} s "
            f"({rate:,.0f} events/s), now at {report.position}"
        )
