"""Operator views, staff only like all of the admin: the event store (read-only), the outbox
backlog, dead letters with retry and purge, sagas with their repairs, projections, and the
long-running loops' heartbeats.

The admin is an entry point, like the management commands: its actions find the running
collaborators (`platform_core.runtime`) and pass them to the library code they call.
"""

from platform_core.admin import dead_letters, log, loops, projections, sagas

__all__ = ["dead_letters", "log", "loops", "projections", "sagas"]
