"""The pytest plugin, run the way a bot author runs it: pytest on a sample project.

The sample is a copy of examples/pytest-project (the example bot, two YAML
scripts, Python tests). Each run is a pytest of its own, in a subprocess, with
its own throwaway Synapse: slow, so there are few of them, and the checks
that need no homeserver use ``--collect-only``.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from clirun import EXAMPLES

from matrix_bot_tester import homeserver as hs

pytest_plugins = ["pytester"]

PROJECT = EXAMPLES / "pytest-project"
BOT_LINE = 'BOT = Path(__file__).resolve().parent.parent / "command_bot.py"'

WRONG_SCRIPT = """\
tags: [smoke]
messages:
  - send: "!ping"
    expect: PONG
"""

WRONG_PYTHON = """\
async def test_wrong_echo(matrix_conversation):
    async with matrix_conversation(timeout=10) as conversation:
        await conversation.send("!echo one")
        await conversation.expect("two")
"""


def copy_project(pytester: pytest.Pytester) -> Path:
    root = pytester.path
    shutil.copytree(PROJECT, root, dirs_exist_ok=True)
    conftest = root / "conftest.py"
    text = conftest.read_text(encoding="utf-8")
    assert BOT_LINE in text  # the example's bot path, made absolute for the copy
    conftest.write_text(
        text.replace(BOT_LINE, f"BOT = Path({str(EXAMPLES / 'command_bot.py')!r})"),
        encoding="utf-8",
    )
    return root


@pytest.mark.integration
def test_a_project_runs_and_failures_show_where_and_the_transcript(
    pytester: pytest.Pytester,
) -> None:
    root = copy_project(pytester)
    (root / "conversations" / "wrong.convo.yaml").write_text(WRONG_SCRIPT, encoding="utf-8")
    (root / "test_wrong.py").write_text(WRONG_PYTHON, encoding="utf-8")

    result = pytester.runpytest_subprocess("--junitxml=report.xml", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=6, failed=2)
    out = result.stdout.str()
    # The script's failure: file:line of the step, expected and received, transcript.
    assert "conversations/wrong.convo.yaml:3 (step 1): wrong reply" in out
    assert "expected: 'PONG'" in out
    assert "received: 'pong' from @bot-" in out
    assert "transcript:" in out
    assert "→ @tester-" in out and "!ping" in out
    # The Python test's failure names the line of the test that expected.
    assert "test_wrong.py:4 (step 2): wrong reply" in out
    assert "  expected: 'two'\n" in out
    # JUnit: one test case per script and per test, the transcript in the failure.
    suite = ET.parse(root / "report.xml").getroot().find("testsuite")
    assert suite is not None
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert {"ping", "commands", "wrong", "test_ping", "test_wrong_echo"} <= set(cases)
    failure = cases["wrong"].find("failure")
    assert failure is not None and "transcript:" in (failure.text or "")
    assert cases["ping"].find("failure") is None


@pytest.mark.integration
def test_k_m_and_strict_markers_select_scripts(pytester: pytest.Pytester) -> None:
    root = copy_project(pytester)
    (root / "conversations" / "wrong.convo.yaml").write_text(WRONG_SCRIPT, encoding="utf-8")

    # Tags are markers (registered, so --strict-markers accepts them); -k matches names.
    result = pytester.runpytest_subprocess(
        "-k", "ping", "-m", "smoke", "--strict-markers", "-x", "-v", "-p", "no:cacheprovider"
    )

    result.assert_outcomes(passed=1, deselected=6)
    result.stdout.fnmatch_lines(["*conversations/ping.convo.yaml::ping PASSED*"])
    assert "wrong" not in result.stdout.str()


def test_without_enabling_nothing_is_collected_from_yaml(pytester: pytest.Pytester) -> None:
    root = copy_project(pytester)
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")  # the plugin not enabled
    (root / "test_other.py").write_text("def test_other():\n    pass\n", encoding="utf-8")

    off = pytester.runpytest_subprocess("--collect-only", "-q", "-p", "no:cacheprovider")
    assert ".convo.yaml" not in off.stdout.str()
    # (the async Python tests are collected as pytest collects them; they are not run here)
    assert "test_other.py::test_other" in off.stdout.str()

    on = pytester.runpytest_subprocess(
        "--matrix-bot-tester", "--collect-only", "-q", "-p", "no:cacheprovider"
    )
    lines = on.stdout.str()
    assert "conversations/ping.convo.yaml::ping" in lines
    assert "conversations/commands.convo.yaml::commands" in lines


def test_a_broken_script_is_a_collection_error_naming_its_line(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmatrix_bot_tester = true\n")
    (pytester.path / "broken.convo.yaml").write_text(
        "messages:\n  - send: hi\n    expect_typo: hello\n", encoding="utf-8"
    )
    (pytester.path / "notes.yaml").write_text("not: a script\n", encoding="utf-8")

    result = pytester.runpytest_subprocess("--collect-only", "-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting broken.convo.yaml*", "*broken.convo.yaml:3*"])
    assert "notes.yaml" not in result.stdout.str()


def test_an_unreachable_homeserver_fails_the_item_as_infrastructure(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "account.yaml").write_text(
        'user: "@tester:localhost"\npassword: "secret"\n'
        'homeserver_url: "http://127.0.0.1:9"\nuser_to_test: "@bot:localhost"\n',
        encoding="utf-8",
    )
    (pytester.path / "ping.convo.yaml").write_text(
        'messages:\n  - send: "!ping"\n    expect: pong\n', encoding="utf-8"
    )

    result = pytester.runpytest_subprocess(
        "--matrix-bot-tester",
        "--matrix-account=account.yaml",
        "--matrix-timeout=2",
        "-p",
        "no:cacheprovider",
    )

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["infrastructure: ping.convo.yaml (opening): *127.0.0.1:9*"])
    assert "secret" not in result.stdout.str()


@pytest.mark.integration
def test_xdist_workers_share_one_homeserver_and_report_each_item(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    root = copy_project(pytester)
    (root / "test_python_api.py").unlink()  # two scripts are enough for two workers
    (root / "conversations" / "commands.convo.yaml").unlink()
    (root / "conversations" / "wrong.convo.yaml").write_text(WRONG_SCRIPT, encoding="utf-8")
    basetemp = root / "tmp"

    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "-v",
        f"--basetemp={basetemp}",
        "--junitxml=report.xml",
        "-p",
        "no:cacheprovider",
    )

    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    # Two items, two workers: xdist hands them out one each.
    assert "[gw0]" in out and "[gw1]" in out
    assert "conversations/wrong.convo.yaml:3 (step 1): wrong reply" in out
    # One homeserver, in the controller's folder; no worker started its own; stopped at the end.
    shared = basetemp / "matrix-homeserver"
    assert (shared / "state.json").is_file()
    assert not list(basetemp.glob("popen-gw*/matrix-homeserver*"))
    assert hs.status(shared) is None
    # JUnit from the controller: each item once, with its own outcome.
    cases = {case.get("name"): case for case in ET.parse(root / "report.xml").iter("testcase")}
    assert set(cases) == {"ping", "wrong"}
    assert cases["ping"].find("failure") is None
    failure = cases["wrong"].find("failure")
    assert failure is not None and "transcript:" in (failure.text or "")


@pytest.mark.integration
def test_a_bot_that_fails_to_start_is_one_line_not_a_traceback(
    pytester: pytest.Pytester,
) -> None:
    root = copy_project(pytester)
    broken = root / "broken_bot.py"
    broken.write_text(
        "import sys\nprint('bot: cannot read my config', file=sys.stderr)\nsys.exit(2)\n",
        encoding="utf-8",
    )
    conftest = root / "conftest.py"
    text = conftest.read_text(encoding="utf-8")
    bot_line = f"BOT = Path({str(EXAMPLES / 'command_bot.py')!r})"
    conftest.write_text(text.replace(bot_line, f"BOT = Path({str(broken)!r})"), encoding="utf-8")

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "ping")

    output = result.stdout.str()
    assert "exited with status 2 before printing 'ready'" in output
    assert "cannot read my config" in output
    assert "pytest_plugin.py" not in output  # no traceback through the plugin
