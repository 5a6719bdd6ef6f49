"""Selection: -k by name or path, -m by tags, --rerun-failed from the last run's file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from matrix_bot_tester.discovery import (
    failed_last_time,
    keyword_matcher,
    last_run_text,
    resolved,
    select,
    tag_matcher,
)
from matrix_bot_tester.errors import InputError

SCRIPTS = [
    ("suite/ping.convo.yaml", "ping.convo", ("smoke",)),
    ("suite/echo.convo.yaml", "echo.convo", ("smoke", "slow")),
    ("suite/help.convo.yaml", "help.convo", ()),
    ("other/Threads.convo.yaml", "Threads.convo", ("slow",)),
]


@pytest.mark.parametrize(
    ("expression", "kept"),
    [
        ("ping", [0]),
        ("PING", [0]),  # case-insensitive, as pytest
        ("h", [1, 2, 3]),  # substrings of the name ...
        ("other", [3]),  # ... or of the path
        ("not ping", [1, 2, 3]),
        ("ping or help", [0, 2]),
        ("suite and not (ping or echo)", [2]),
        ("thread", [3]),
    ],
)
def test_keyword(expression: str, kept: list[int]) -> None:
    assert select(SCRIPTS, keyword=expression) == kept


@pytest.mark.parametrize(
    ("expression", "kept"),
    [
        ("smoke", [0, 1]),
        ("slow", [1, 3]),
        ("smoke and not slow", [0]),
        ("not smoke", [2, 3]),
        ("smok", []),  # tags match whole
    ],
)
def test_tags(expression: str, kept: list[int]) -> None:
    assert select(SCRIPTS, tags=expression) == kept


def test_keyword_and_tags_together() -> None:
    assert select(SCRIPTS, keyword="suite", tags="slow") == [1]


@pytest.mark.parametrize("expression", ["", "ping and", "(ping", "ping)", "and ping", "a b"])
def test_malformed_expressions_are_input_errors(expression: str) -> None:
    with pytest.raises(InputError) as caught:
        keyword_matcher(expression)
    assert caught.value.exit_code == 2
    assert caught.value.one_line().startswith("-k ")
    with pytest.raises(InputError):
        tag_matcher(expression)


def test_rerun_failed_takes_everything_that_did_not_pass(tmp_path: Path) -> None:
    paths = [str(tmp_path / f"{n}.convo.yaml") for n in ("a", "b", "c", "d", "e")]
    outcomes = ["passed", "failed", "error", "not run", "interrupted"]
    text = last_run_text([(p, Path(p).stem, o) for p, o in zip(paths, outcomes, strict=True)])
    assert json.loads(text)["version"] == 1
    failed = failed_last_time(text, "last-run.json")
    # A script that never ran has not passed either (after -x, Ctrl-C, a bot not ready).
    assert failed == {resolved(p) for p in paths[1:]}
    scripts = [(p, Path(p).stem, ()) for p in paths]
    assert select(scripts, only_paths=failed) == [1, 2, 3, 4]


def test_a_failure_left_out_of_a_filtered_run_is_still_rerun(tmp_path: Path) -> None:
    """-k ping after a failing echo must not make --rerun-failed forget echo."""
    ping, echo, gone = (tmp_path / f"{n}.convo.yaml" for n in ("ping", "echo", "gone"))
    for path in (ping, echo):
        path.write_text("messages: []\n", encoding="utf-8")
    first = last_run_text(
        [
            (str(ping), "ping", "failed"),
            (str(echo), "echo", "failed"),
            (str(gone), "gone", "failed"),
        ]
    )
    then = last_run_text([(str(ping), "ping", "passed")], first)  # run -k ping
    assert failed_last_time(then, "f") == {resolved(str(echo))}  # gone no longer exists
    again = last_run_text([(str(echo), "echo", "passed")], then)  # the re-run passes
    assert failed_last_time(again, "f") == set()
    assert last_run_text([(str(echo), "echo", "passed")], "{broken") == last_run_text(
        [(str(echo), "echo", "passed")]
    )


def test_relative_and_absolute_paths_are_the_same_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = last_run_text([("dir/x.convo.yaml", "x", "failed")])
    failed = failed_last_time(text, "f")
    assert select([(str(tmp_path / "dir/x.convo.yaml"), "x", ())], only_paths=failed) == [0]


@pytest.mark.parametrize("text", ["", "{", "[]", '{"results": 3}', '{"results": [1]}'])
def test_an_unreadable_last_run_file_is_an_input_error(text: str) -> None:
    with pytest.raises(InputError, match="cannot be read"):
        failed_last_time(text, ".matrix-bot-tester/last-run.json")
