"""Read-model changes pushed to websocket clients (Django Channels).

- `broadcast`: `LiveUpdate`, coalesced and sent to channel-layer groups.
- `consumer.LiveConsumer`: the base of a websocket consumer that resumes from a log position.
- `websocket_auth.WebsocketAuthMiddleware`: session or token, and the Origin check.
"""
