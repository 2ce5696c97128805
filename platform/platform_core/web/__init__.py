"""The HTTP edge: DRF glue, idempotency, authentication, read-your-writes.

- `http`: correlation ids, the JSON error format, `dispatch_command`.
- `idempotency.idempotent`: `Idempotency-Key` on write endpoints.
- `token_auth.PreparedTokenAuthentication`.
- `read_your_writes`: a read waits for a projection to pass `min_position`.
- `drf.route_by_method`: one URL, reads and writes from different apps.
- `parsers.StrictJSONParser`: malformed or hostilely nested JSON is a 400, JSON in a
  charset other than UTF-8 a 415.
- `fields`: serializer fields that take their own JSON type only (no 123 for a string).
- `serializers.StrictSerializer`: an unknown or read-only key in a body is a 400.
- `pagination.PageNumberPagination`: a malformed `?page=` is a 400.
- `throttles.UserRateFromSettings`: a per-user rate limit read from a setting.
- `logins`: failed logins lock out (django-axes); the token endpoint answers 429.
"""
