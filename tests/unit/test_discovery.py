"""Discovery: which files ``run PATH...`` takes (files, folders, globs), without a network."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from matrix_bot_tester.discovery import discover, is_script_name
from matrix_bot_tester.errors import InputError


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("messages: [{send: hi}]\n", encoding="utf-8")


def test_the_naming_convention() -> None:
    assert is_script_name("ping.convo.yaml")
    assert is_script_name("ping.convo.yml")
    assert not is_script_name("ping.yaml")
    assert not is_script_name("greet-fragment.yaml")
    assert not is_script_name("convo.yaml.bak")


def test_a_folder_is_searched_recursively_and_sorted(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "b.convo.yaml",
        "a.convo.yml",
        "sub/deeper/c.convo.yaml",
        "sub/a.convo.yaml",
        "fragment.yaml",  # meant for include: not a script
        "notes.txt",
        ".hidden/x.convo.yaml",  # hidden folders (.git, .venv) are skipped
    )
    found = [Path(p).relative_to(tmp_path).as_posix() for p in discover([str(tmp_path)])]
    assert found == ["a.convo.yml", "b.convo.yaml", "sub/a.convo.yaml", "sub/deeper/c.convo.yaml"]


def test_a_file_named_explicitly_is_always_taken(tmp_path: Path) -> None:
    _touch(tmp_path, "ping.yaml")
    assert discover([str(tmp_path / "ping.yaml")]) == [str(tmp_path / "ping.yaml")]


def test_a_missing_file_is_left_for_the_loader_to_report(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    assert discover([missing]) == [missing]


def test_a_folder_without_scripts_is_an_input_error_naming_it(tmp_path: Path) -> None:
    _touch(tmp_path, "only-a-fragment.yaml")
    with pytest.raises(InputError) as caught:
        discover([str(tmp_path)])
    assert str(tmp_path) in str(caught.value)
    assert "no script files" in str(caught.value)
    assert "*.convo.yaml" in caught.value.one_line()
    assert caught.value.exit_code == 2


def test_a_folder_of_plainly_named_scripts_hints_at_the_glob_that_takes_them(
    tmp_path: Path,
) -> None:
    _touch(tmp_path, "ping.yaml", "echo.yaml", "notes.txt")
    with pytest.raises(InputError) as caught:
        discover([str(tmp_path)])
    assert caught.value.one_line().endswith(
        "it holds 2 other YAML files: rename them so,"
        f" or give them as {shlex.quote(str(tmp_path / '*.yaml'))})"
    )
    # The hint's pattern works as given.
    assert [Path(p).name for p in discover([str(tmp_path / "*.yaml")])] == [
        "echo.yaml",
        "ping.yaml",
    ]


def test_plainly_named_scripts_in_subfolders_get_a_glob_that_takes_them_all(
    tmp_path: Path,
) -> None:
    _touch(tmp_path, "b.yaml", "sub/a.yaml")
    with pytest.raises(InputError) as caught:
        discover([str(tmp_path)])
    pattern = str(tmp_path / "**" / "*.yaml")
    assert caught.value.one_line().endswith(f"give them as {shlex.quote(pattern)})")
    assert [Path(p).name for p in discover([pattern])] == ["b.yaml", "a.yaml"]


def test_one_plainly_named_script_is_it_not_them(tmp_path: Path) -> None:
    _touch(tmp_path, "sub/only.yml")
    with pytest.raises(InputError) as caught:
        discover([str(tmp_path)])
    assert "it holds 1 other YAML file: rename it so, or give it as" in caught.value.one_line()


def test_globs_take_what_they_match(tmp_path: Path) -> None:
    _touch(tmp_path, "one.yaml", "two.yaml", "three.txt", "dir/four.convo.yaml", "dir/five.yaml")
    found = discover([str(tmp_path / "*.yaml")])
    assert [Path(p).name for p in found] == ["one.yaml", "two.yaml"]
    found = discover([str(tmp_path / "d*")])  # a folder matched by a glob is searched
    assert [Path(p).name for p in found] == ["four.convo.yaml"]
    found = discover([str(tmp_path / "**" / "*.convo.yaml")])
    assert [Path(p).name for p in found] == ["four.convo.yaml"]


def test_a_glob_matching_nothing_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="matches no file"):
        discover([str(tmp_path / "*.convo.yaml")])


def test_a_glob_matching_nothing_says_how_patterns_are_matched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as caught:
        discover(["tests/*.convo.yaml"])
    assert caught.value.one_line() == (
        "tests/*.convo.yaml: the pattern matches no file (hint: check the pattern; '**' also"
        f" looks in subfolders, e.g. 'tests/**/*.convo.yaml'; it is matched from {tmp_path})"
    )
    assert caught.value.exit_code == 2


def test_on_error_reports_a_bad_argument_and_takes_the_others(tmp_path: Path) -> None:
    _touch(tmp_path, "a.convo.yaml")
    errors: list[InputError] = []
    found = discover([str(tmp_path / "*.nope"), str(tmp_path)], on_error=errors.append)
    assert found == [str(tmp_path / "a.convo.yaml")]
    assert [e.one_line().split(" (hint")[0] for e in errors] == [
        f"{tmp_path / '*.nope'}: the pattern matches no file"
    ]


def test_each_file_is_taken_once_in_the_order_given(tmp_path: Path) -> None:
    _touch(tmp_path, "z.convo.yaml", "a.convo.yaml")
    z = str(tmp_path / "z.convo.yaml")
    found = discover([z, str(tmp_path), z])
    assert found == [z, str(tmp_path / "a.convo.yaml")]
