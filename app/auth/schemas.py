from __future__ import annotations

from typing import Annotated

import msgspec

from app.users.schemas import UserOut

# A pragmatic shape check; deliverability is the mail server's business.
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3, max_length=254, pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$"
    ),
]
Password = Annotated[str, msgspec.Meta(max_length=128)]


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=128)]
    name: Annotated[str, msgspec.Meta(max_length=128)] = ""


class LoginIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password


class PasswordChangeIn(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Password
    new_password: Annotated[str, msgspec.Meta(min_length=8, max_length=128)]


class AuthOut(msgspec.Struct):
    user: UserOut
    access_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


class StreamTokenOut(msgspec.Struct):
    token: str
    expires_in: int
