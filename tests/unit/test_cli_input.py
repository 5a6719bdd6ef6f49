"""The command line refuses bad input before connecting: exit 2, one line, no traceback."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from matrix_bot_tester import cli, session

SEED = Path(__file__).parent.parent / "data" / "original"
CLIENT_REPLAY = str(SEED / "client-replay.yaml")
CLIENT_CONFIG = str(SEED / "client-config.yaml")
BOT_CONFIG = str(SEED / "bot-config.yaml")  # has no user_to_test
UNREACHABLE = "http://127.0.0.1:1"  # port 1: nothing listens


class NoConnecting:
    """Stands in for NioSession where input is bad: any attempt to connect fails the test."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the CLI tried to connect although its input was bad")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "NioSession", NoConnecting)


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line on stderr, checked to be the whole of stderr."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert err.endswith("\n")
    return lines[0]


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def account(tmp_path: Path, url: str = UNREACHABLE, partner: str | None = None) -> str:
    text = f"user: '@tester:synapse-test.localhost'\npassword: test\nhomeserver_url: '{url}'\n"
    if partner:
        text += f"user_to_test: '{partner}'\n"
    return write(tmp_path, "account.yaml", text)


# ------------------------------------------------------------------- exit 2


@pytest.mark.usefixtures("offline")
def test_run_with_a_missing_script_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.yaml")
    assert cli.main(["run", missing, "-a", CLIENT_CONFIG]) == 2
    assert error_line(capsys) == f"error: {missing}: script not found (hint: check the path)"


@pytest.mark.usefixtures("offline")
def test_run_with_a_broken_script_exits_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = write(tmp_path, "broken.yaml", "messages:\n  - send: hi\n    expct: ho\n")
    assert cli.main(["run", script, "-a", CLIENT_CONFIG]) == 2
    assert error_line(capsys).startswith(f"error: {script}:3:5: unknown key 'expct'")


@pytest.mark.usefixtures("offline")
def test_run_with_a_second_broken_script_sends_nothing_for_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = write(tmp_path, "broken.yaml", "messages: 5\n")
    assert cli.main(["run", CLIENT_REPLAY, broken, "-a", CLIENT_CONFIG]) == 2
    assert error_line(capsys).startswith(f"error: {broken}:1:11: ")


@pytest.mark.usefixtures("offline")
def test_run_with_a_broken_account_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = write(tmp_path, "account.yaml", "user: alice\npassword: x\nhomeserver_url: x\n")
    assert cli.main(["run", CLIENT_REPLAY, "-a", broken]) == 2
    assert error_line(capsys).startswith(f"error: {broken}:1:7: user: not a full Matrix user ID")


@pytest.mark.usefixtures("offline")
def test_run_with_a_missing_account_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nope.yaml")
    assert cli.main(["run", CLIENT_REPLAY, "-a", missing]) == 2
    assert error_line(capsys).startswith(f"error: {missing}: account file not found")


@pytest.mark.usefixtures("offline")
def test_original_invocation_with_only_b_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-b", CLIENT_CONFIG]) == 2
    assert "needs both --bot-config and --replay" in error_line(capsys)


@pytest.mark.usefixtures("offline")
def test_original_invocation_with_only_r_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["-r", CLIENT_REPLAY]) == 2
    assert "needs both --bot-config and --replay" in error_line(capsys)


@pytest.mark.usefixtures("offline")
def test_original_invocation_with_a_broken_script_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = write(tmp_path, "broken.yaml", "")
    assert cli.main(["-b", CLIENT_CONFIG, "-r", broken]) == 2
    assert error_line(capsys) == (
        f"error: {broken}: the script is empty (hint: add a 'messages:' list)"
    )


@pytest.mark.usefixtures("offline")
def test_dm_script_without_a_bot_to_test_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", CLIENT_REPLAY, "-a", BOT_CONFIG]) == 2
    line = error_line(capsys)
    assert "opens a DM ('!dm'), but no bot to test is named" in line
    assert "--bot" in line


