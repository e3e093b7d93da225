"""DRF's token authentication with its query compiled once.

Every API call with a token looked it up with `Token.objects.select_related("user").get(...)`,
and compiling that queryset cost more than running it; here it is one prepared query
(core/sql.py), with the same answers and errors as DRF's.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from core.internals.django_state import mark_saved
from core.sql import CompiledValues, concrete_attnames, instances


def _user_by_token(key: Any) -> Any:
    User = get_user_model()
    return User.objects.filter(auth_token__key=key).values(*concrete_attnames(User), "auth_token__created")


_user_by_token_query = CompiledValues(_user_by_token)


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        rows = _user_by_token_query.rows(key)
        if not rows:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        row = rows[0]
        created = row.pop("auth_token__created")
        [user] = instances(get_user_model(), [row])
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        token = Token(key=key, user=user, created=created)
        mark_saved(token, DEFAULT_DB_ALIAS)
        return user, token
