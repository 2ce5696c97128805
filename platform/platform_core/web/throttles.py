"""Request throttles whose rates come from the Django settings, read on each request."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from rest_framework.throttling import UserRateThrottle


class UserRateFromSettings(UserRateThrottle):
    """DRF's per-user throttle (per client address for anonymous requests) with its rate
    ("60/minute") in the setting named by `rate_setting`, read on each request, so tests
    and deployments change it as any setting; None turns it off. DRF's own rates are
    read once, when the throttle class is defined. Counts live in the default cache:
    Redis when REDIS_URL is set, so every web process shares them."""

    rate_setting: ClassVar[str]

    def get_rate(self) -> str | None:
        rate: str | None = getattr(settings, self.rate_setting)
        return rate