@pytest.mark.usefixtures("offline")
def test_original_invocation_of_a_dm_script_without_user_to_test_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["-b", BOT_CONFIG, "-r", CLIENT_REPLAY]) == 2
    assert "no bot to test is named" in error_line(capsys)


@pytest.mark.usefixtures("offline")
def test_bot_option_that_is_not_a_user_id_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", CLIENT_REPLAY, "-a", BOT_CONFIG, "--bot", "bot"]) == 2
    assert "--bot 'bot' is not a Matrix user ID" in error_line(capsys)


@pytest.mark.usefixtures("offline")
def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["run", CLIENT_REPLAY], id="run-without-account"),
        pytest.param(["run", CLIENT_REPLAY, "-a", CLIENT_CONFIG, "--timeout", "0"], id="timeout-0"),
        pytest.param(["run", CLIENT_REPLAY, "-a", CLIENT_CONFIG, "--timeout", "x"], id="timeout-x"),
        pytest.param(["frobnicate"], id="unknown-command"),
    ],
)
@pytest.mark.usefixtures("offline")
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


# ------------------------------------------------------------------- validate


@pytest.mark.usefixtures("offline")
def test_validate_accepts_the_seed_replay_files(capsys: pytest.CaptureFixture[str]) -> None:
    replays = sorted(str(path) for path in SEED.glob("*replay*.yaml"))
    assert len(replays) == 4
    assert cli.main(["validate", *replays, "-a", CLIENT_CONFIG]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines() == [
        f"ok {SEED / 'bot-replay-fail.yaml'} (bot role, 7 steps)",
        f"ok {SEED / 'bot-replay.yaml'} (bot role, 7 steps)",
        f"ok {SEED / 'client-replay-matrix-addapter-test.yaml'} (client role, 2 steps)",
        f"ok {SEED / 'client-replay.yaml'} (client role, 4 steps)",
        f"ok {CLIENT_CONFIG} (@mock_client:synapse-test.localhost at http://localhost:8008)",
        "checked 4 script files and 1 account file: all ok",
    ]


@pytest.mark.usefixtures("offline")
def test_validate_takes_folders_and_globs_as_run_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "suite"
    (suite / "sub").mkdir(parents=True)
    one = write(suite, "one.convo.yaml", "messages:\n  - send: hi\n")
    two = write(suite / "sub", "two.convo.yml", "messages:\n  - send: hi\n  - send: ho\n")
    write(suite, "fragment.yaml", "not: a script\n")  # not *.convo.yaml: not taken
    assert cli.main(["validate", str(suite), str(suite / "*.convo.yaml")]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines() == [
        f"ok {one} (client role, 1 step)",
        f"ok {two} (client role, 2 steps)",
        "checked 2 script files: all ok",
    ]


@pytest.mark.usefixtures("offline")
def test_validate_reports_every_bad_argument_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    script = write(tmp_path, "ok.convo.yaml", "messages:\n  - send: hi\n")
    nothing = str(tmp_path / "*.nope.yaml")
    assert cli.main(["validate", str(empty), nothing, script]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"error: {empty}: no script files in this folder"
        " (hint: scripts in folders are found by their name: *.convo.yaml)",
        f"error: {nothing}: the pattern matches no file"
        " (hint: check the pattern; '**' also looks in subfolders, e.g. 'tests/**/*.convo.yaml')",
    ]
    assert out.splitlines() == [
        f"ok {script} (client role, 1 step)",
        "checked 1 script file: 2 errors",
    ]


@pytest.mark.usefixtures("offline")
def test_validate_rejects_a_bad_script_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "bad.yaml", "messages:\n  - send: hi\n  - {}\n")
    assert cli.main(["validate", CLIENT_REPLAY, bad]) == 2
    assert error_line(capsys).startswith(f"error: {bad}:3:5: ")


@pytest.mark.usefixtures("offline")
def test_validate_rejects_a_bad_account_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "account.yaml", "user: '@a:x.org'\nhomeserver_url: http://x.org\n")
    assert cli.main(["validate", CLIENT_REPLAY, "-a", bad]) == 2
    assert "the account needs 'password' or 'access_token'" in error_line(capsys)


