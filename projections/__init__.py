"""The read side: read models fed from the event store, their queries and GET endpoints."""
