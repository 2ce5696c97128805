"""Read your writes: a read waits until a projection has passed a given log position.

Every write answers with the log position of what it wrote (`X-Log-Position`). A read
that sends it back, as the `min_position` query parameter or the `X-Min-Log-Position`
header, is answered only once the read model has projected at least that far, so the
client never reads data older than its own write. If the projection does not get there
within READ_YOUR_WRITES_TIMEOUT seconds the read fails with 503 and `Retry-After`
rather than answer with stale data. A read view gets this by mixing in `ReadsYourWrites`
(the OpenAPI document then lists both parameters and the 503).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request

from platform_core.eventsourcing.eventstore import LogPosition
from platform_core.projections.checkpoints import projected_to

MIN_POSITION_PARAM = "min_position"
MIN_POSITION_HEADER = "X-Min-Log-Position"
_FIRST_PAUSE, _LONGEST_PAUSE = 0.002, 0.05


class ProjectionBehind(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "projection_behind"
    default_detail = "The read model has not caught up with your write yet; retry shortly."
    wait = 1  # seconds, sent as Retry-After


def requested_position(request: Request) -> LogPosition | None:
    """The position a read asks to see, if any: the later of the parameter's and the
    header's. 400 naming the one that is not a log position (an empty one included: a
    client that sends either means to wait)."""
    sent = {
        MIN_POSITION_PARAM: request.query_params.get(MIN_POSITION_PARAM),
        MIN_POSITION_HEADER: request.headers.get(MIN_POSITION_HEADER),
    }
    positions = [_parse(name, text) for name, text in sent.items() if text is not None]
    return max(positions, default=None)


def _parse(name: str, text: str) -> LogPosition:
    try:
        return LogPosition.parse(text)
    except ValueError:
        raise ValidationError({name: [f"{text!r} is not a log position like '1234.56'."]}) from None


def wait_until_projected(projection: str, position: LogPosition, timeout: float) -> bool:
    """Whether `projection` reached `position` within `timeout` seconds (polling)."""
    deadline = time.monotonic() + timeout
    pause = _FIRST_PAUSE
    while projected_to(projection) < position:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, _LONGEST_PAUSE)
    return True


def read_your_writes(request: Request, projection: str) -> None:
    """Block the read until `projection` shows the position the request names."""
    position = requested_position(request)
    if position is None:
        return
    if not wait_until_projected(projection, position, settings.READ_YOUR_WRITES_TIMEOUT):
        raise ProjectionBehind()


class ReadsYourWrites:
    """A read view that waits for `projection` when a GET names a log position (a write
    served by the same view, through route_by_method, never waits)."""

    projection: ClassVar[str]

    @staticmethod
    def waits_on(method: str) -> bool:
        return method.upper() in ("GET", "HEAD")

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        if self.waits_on(request.method or ""):
            read_your_writes(request, self.projection)
