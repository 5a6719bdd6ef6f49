"""Fixtures shared by the test suite: one throwaway Synapse per test session, and users on it."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Protocol

import pytest

from matrix_bot_tester import homeserver as hs
from matrix_bot_tester.homeserver import Homeserver, RegisteredUser

# Another checkout or developer may hold 8008; MBT_TEST_PORT moves the whole session.
TEST_PORT = int(os.environ.get("MBT_TEST_PORT", "8008"))
TEST_SERVER_NAME = "synapse-test.localhost"


class RegisterUser(Protocol):
    def __call__(self, localpart: str | None = None, password: str = "test") -> RegisteredUser: ...


@pytest.fixture(scope="session", autouse=True)
def login_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every command the tests run remembers its logins here, never in the real home."""
    path = tmp_path_factory.mktemp("state") / "logins.json"
    before = os.environ.get("MATRIX_BOT_TESTER_STATE")
    os.environ["MATRIX_BOT_TESTER_STATE"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MATRIX_BOT_TESTER_STATE", None)
        else:
            os.environ["MATRIX_BOT_TESTER_STATE"] = before


@pytest.fixture(scope="session")
def homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    """One Synapse for the whole session: starting one costs seconds, a user costs milliseconds."""
    directory = tmp_path_factory.mktemp("synapse")
    server = hs.start(directory, port=TEST_PORT, server_name=TEST_SERVER_NAME)
    try:
        yield server
    finally:
        hs.stop(directory)


@pytest.fixture(scope="session")
def register_user(homeserver: Homeserver) -> RegisterUser:
    """Make a user (a fresh random one by default); an existing one is logged in instead."""

    def register_user(localpart: str | None = None, password: str = "test") -> RegisteredUser:
        name = localpart or f"user-{uuid.uuid4().hex[:12]}"
        user = hs.register(homeserver.directory, name, password)
        return user if user is not None else _login(homeserver, name, password)

    return register_user


def _login(server: Homeserver, localpart: str, password: str) -> RegisteredUser:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart},
        "password": password,
    }
    request = urllib.request.Request(
        f"{server.url}/_matrix/client/v3/login",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    # No proxy: an HTTP_PROXY in the environment must not swallow loopback requests.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"logging in as {localpart!r} failed: HTTP {error.code}") from None
    return RegisteredUser(
        user_id=answer["user_id"],
        password=password,
        access_token=answer["access_token"],
        device_id=answer["device_id"],
    )
