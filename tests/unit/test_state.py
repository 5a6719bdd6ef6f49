"""The login state file: private, refused when others may read it, never holding a password.

No homeserver here: ``LoginStore`` is a file, and the command line checks it
before it connects (a refused state file is exit 2, nothing sent).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from matrix_bot_tester.cli import main
from matrix_bot_tester.errors import InputError
from matrix_bot_tester.state import ENV_VAR, LoginStore, StoredLogin, default_path

URL = "http://localhost:8008"
USER = "@tester:example.org"
PASSWORD = "Pw-state-test-5e1d9a"
LOGIN = StoredLogin(access_token="syt_token_state_test_77c0", device_id="DEVICEONE")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_file_is_created_0600_in_a_0700_folder(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "state" / "logins.json"
    store = LoginStore(path)
    store.put(URL, USER, PASSWORD, LOGIN)
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert store.get(URL, USER, PASSWORD) == LOGIN
    # The atomic write leaves no temporary file beside it.
    assert sorted(p.name for p in path.parent.iterdir()) == ["logins.json", "logins.json.lock"]
    assert _mode(path.with_name("logins.json.lock")) == 0o600


def test_a_rewrite_keeps_the_file_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "logins.json"
    store = LoginStore(path)
    store.put(URL, USER, PASSWORD, LOGIN)
    store.put(URL, "@other:example.org", PASSWORD, LOGIN)
    assert _mode(path) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_a_file_others_may_read_is_refused_naming_the_path_and_the_fix(
    tmp_path: Path, mode: int
) -> None:
    path = tmp_path / "logins.json"
    LoginStore(path).put(URL, USER, PASSWORD, LOGIN)
    path.chmod(mode)
    with pytest.raises(InputError) as caught:
        LoginStore(path).check()
    text = caught.value.one_line()
    assert caught.value.exit_code == 2
    assert str(path) in text
    assert f"chmod 600 {path}" in text
    assert "\n" not in text
    assert LOGIN.access_token not in text
    # Reading it for a login is refused too, not only the up-front check.
    with pytest.raises(InputError):
        LoginStore(path).get(URL, USER, PASSWORD)


def test_a_folder_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "logins.json"
    path.mkdir()
    with pytest.raises(InputError) as caught:
        LoginStore(path).check()
    assert str(path) in caught.value.one_line()


def test_the_command_line_refuses_a_readable_state_file_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "logins.json"
    LoginStore(path).put(URL, USER, PASSWORD, LOGIN)
    path.chmod(0o644)
    script = tmp_path / "s.yaml"
    script.write_text("messages:\n  - send: hi\n", encoding="utf-8")
    account = tmp_path / "a.yaml"
    # Nothing listens on port 9: had it connected, the exit code would be 3.
    account.write_text(
        f"user: '{USER}'\npassword: '{PASSWORD}'\nhomeserver_url: 'http://127.0.0.1:9'\n"
        "user_to_test: '@bot:example.org'\n",
        encoding="utf-8",
    )
    code = main(["run", str(script), "--account", str(account), "--state-file", str(path)])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert f"chmod 600 {path}" in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert "cannot reach" not in out + err


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"\n",
        b'{"logins": {"abc": "not an entry"}, "salt": 12}',
        b'{"salt": "s", "logins": {"k": {"access_token": 5, "device_id": null}}}',
    ],
)
def test_an_empty_file_or_unusable_entries_cost_only_a_fresh_login(
    tmp_path: Path, damage: bytes
) -> None:
    path = tmp_path / "logins.json"
    path.write_bytes(damage)
    path.chmod(0o600)
    store = LoginStore(path)
    store.check()
    assert store.get(URL, USER, PASSWORD) is None  # no login to reuse, no error
    store.forget(URL, USER, PASSWORD)
    store.put(URL, USER, PASSWORD, LOGIN)  # the fresh login is remembered again
    assert store.get(URL, USER, PASSWORD) == LOGIN
    assert json.loads(path.read_text(encoding="utf-8"))["logins"]
    assert _mode(path) == 0o600


@pytest.mark.parametrize(
    "other",
    [
        b"user: '@me:example.org'\npassword: hunter2\n",  # an account file, given by mistake
        b"{not json",
        b"\xff\xfe\x00binary",
        b"[]",
        b'{"logins": []}',
        b"null",
    ],
)
@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_a_file_that_is_no_state_file_is_refused_and_left_alone(
    tmp_path: Path, other: bytes, mode: int
) -> None:
    """Readable by others or not: it is named as another file, never a chmod or delete away."""
    path = tmp_path / "account.yaml"
    path.write_bytes(other)
    path.chmod(mode)
    store = LoginStore(path)
    for use in (store.check, lambda: store.put(URL, USER, PASSWORD, LOGIN)):
        with pytest.raises(InputError) as caught:
            use()
        text = caught.value.one_line()
        assert caught.value.exit_code == 2
        assert str(path) in text
        assert "not a login state file" in text
        assert "hunter2" not in text
        assert "delete" not in text and "chmod" not in text
    assert path.read_bytes() == other


def test_the_password_is_never_stored(tmp_path: Path) -> None:
    path = tmp_path / "logins.json"
    store = LoginStore(path)
    store.put(URL, USER, PASSWORD, LOGIN)
    raw = path.read_bytes()
    assert PASSWORD.encode() not in raw
    assert PASSWORD[:8].encode() not in raw
    assert LOGIN.access_token.encode() in raw  # the token it got is what it keeps
    assert "<hidden>" in repr(LOGIN) and LOGIN.access_token not in repr(LOGIN)


def test_a_changed_password_gives_a_different_key_and_replaces_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "logins.json"
    store = LoginStore(path)
    store.put(URL, USER, PASSWORD, LOGIN)
    first = set(json.loads(path.read_text())["logins"])
    # A changed password does not find the old login: the next run logs in afresh.
    assert store.get(URL, USER, PASSWORD + "-changed") is None
    second_login = StoredLogin("syt_second_token", "DEVICETWO")
    store.put(URL, USER, PASSWORD + "-changed", second_login)
    second = set(json.loads(path.read_text())["logins"])
    assert first.isdisjoint(second)
    assert len(second) == 1  # one entry per account: the old one is gone
    assert store.get(URL, USER, PASSWORD + "-changed") == second_login
    assert store.get(URL, USER, PASSWORD) is None


def test_accounts_and_servers_are_kept_apart(tmp_path: Path) -> None:
    store = LoginStore(tmp_path / "logins.json")
    store.put(URL, USER, PASSWORD, LOGIN)
    assert store.get("http://other:8008", USER, PASSWORD) is None
    assert store.get(URL, "@someone:example.org", PASSWORD) is None
    store.forget(URL, USER, PASSWORD)
    assert store.get(URL, USER, PASSWORD) is None


def test_the_location_is_overridable_and_documented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "here.json"))
    assert default_path() == tmp_path / "here.json"
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "matrix-bot-tester" / "logins.json"