@pytest.mark.usefixtures("offline")
def test_validate_rejects_non_utf8_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"messages:\n  - send: caf\xe9\n")
    assert cli.main(["validate", str(bad)]) == 2
    assert error_line(capsys) == f"error: {bad}: script is not UTF-8 text (bad byte at offset 23)"


# --------------------------------------------------------------- unreachable


def test_unreachable_homeserver_exits_3_with_one_line_naming_the_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    accounts = account(tmp_path, partner="@bot:synapse-test.localhost")
    started = time.monotonic()
    assert cli.main(["run", CLIENT_REPLAY, "-a", accounts]) == 3
    assert time.monotonic() - started < 5
    line = error_line(capsys)
    assert f"cannot reach the homeserver at {UNREACHABLE}" in line


def test_unreachable_homeserver_still_writes_both_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    accounts = account(tmp_path, partner="@bot:synapse-test.localhost")
    junit, report = tmp_path / "out" / "junit.xml", tmp_path / "out" / "report.json"
    argv = ["run", CLIENT_REPLAY, "-a", accounts, "--junit-xml", str(junit), "--json", str(report)]
    assert cli.main(argv) == 3
    error = ET.parse(junit).getroot().find("testcase/error")
    assert error is not None
    assert UNREACHABLE in (error.get("message") or "")
    document = json.loads(report.read_text(encoding="utf-8"))
    assert document["exit_code"] == 3
    assert [c["outcome"] for c in document["conversations"]] == ["error"]


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize("overwritten", ["script", "account", "state"])
def test_a_report_path_naming_an_input_file_is_refused_and_leaves_it_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overwritten: str
) -> None:
    script = write(tmp_path, "ping.yaml", "messages:\n  - send: '!ping'\n    expect: pong\n")
    acc = account(tmp_path, partner="@bot:synapse-test.localhost")
    state = write(tmp_path, "logins.json", "{}")
    Path(state).chmod(0o600)
    target = {"script": script, "account": acc, "state": state}[overwritten]
    before = Path(target).read_bytes()
    argv = ["run", script, "-a", acc, "--state-file", state, "--json", target]
    assert cli.main(argv) == 2
    assert "would overwrite" in error_line(capsys)
    assert Path(target).read_bytes() == before


@pytest.mark.usefixtures("offline")
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux's /proc")
def test_a_report_folder_that_takes_no_file_is_refused_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    acc = account(tmp_path, partner="@bot:synapse-test.localhost")
    assert cli.main(["run", CLIENT_REPLAY, "-a", acc, "--json", "/proc/nope.json"]) == 2
    assert "the --json report cannot be written there" in error_line(capsys)


# ------------------------------------------------------------------- homeserver


@pytest.mark.parametrize("name", ["bad name", "", "local host:8448", "host:port", "a/b"])
def test_homeserver_start_with_a_bad_server_name_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    directory = tmp_path / "hs"
    argv = ["homeserver", "start", "--dir", str(directory), "--server-name", name]
    assert cli.main(argv) == 2
    assert f"{name!r} is not a Matrix server name" in error_line(capsys)
    assert not directory.exists()


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ([], "needs the password one way (hint: --password-env NAME"),
        (["pw", "--password-stdin"], "one way, not PASSWORD and --password-stdin"),
        (["--password-env", "MBT_UNSET_PASSWORD"], "MBT_UNSET_PASSWORD: the variable is not set"),
        (["--password-env", "MBT_EMPTY_PASSWORD"], "the password from --password-env is empty"),
    ],
)
def test_homeserver_register_without_exactly_one_password_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    given: list[str],
    says: str,
) -> None:
    monkeypatch.delenv("MBT_UNSET_PASSWORD", raising=False)
    monkeypatch.setenv("MBT_EMPTY_PASSWORD", "")
    assert cli.main(["homeserver", "register", "--dir", str(tmp_path), "bot", *given]) == 2
    assert says in error_line(capsys)
