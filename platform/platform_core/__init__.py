"""The reusable platform: event sourcing, messaging, sagas and projections for Django.

Packages, each building only on those listed after it (`lint-imports` holds the order):
`operations` (what operators run), `runtime` (the wired collaborators), `commands`,
`sagas`, `web`, `live`, then `projections`, `messaging`, `storage`, and at the bottom
`eventsourcing` (plain Python: the domain layer imports only this) and `models`.
"""
