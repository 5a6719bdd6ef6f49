"""Command-line input that only a real homeserver can judge: passwords kept out of argv,
users that already exist, and rooms the server does not know."""

from __future__ import annotations

import io
import sys
import uuid
from pathlib import Path

import pytest
from clirun import AccountFactory, run_cli, write_script

from matrix_bot_tester import cli
from matrix_bot_tester import homeserver as hs
from matrix_bot_tester.homeserver import Homeserver

pytestmark = pytest.mark.integration


def _name() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


def _register(homeserver: Homeserver, *argv: str) -> int:
    return cli.main(["homeserver", "register", "--dir", str(homeserver.directory), *argv])


def test_register_reads_the_password_from_the_environment(
    homeserver: Homeserver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _name()
    monkeypatch.setenv("MBT_TEST_BOT_PASSWORD", "env-s3cret")
    assert _register(homeserver, name, "--password-env", "MBT_TEST_BOT_PASSWORD") == 0
    out, err = capsys.readouterr()
    assert out == f"@{name}:synapse-test.localhost\n" and err == ""
    assert hs.password_works(homeserver.directory, name, "env-s3cret") is True


def test_register_reads_the_password_from_stdin(
    homeserver: Homeserver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _name()
    monkeypatch.setattr(sys, "stdin", io.StringIO("stdin-s3cret\n"))
    assert _register(homeserver, name, "--password-stdin") == 0
    assert capsys.readouterr().out == f"@{name}:synapse-test.localhost\n"
    assert hs.password_works(homeserver.directory, name, "stdin-s3cret") is True
    assert hs.password_works(homeserver.directory, name, "stdin-s3cret\n") is False


def test_register_of_an_existing_user_says_whether_the_password_is_its_own(
    homeserver: Homeserver, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _name()
    assert _register(homeserver, name, "first-pw") == 0
    capsys.readouterr()

    assert _register(homeserver, name, "first-pw") == 0
    assert capsys.readouterr().out == f"{name} already exists, with this password\n"

    assert _register(homeserver, name, "second-pw") == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"error: {name} already exists, with another password (hint: choose another user"
        " name, or give the password it was registered with)\n"
    )
    assert "second-pw" not in err and "first-pw" not in err


def test_an_unknown_alias_is_exit_3_for_run_and_record_alike(
    homeserver: Homeserver, make_account: AccountFactory, tmp_path: Path
) -> None:
    """The alias is well formed, so only the server can say it names no room: infrastructure."""
    alias = "#nope-no-such-room:synapse-test.localhost"
    account = make_account()
    script = write_script(
        tmp_path, "room.convo.yaml", f"room_to_connect: '{alias}'\nmessages:\n  - send: hi\n"
    )
    run = run_cli("run", script, "--account", account, "--timeout", "10")
    assert run.code == 3, run.stdout + run.stderr
    assert f"cannot join {alias}" in run.stdout + run.stderr

    record = run_cli(
        "record", "--account", account, "--room", alias, "--bot", "@bot:synapse-test.localhost",
        "-o", tmp_path / "out.convo.yaml", "--timeout", "10",
    )  # fmt: skip
    assert record.code == 3, record.stdout + record.stderr
    assert record.stderr.startswith(f"error: cannot join {alias}: M_NOT_FOUND")
    assert record.stderr.count("\n") == 1, record.stderr
    assert not (tmp_path / "out.convo.yaml").exists()
