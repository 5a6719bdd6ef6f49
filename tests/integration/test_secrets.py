"""Passwords and access tokens appear nowhere: not in output, logs, reports, errors or state.

Every command and report format runs with known, distinctive secrets: a
passing and a failing run with ``-v``, JUnit XML, JSON (and HTML once the
command line offers it), the original ``-b/-r`` invocation, ``validate``, a
token account, ``--no-state``, a wrong password, an invalid token, broken
account files, ``record`` refused at the login, and ``homeserver register``.
Then every byte they wrote is searched: stdout, stderr, every log record
(at DEBUG), every file the runs left (reports, the last-run record) and the
state file, which may hold the token of its own login but never a password.

Most runs are in-process (``cli.main``) so that log records at any level can
be caught; one runs as a real process, where a stray ``log.warning`` reaches
stderr. Adding a log line that prints the account, its password or its token
makes this fail: ``repr`` and ``str`` of an ``Account`` are checked too.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from clirun import EXAMPLES, run_cli, write_script

from matrix_bot_tester.account import load_account
from matrix_bot_tester.cli import build_parser, main
from matrix_bot_tester.errors import InputError
from matrix_bot_tester.homeserver import Homeserver, RegisteredUser
from matrix_bot_tester.state import StoredLogin

pytestmark = pytest.mark.integration

_CORE = uuid.uuid4().hex[:12]
PASSWORD = f"Pw-{_CORE}-sekrit"
WRONG_PASSWORD = f"Wrong-{uuid.uuid4().hex[:12]}-pw"
INVALID_TOKEN = f"syt_bogus_{uuid.uuid4().hex}"


def _fragments(secret: str) -> list[str]:
    """The secret, and a part that a truncated or partly masked print would still show.

    Of a Synapse token (``syt_<user>_<random>_<check>``) the random end: the
    user part is the same in every token of that user.
    """
    if secret.startswith("syt_"):
        return [secret, secret[-16:]]
    return [secret, secret[len(secret) // 4 : len(secret) // 4 + 10]]


def assert_no_secret(where: str, text: str, secrets: list[str]) -> None:
    for secret in secrets:
        for fragment in _fragments(secret):
            assert fragment not in text, f"{where} shows a secret ({fragment!r})"


def _has_run_option(option: str) -> bool:
    parser = build_parser()
    for action in parser._actions:  # argparse keeps the subcommands here
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict) and "run" in choices:
            return any(option in a.option_strings for a in choices["run"]._actions)
    return False


class Transcript:
    """Everything the commands said, to search at the end."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []

    def main(self, capfd: pytest.CaptureFixture[str], *argv: str | Path) -> int:
        code = main([str(a) for a in argv])
        out, err = capfd.readouterr()
        self.said.append((f"stdout of {argv[:2]}", out))
        self.said.append((f"stderr of {argv[:2]}", err))
        return code


