"""What an operator runs and watches, given the collaborators it works on.

- `metrics`: `/metrics`; `logs`: log records with the message context, text or JSON.
- `redelivery`: where each dead-letter source's messages go back to when retried.
- `retention.prune`: old outbox and inbox rows and Idempotency-Keys.
"""
