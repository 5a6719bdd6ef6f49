"""The throwaway Synapse: start, status, register, stop, and the errors that explain failures.

Real Synapse processes throughout. Most tests share the session's server; the
lifecycle test starts one of its own on a free port, and the failure tests
fail before (or shortly after) a server would be up.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import matrix_bot_tester
from matrix_bot_tester import homeserver as hs
from matrix_bot_tester.errors import InfrastructureError, InputError
from matrix_bot_tester.homeserver import Homeserver, RegisteredUser

RegisterUser = Callable[..., RegisteredUser]  # the conftest fixture

pytestmark = pytest.mark.integration

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _call(
    method: str, url: str, body: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(), method=method
    )
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _HTTP.open(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _whoami(server: Homeserver, token: str) -> str:
    code, body = _call("GET", f"{server.url}/_matrix/client/v3/account/whoami", token=token)
    assert code == 200, body
    return str(body["user_id"])


def _password_login(server: Homeserver, localpart: str, password: str) -> tuple[int, str]:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart},
        "password": password,
    }
    code, answer = _call("POST", f"{server.url}/_matrix/client/v3/login", body)
    return code, str(answer.get("user_id") or answer.get("errcode"))


def _synapse_pids(directory: Path) -> list[int]:
    """Synapse processes whose config lives in ``directory`` (Linux /proc)."""
    config = str(directory.absolute() / hs.CONFIG_FILE).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            except OSError:
                continue
            if config in cmdline and state != "Z":
                pids.append(int(entry.name))
    return pids


def test_session_server_is_running_and_reachable_as_localhost(homeserver: Homeserver) -> None:
    assert homeserver.url == f"http://localhost:{homeserver.port}"
    assert homeserver.server_name == "synapse-test.localhost"
    assert hs.status(homeserver.directory) == homeserver
    # Account files say "localhost", which may resolve to ::1 before 127.0.0.1.
    code, body = _call("GET", f"{homeserver.url}/_matrix/client/versions")
    assert code == 200 and body["versions"]
    config = json.loads((homeserver.directory / hs.CONFIG_FILE).read_text())
    assert config["rc_login"]["account"]["burst_count"] >= 1000


def test_registered_user_has_a_working_token_and_can_log_in(homeserver: Homeserver) -> None:
    user = hs.register(homeserver.directory, "carol", "s3cret")

    assert user is not None
    assert user.user_id == "@carol:synapse-test.localhost"
    assert _whoami(homeserver, user.access_token) == user.user_id
    assert _password_login(homeserver, "carol", "s3cret") == (200, user.user_id)
    assert _password_login(homeserver, "carol", "wrong") == (403, "M_FORBIDDEN")


def test_register_accepts_a_full_user_id(homeserver: Homeserver) -> None:
    user = hs.register(homeserver.directory, "@dave:synapse-test.localhost", "pw")

    assert user is not None and user.user_id == "@dave:synapse-test.localhost"


def test_register_refuses_a_user_id_of_another_server(homeserver: Homeserver) -> None:
    with pytest.raises(InputError, match=r"example\.org"):
        hs.register(homeserver.directory, "@dave:example.org", "pw")


def test_register_existing_user(homeserver: Homeserver, register_user: RegisterUser) -> None:
    first = register_user("erin", "pw")

    assert hs.register(homeserver.directory, "erin", "other", exist_ok=True) is None
    with pytest.raises(InfrastructureError, match=r"@erin:synapse-test\.localhost already exists"):
        hs.register(homeserver.directory, "erin", "pw", exist_ok=False)
    # The fixture logs an existing user in, so it still hands back a usable token.
    again = register_user("erin", "pw")
    assert again.user_id == first.user_id
    assert again.device_id != first.device_id
    assert _whoami(homeserver, again.access_token) == first.user_id


def test_register_user_fixture_makes_distinct_users(register_user: RegisterUser) -> None:
    assert register_user().user_id != register_user().user_id


def test_registered_user_repr_hides_password_and_token(register_user: RegisterUser) -> None:
    user = register_user(password="hunter2-secret")

    text = repr(user)
    assert user.user_id in text
    assert "hunter2-secret" not in text
    assert user.access_token not in text


def test_start_status_register_stop_lifecycle(tmp_path: Path) -> None:
    directory = tmp_path / "hs"
    server = hs.start(directory, port=hs.free_port(), default_rate_limits=True)
    try:
        assert server.server_name == "localhost"
        assert server.pid is not None
        # Detached: its own session, so it outlives the command that started it.
        assert os.getsid(server.pid) == server.pid
        assert hs.start(directory, port=server.port) == server
        assert hs.status(directory) == server
        # Synapse's own limits, for tests of 429 handling.
        config = json.loads((directory / hs.CONFIG_FILE).read_text())
        assert not [key for key in config if key.startswith("rc_")]
        # Files that hold the registration secret are for their owner only.
        for name in (hs.STATE_FILE, hs.CONFIG_FILE):
            assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600

        user = hs.register(directory, "alice", "pw", admin=True)
        assert user is not None and _whoami(server, user.access_token) == "@alice:localhost"
    finally:
        stopped = hs.stop(directory)

    assert stopped is True
    assert hs.status(directory) is None
    assert not (directory / hs.PID_FILE).exists()
    assert _synapse_pids(directory) == []
    assert hs.stop(directory) is False
    with pytest.raises(InfrastructureError, match="no homeserver is running"):
        hs.register(directory, "bob", "pw")


def test_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]

        with pytest.raises(InfrastructureError, match=f"port {port} is already in use"):
            hs.start(tmp_path, port=port)

    assert hs.status(tmp_path) is None


def test_port_of_a_running_synapse_is_in_use(homeserver: Homeserver, tmp_path: Path) -> None:
    with pytest.raises(InfrastructureError, match=f"port {homeserver.port} is already in use"):
        hs.start(tmp_path, port=homeserver.port)


def test_stale_pid_file_means_no_server(homeserver: Homeserver, tmp_path: Path) -> None:
    shutil.copy(homeserver.directory / hs.STATE_FILE, tmp_path / hs.STATE_FILE)
    # A live process that is not Synapse: the pid was recycled after a crash.
    (tmp_path / hs.PID_FILE).write_text(f"{os.getpid()}\n")

    assert hs.status(tmp_path) is None
    assert hs.stop(tmp_path) is False
    assert not (tmp_path / hs.PID_FILE).exists()


def test_empty_directory_has_no_server(tmp_path: Path) -> None:
    assert hs.status(tmp_path) is None
    assert hs.stop(tmp_path) is False
    with pytest.raises(InfrastructureError, match="no homeserver is running"):
        hs.register(tmp_path, "alice", "pw")


def test_server_not_healthy_in_time_is_stopped(tmp_path: Path) -> None:
    with pytest.raises(InfrastructureError, match="not healthy") as raised:
        hs.start(tmp_path, port=hs.free_port(), timeout=0.3)

    assert str(tmp_path / hs.LOG_FILE) in raised.value.one_line()
    assert hs.status(tmp_path) is None
    assert _synapse_pids(tmp_path) == []


def test_synapse_exiting_at_start_up_reports_why(tmp_path: Path) -> None:
    (tmp_path / hs.DATABASE_FILE).write_text("not a database")

    with pytest.raises(InfrastructureError) as raised:
        hs.start(tmp_path, port=hs.free_port())

    message = raised.value.one_line()
    assert "Synapse exited during start-up" in message
    assert "file is not a database" in message
    assert str(tmp_path / hs.LOG_FILE) in message
    assert hs.status(tmp_path) is None


def test_missing_synapse_says_how_to_install(tmp_path: Path) -> None:
    # -S leaves site-packages, where Synapse lives, off the path: a real
    # interpreter without Synapse, with only our own package added back.
    source = Path(matrix_bot_tester.__file__).parent.parent
    code = (
        f"import sys; sys.path.insert(0, {str(source)!r})\n"
        "from pathlib import Path\n"
        "from matrix_bot_tester import homeserver\n"
        "from matrix_bot_tester.errors import InfrastructureError\n"
        "try:\n"
        f"    homeserver.start(Path({str(tmp_path)!r}), port=1)\n"
        "except InfrastructureError as error:\n"
        "    print(error.one_line())\n"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=30
    )

    assert "Synapse is not installed" in result.stdout, result.stderr
    assert "pip install '.[synapse]'" in result.stdout