def test_no_command_or_report_shows_a_secret(
    homeserver: Homeserver,
    command_bot: RegisteredUser,
    register_user: Callable[..., RegisteredUser],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tester = register_user(password=PASSWORD)
    token = tester.access_token
    inputs = tmp_path / "inputs"
    outputs = tmp_path / "outputs"
    inputs.mkdir()
    outputs.mkdir()
    monkeypatch.chdir(outputs)  # where the last-run record goes
    monkeypatch.setenv("MBT_SECRET_PASSWORD", PASSWORD)
    caplog.set_level(logging.DEBUG)

    def account(name: str, secret_line: str) -> Path:
        return write_script(
            inputs,
            name,
            f"user: '{tester.user_id}'\n{secret_line}\nhomeserver_url: '{homeserver.url}'\n"
            f"user_to_test: '{command_bot.user_id}'\n",
        )

    by_password = account("password.yaml", "password: '${MBT_SECRET_PASSWORD}'")
    by_token = account("token.yaml", f"access_token: '{token}'")
    wrong_password = account("wrong.yaml", f"password: '{WRONG_PASSWORD}'")
    bad_token = account("bad-token.yaml", f"access_token: '{INVALID_TOKEN}'")
    passing = write_script(inputs, "ping.yaml", "messages:\n  - send: '!ping'\n    expect: pong\n")
    failing = EXAMPLES / "conversations" / "wrong-answer.yaml"
    state = outputs / "state" / "logins.json"
    html: list[str | Path] = (
        ["--html", outputs / "report.html"] if _has_run_option("--html") else []
    )

    said = Transcript()
    run = ("run", "-j", "1") if _has_run_option("--jobs") else ("run",)
    # A failing and a passing conversation, every report format, -v.
    code = said.main(
        capfd,
        *run,
        passing,
        failing,
        "--account",
        by_password,
        "-v",
        "--junit-xml",
        outputs / "run.xml",
        "--json",
        outputs / "run.json",
        "--state-file",
        state,
        *html,
    )
    assert code == 1, said.said[-2:]
    # The original tool's invocation, reusing the remembered login.
    code = said.main(
        capfd, "-b", by_password, "-r", passing, "--json", outputs / "b.json", "--state-file", state
    )
    assert code == 0, said.said[-2:]
    # An access token instead of a password.
    code = said.main(
        capfd,
        "run",
        passing,
        "--account",
        by_token,
        "-v",
        "--junit-xml",
        outputs / "token.xml",
        "--json",
        outputs / "token.json",
    )
    assert code == 0, said.said[-2:]
    # Log in and out, remembering nothing.
    assert said.main(capfd, "run", passing, "--account", by_password, "--no-state", "-v") == 0
    # A wrong password and an invalid token: exit 3, the refusal named, the secret not.
    code = said.main(
        capfd,
        "run",
        passing,
        "--account",
        wrong_password,
        "--json",
        outputs / "wrong.json",
        "--state-file",
        outputs / "state2" / "logins.json",
    )
    assert code == 3, said.said[-2:]
    code = said.main(
        capfd, "run", passing, "--account", bad_token, "--junit-xml", outputs / "bad.xml", "-v"
    )
    assert code == 3, said.said[-2:]
    # The recorder, refused at the login: exit 3, no secret in what it says or writes.
    for refused in (wrong_password, bad_token):
        code = said.main(
            capfd,
            "record",
            "--account",
            refused,
            "-o",
            outputs / f"recorded-{refused.stem}.yaml",
            "--max-duration",
            "5",
            "--events-json",
            outputs / f"recorded-{refused.stem}.json",
            "--state-file",
            outputs / "state3" / "logins.json",
        )
        assert code == 3, said.said[-2:]
    # Checking files.
    for checked in (by_password, by_token, wrong_password, bad_token):
        assert said.main(capfd, "validate", passing, failing, "--account", checked) == 0
    # Account files broken around the secret: exit 2, one line, no secret.
    monkeypatch.setenv("MBT_SECRET_AS_USER", PASSWORD)
    broken_lines = [
        f"password: !{PASSWORD}",  # read as a YAML tag
        f"password: *{PASSWORD}",  # read as a YAML alias
        f"password: !!int {PASSWORD}",  # a tag its value does not fit
        f"password: [{PASSWORD}]",  # not text
        f"password: {{{PASSWORD}: 1}}",  # not text
        f"password: '{PASSWORD}'\naccess_token: '{token}'",  # both
        f"password: '{PASSWORD}\n",  # an unclosed quote
        f"password: {PASSWORD}: x",  # a colon too many
        f"password: '{PASSWORD}'\nuser: '${{MBT_SECRET_AS_USER}}'",  # duplicate, from the env
    ]
    for number, line in enumerate(broken_lines):
        broken = account(f"broken{number}.yaml", line)
        assert said.main(capfd, "validate", passing, "--account", broken) == 2, said.said[-1]
        assert said.main(capfd, "run", passing, "--account", broken) == 2, said.said[-1]
    user_from_env = write_script(
        inputs,
        "user-from-env.yaml",
        f"user: '${{MBT_SECRET_AS_USER}}'\npassword: x\nhomeserver_url: '{homeserver.url}'\n",
    )
    assert said.main(capfd, "validate", passing, "--account", user_from_env) == 2
    # The throwaway homeserver's own commands.
    name = f"secret-{uuid.uuid4().hex[:8]}"
    assert (
        said.main(capfd, "homeserver", "register", "--dir", homeserver.directory, name, PASSWORD)
        == 0
    )
    # And one real process, where a stray log.warning would reach stderr.
    process = run_cli(
        "run",
        passing,
        failing,
        "--account",
        by_password,
        "-v",
        "--json",
        outputs / "process.json",
        "--junit-xml",
        outputs / "process.xml",
        "--state-file",
        state,
        cwd=outputs,
    )
    assert process.code == 1, process.stdout + process.stderr
    said.said += [("stdout of a process", process.stdout), ("stderr of a process", process.stderr)]

    stored = [entry["access_token"] for entry in _logins(state)]
    assert stored, "the password runs remembered no login"
    secrets = [PASSWORD, WRONG_PASSWORD, INVALID_TOKEN, token, *stored]
    for where, text in said.said:
        assert_no_secret(where, text, secrets)
    assert_no_secret("the log records", caplog.text, secrets)
    written = [p for p in outputs.rglob("*") if p.is_file() and p.parent.name != "state"]
    assert len(written) >= 8, written  # the reports and the last-run record
    for path in written:
        assert_no_secret(str(path), path.read_text(encoding="utf-8", errors="replace"), secrets)
    # The state file keeps what its own logins got, never a password or a token we gave.
    for path in (state.parent / "logins.json", outputs / "state2" / "logins.json"):
        if path.exists():
            assert_no_secret(
                str(path),
                path.read_text(encoding="utf-8"),
                [PASSWORD, WRONG_PASSWORD, token, INVALID_TOKEN],
            )


def _logins(state: Path) -> list[dict[str, str]]:
    import json

    return list(json.loads(state.read_text(encoding="utf-8"))["logins"].values())


def test_an_account_never_prints_its_secrets(tmp_path: Path) -> None:
    """What a log line that prints the account would show."""
    path = tmp_path / "account.yaml"
    path.write_text(
        f"user: '@a:example.org'\npassword: '{PASSWORD}'\nhomeserver_url: http://h\n",
        encoding="utf-8",
    )
    by_password = load_account(path)
    path.write_text(
        f"user: '@a:example.org'\naccess_token: '{INVALID_TOKEN}'\nhomeserver_url: http://h\n",
        encoding="utf-8",
    )
    by_token = load_account(path)
    for account in (by_password, by_token):
        shown = [
            repr(account),
            str(account),
            f"{account}",
            "%s %r" % (account, account),  # noqa: UP031 - as logging formats it
            repr(dataclasses.asdict(account)),
            repr(account.password),
            repr(account.access_token),
            str(account.password),
            str(account.access_token),
        ]
        for text in shown:
            assert_no_secret("an account's text", text, [PASSWORD, INVALID_TOKEN])
    assert PASSWORD not in repr(RegisteredUser("@a:b", PASSWORD, INVALID_TOKEN, "D"))
    assert INVALID_TOKEN not in repr(RegisteredUser("@a:b", PASSWORD, INVALID_TOKEN, "D"))
    assert INVALID_TOKEN not in repr(StoredLogin(INVALID_TOKEN, "D"))


@pytest.mark.parametrize(
    "text",
    [
        f"password: {PASSWORD}\n",  # no user, no URL
        f"user: '@a:b'\nhomeserver_url: '{PASSWORD}'\npassword: '{PASSWORD}'\n",
        f"user: '{PASSWORD}'\nhomeserver_url: http://h\npassword: '{PASSWORD}'\n",
        f"user: '@a:b'\nhomeserver_url: http://h\npassword: ''\naccess_token: '{PASSWORD}'\n",
        f"user: '@a:b'\nhomeserver_url: http://h\npassword: {{x: '{PASSWORD}'}}\n",
        f"user: '@a:b'\nhomeserver_url: http://h\naccess_token: !!binary '{PASSWORD}'\n",
        f"user: '@a:b'\nhomeserver_url: http://h\npassword: !!float {PASSWORD}\n",
        f"user: '@a:b'\nhomeserver_url: http://h\npassword: !!timestamp {PASSWORD}\n",
        f"user: '@a:b'\nhomeserver_url: http://h\npassword: \"{PASSWORD}\\q\"\n",
        f"user: '@a:b'\nhomeserver_url: http://h\npassword: '{PASSWORD}'\n\tdevice_id: x\n",
    ],
)
def test_account_errors_hide_the_secret(tmp_path: Path, text: str) -> None:
    path = tmp_path / "account.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_account(path)
    assert_no_secret("the error", caught.value.one_line(), [PASSWORD])
    assert "\n" not in caught.value.one_line()
