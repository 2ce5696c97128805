"""DRF's token authentication, the token and its user read in one prepared statement.

Its own module: DRF's views read the authentication classes from the settings when they
are imported, so this must not import them.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connection, models
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from platform_core.storage import pg
from platform_core.storage.backends import backend


class PreparedTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, the token and its user read in one prepared statement on
    PostgreSQL: on every authenticated API call, the ORM's query building cost more than
    the query. The same answers as DRF's (`Invalid token.`, `User inactive or deleted.`);
    a token model of one's own, or a user model with a field the ORM reads in its own
    way (`pg.loads_as_the_orm`), takes DRF's own path."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        user_model = get_user_model()
        if (
            not backend().prepared
            or self.get_model() is not Token
            or not pg.loads_as_the_orm(_fields(user_model))
        ):
            return super().authenticate_credentials(key)
        found = pg.fetchall(_token_and_user(user_model), [key], binary=True)
        if not found:
            raise AuthenticationFailed(_("Invalid token."))
        row = found[0]
        token = Token.from_db(DEFAULT_DB_ALIAS, _TOKEN_FIELDS, row[: len(_TOKEN_FIELDS)])
        user = user_model.from_db(
            DEFAULT_DB_ALIAS,
            [field.attname for field in _fields(user_model)],
            row[len(_TOKEN_FIELDS) :],
        )
        if not user.is_active:
            raise AuthenticationFailed(_("User inactive or deleted."))
        token.user = user
        return user, token


_TOKEN_FIELDS = ["key", "user_id", "created"]


def _fields(model: type[models.Model]) -> list[Any]:
    return list(model._meta.concrete_fields)


@functools.cache
def _token_and_user(user_model: type[models.Model]) -> str:
    quote = connection.ops.quote_name
    user_columns = ", ".join(f"u.{quote(str(field.column))}" for field in _fields(user_model))
    token_columns = ", ".join(f"t.{quote(name)}" for name in _TOKEN_FIELDS)
    return (
        f"SELECT {token_columns}, {user_columns} FROM {quote(Token._meta.db_table)} t"
        f" JOIN {quote(user_model._meta.db_table)} u"
        f" ON u.{quote(str(user_model._meta.pk.column))} = t.user_id WHERE t.key = %s"
    )
