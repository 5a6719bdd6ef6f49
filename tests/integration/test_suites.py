"""Suites on a real Synapse: folders, concurrency (-j), selection (-k, -m), flow (-x,
--rerun-failed) and the readiness check, against the example bot."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clirun import run_cli, write_script

from matrix_bot_tester.homeserver import Homeserver, RegisteredUser

AccountFactory = Callable[..., Path]


def _report(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _outcomes(document: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["outcome"] for c in document["conversations"]}


def _echo(token: str) -> str:
    return f'messages:\n  - send: "!echo {token}"\n    expect: "{token}"\n'


def test_a_folder_runs_concurrently_with_the_results_of_a_sequential_run(
    command_bot: RegisteredUser, make_account: AccountFactory, tmp_path: Path
) -> None:
    account = make_account(user_to_test=command_bot.user_id)
    suite = tmp_path / "suite"
    (suite / "more").mkdir(parents=True)
    tokens = [f"token-{i}-{uuid.uuid4().hex[:8]}" for i in range(8)]
    for i, token in enumerate(tokens):
        write_script(suite / ("more" if i % 2 else ""), f"echo{i}.convo.yaml", _echo(token))
    # Expects what another conversation's bot says: passes only if isolation breaks.
    write_script(
        suite,
        "peek.convo.yaml",
        f'timeout: 3\nmessages:\n  - expect: "{tokens[0]}"\n',
    )
    # Hears nothing at all, however busy the others are; and runs by itself.
    write_script(suite, "quiet.convo.yaml", "alone: true\nmessages:\n  - expect_no_reply: 2\n")
    write_script(suite, "fragment.yaml", "messages: [{send: not a script}]\n")  # not taken

    documents = {}
    for jobs in ("1", "4"):
        report = tmp_path / f"j{jobs}.json"
        run = run_cli("run", suite, "-a", account, "-j", jobs, "--json", report, cwd=tmp_path)
        assert run.code == 1, run.stdout + run.stderr
        documents[jobs] = _report(report)

    sequential, concurrent = documents["1"], documents["4"]
    names = [c["name"] for c in sequential["conversations"]]
    # Results in the scripts' order (sorted by path), whatever the finishing order.
    assert names == [c["name"] for c in concurrent["conversations"]]
    assert names == [
        "echo0", "echo2", "echo4", "echo6", "echo1",
        "echo3", "echo5", "echo7", "peek", "quiet",
    ]  # fmt: skip
    assert _outcomes(sequential) == _outcomes(concurrent)
    assert _outcomes(concurrent)["peek"] == "failed"
    assert _outcomes(concurrent)["quiet"] == "passed"
    for document in (sequential, concurrent):
        rooms = set()
        for conversation in document["conversations"]:
            rooms.add(conversation["room_id"])
            name = conversation["name"]
            received = [
                e["message"]["body"]
                for e in conversation["transcript"]
                if e["direction"] == "received"
            ]
            if name.startswith("echo"):
                assert conversation["outcome"] == "passed", conversation["failure"]
                assert received == [tokens[int(name[4])]]  # its own token, nothing else
            else:
                assert received == []
        assert len(rooms) == 10  # a fresh DM each
    peek = next(c for c in concurrent["conversations"] if c["name"] == "peek")
    assert peek["failure"]["received"] is None  # nobody else's reply reached it


def test_selection_fail_fast_and_rerun_failed(
    command_bot: RegisteredUser, make_account: AccountFactory, tmp_path: Path
) -> None:
    account = make_account(user_to_test=command_bot.user_id)
    suite = tmp_path / "suite"
    suite.mkdir()
    write_script(suite, "alpha.convo.yaml", "tags: [smoke]\n" + _echo("alpha"))
    write_script(
        suite,
        "bravo.convo.yaml",
        'tags: [slow]\nmessages:\n  - send: "!echo bravo"\n    expect: "something else"\n',
    )
    write_script(suite, "charlie.convo.yaml", "tags: [smoke, slow]\n" + _echo("charlie"))
    report = tmp_path / "report.json"

    def run(*options: str) -> tuple[int, dict[str, str], str]:
        done = run_cli("run", suite, "-a", account, "--json", report, *options, cwd=tmp_path)
        outcomes = _outcomes(_report(report)) if report.exists() else {}
        report.unlink(missing_ok=True)
        return done.code, outcomes, done.stdout + done.stderr

    code, outcomes, out = run("-k", "alpha or charl")
    assert (code, outcomes) == (0, {"alpha": "passed", "charlie": "passed"}), out
    assert "selected 2 of 3 scripts" in out

    code, outcomes, out = run("-m", "smoke and not slow")
    assert (code, outcomes) == (0, {"alpha": "passed"}), out

    code, outcomes, out = run("-k", "nothing-like-this")
    assert code == 2 and outcomes == {}, out
    assert "no script is selected by -k 'nothing-like-this'" in out

    code, outcomes, out = run("-j", "1", "-x", "-v")
    assert code == 1, out
    assert outcomes == {
        "alpha": "passed",
        "bravo": "failed",
        "charlie": "not run",
    }
    # A script that never ran still counts its steps: 0 of its 1, not 0/0.
    assert re.search(r"charlie\s.*0/1", out), out

    # The last run (the -x one) failed bravo and never ran charlie: both run again.
    last_run = json.loads((tmp_path / ".matrix-bot-tester" / "last-run.json").read_text())
    assert [r["outcome"] for r in last_run["results"]] == ["passed", "failed", "not run"]
    code, outcomes, out = run("--rerun-failed")
    assert (code, outcomes) == (1, {"bravo": "failed", "charlie": "passed"}), out

    # Once it passes, there is nothing left to re-run.
    write_script(suite, "bravo.convo.yaml", _echo("bravo"))
    code, outcomes, out = run("--rerun-failed")
    assert (code, outcomes) == (0, {"bravo": "passed"}), out
    code, outcomes, out = run("--rerun-failed")
    assert (code, outcomes) == (0, {}), out
    assert "nothing failed in the last run" in out


def test_the_readiness_check(
    command_bot: RegisteredUser,
    make_account: AccountFactory,
    register_user: Callable[..., RegisteredUser],
    tmp_path: Path,
) -> None:
    ping = write_script(tmp_path, "ping.yaml", 'messages:\n  - send: "!ping"\n    expect: pong\n')
    script = write_script(tmp_path, "echo.convo.yaml", _echo("ready-or-not"))
    report = tmp_path / "report.json"

    ready = make_account(user_to_test=command_bot.user_id)
    run = run_cli("run", script, "-a", ready, "--ready-check", ping, "--json", report, cwd=tmp_path)
    assert run.code == 0, run.stdout + run.stderr
    assert "ready: ping passed after 1 attempt" in run.stdout
    assert _outcomes(_report(report)) == {"echo": "passed"}

    nobody = register_user()  # an account no bot runs on: it never joins the DM
    absent = make_account(user_to_test=nobody.user_id)
    run = run_cli(
        "run", script, "-a", absent, "--ready-check", ping, "--ready-timeout", "3",
        "--json", report, cwd=tmp_path,
    )  # fmt: skip
    assert run.code == 3, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("bot not ready: ")]
    assert len(lines) == 1, run.stderr
    assert "did not join the DM" in lines[0]
    assert run.seconds < 20
    document = _report(report)
    assert document["exit_code"] == 3
    assert _outcomes(document) == {"echo": "not run"}


def test_readiness_check_gives_up_at_once_on_a_bot_account_that_does_not_exist(
    homeserver: Homeserver, make_account: AccountFactory, tmp_path: Path
) -> None:
    ping = write_script(tmp_path, "ping.yaml", "messages:\n  - send: '!ping'\n    expect: pong\n")
    script = write_script(tmp_path, "echo.convo.yaml", _echo("echo"))
    ghost = f"@ghost-{uuid.uuid4().hex[:8]}:{homeserver.server_name}"
    run = run_cli(
        "run", script, "-a", make_account(user_to_test=ghost), "--ready-check", ping,
        "--ready-timeout", "60", cwd=tmp_path,
    )  # fmt: skip
    assert run.code == 3, run.stdout + run.stderr
    assert f"bot not ready: the bot to test, {ghost}, does not exist" in run.stderr
    assert run.seconds < 30  # not the 60 s ready timeout
