"""Who we are: the account file (homeserver, user, secret, who to test).

Compatible with the original tool's files (``user``, ``password``,
``homeserver_url``, ``user_to_test``), plus ``access_token``/``device_id``
and ``${ENV_VAR}`` expansion in any value so secrets can stay out of files.
Secrets are held as ``SecretStr`` so that no repr, log or error shows them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from matrix_bot_tester import yamlfile
from matrix_bot_tester.errors import InputError
from matrix_bot_tester.language import ScriptFile

_MXID = re.compile(r"^@[^:\s]+:[^\s]+$")


def _user_id(value: str) -> str:
    if not _MXID.match(value):
        raise PydanticCustomError(
            "bad_user_id",
            # No value in the text: after ${ENV} expansion it could be anything, even a secret.
            "not a full Matrix user ID",
            {"hint": "write it as '@name:server.example'"},
        )
    return value


class _AccountModel(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    user: str
    homeserver_url: str
    password: SecretStr | None = None
    access_token: SecretStr | None = None
    device_id: str | None = None
    user_to_test: str | None = None

    @field_validator("user", "user_to_test")
    @classmethod
    def _mxid(cls, value: str | None) -> str | None:
        return None if value is None else _user_id(value)

    @field_validator("homeserver_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PydanticCustomError(
                "bad_url",
                "must be an http:// or https:// URL",
                {"hint": "for example 'http://localhost:8008'"},
            )
        if "@" in parts.netloc:
            # It would be printed in every message that names the server.
            raise PydanticCustomError(
                "url_credentials",
                "must not hold a user name or password (user:secret@)",
                {"hint": "give the plain URL; put the password in 'password' or ${AN_ENV_VAR}"},
            )
        if parts.query or parts.fragment or value.endswith(("?", "#")):
            # Not echoed: a query may hold a token (?access_token=...).
            raise PydanticCustomError(
                "url_query",
                "must not have a query (?...) or a fragment (#...)",
                {"hint": "give the plain base URL, for example 'https://matrix.example.org'"},
            )
        try:
            port = parts.port  # ValueError for a port that is not one
        except ValueError:
            port = -1
        if not parts.hostname or (port is not None and not 1 <= port <= 65535):
            raise PydanticCustomError(
                "bad_url",
                "needs a host name and, if any, a port number from 1 to 65535",
                {"hint": "for example 'http://localhost:8008'"},
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _has_secret(self) -> _AccountModel:
        if self.password is None and self.access_token is None:
            raise PydanticCustomError(
                "no_secret",
                "the account needs 'password' or 'access_token'",
                {"hint": "use '${MY_BOT_PASSWORD}' to read it from the environment"},
            )
        if self.password is not None and self.access_token is not None:
            raise PydanticCustomError(
                "two_secrets",
                "the account gives both 'password' and 'access_token'; give one",
                {"hint": "remove the one you do not mean to use"},
            )
        for key in ("password", "access_token"):
            secret = getattr(self, key)
            if secret is not None and not secret.get_secret_value().strip():
                # Usually a CI secret that is not set: the variable exists but is empty.
                raise PydanticCustomError(
                    "empty_secret",
                    "'{key}' is empty",
                    {"key": key, "hint": "if it comes from ${VARIABLE}, that variable is empty"},
                )
        return self


ACCOUNT_KEYS = tuple(_AccountModel.model_fields)
_SCRIPT_HINT = (
    "this looks like a script, not an account file: an account file has user,"
    " password or access_token, homeserver_url"
)
_ACCOUNT_FILE = yamlfile.FileKind(
    reference="the README's 'The account file' section",
    foreign_keys={key: _SCRIPT_HINT for key in ScriptFile.model_fields},
)


@dataclass(frozen=True)
class Account:
    path: str
    user: str
    homeserver_url: str
    password: SecretStr | None
    access_token: SecretStr | None
    device_id: str | None
    user_to_test: str | None

    @property
    def server_name(self) -> str:
        return self.user.split(":", 1)[1]


def from_document(doc: yamlfile.LocatedDocument) -> Account:
    if not isinstance(doc.data, dict):
        raise doc.error(
            "an account file must be a mapping with 'user', 'homeserver_url' and a secret",
            hint=f"see {_ACCOUNT_FILE.reference}",
        )
    data = yamlfile.expand_env(doc, doc.data)
    try:
        model = _AccountModel.model_validate(data)
    except ValidationError as exc:
        raise yamlfile.validation_error(doc, exc, _ACCOUNT_FILE) from None
    return Account(
        path=doc.path,
        user=model.user,
        homeserver_url=model.homeserver_url,
        password=model.password,
        access_token=model.access_token,
        device_id=model.device_id,
        user_to_test=model.user_to_test,
    )


def load_account(path: str | os.PathLike[str]) -> Account:
    """Load and validate an account file; raises InputError with file:line:col."""
    return from_document(yamlfile.load(path, "account file"))


def parse_account(text: str, path: str = "<string>") -> Account:
    return from_document(yamlfile.parse(text, path))


__all__ = ["Account", "InputError", "load_account", "parse_account"]
