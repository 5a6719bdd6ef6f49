"""check_report_path: a report that could not be written is refused before anything is sent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from matrix_bot_tester.errors import InputError
from matrix_bot_tester.report import check_report_path

PROC = Path("/proc")


@pytest.mark.skipif(not PROC.is_dir(), reason="needs Linux's /proc")
def test_a_folder_that_takes_no_new_file_is_refused_even_for_root() -> None:
    # /proc passes os.access(W_OK) for root, yet no file can be created in it.
    with pytest.raises(InputError) as caught:
        check_report_path(PROC / "nope.json", "the --json report")
    assert caught.value.exit_code == 2
    line = caught.value.one_line()
    assert line.startswith("/proc/nope.json: the --json report cannot be written there")
    assert "/proc is not a writable folder" in line


def test_a_writable_folder_passes_and_is_left_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "other.txt").write_text("x", encoding="utf-8")
    check_report_path(tmp_path / "report.json", "the --json report")
    assert os.listdir(tmp_path) == ["other.txt"]  # no report, no probe left behind


def test_missing_folders_are_not_created_by_the_check(tmp_path: Path) -> None:
    check_report_path(tmp_path / "a" / "b" / "report.xml", "the --junit-xml report")
    assert os.listdir(tmp_path) == []


def test_a_file_in_the_way_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "reports").write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="cannot be written there"):
        check_report_path(tmp_path / "reports" / "result.json", "the --json report")


@pytest.mark.parametrize(
    ("what", "example"),
    [
        ("the --junit-xml report", "result.xml"),
        ("the --json report", "result.json"),
        ("the --html report", "result.html"),
        ("the -o file", "recorded.convo.yaml"),
        ("the --events-json file", "events.json"),
    ],
)
def test_a_folder_given_as_the_path_gets_an_example_of_its_own_kind(
    tmp_path: Path, what: str, example: str
) -> None:
    with pytest.raises(InputError) as caught:
        check_report_path(tmp_path, what)
    assert caught.value.one_line() == (
        f"{tmp_path}: {what} path is a directory"
        f" (hint: give a file name inside it, e.g. {tmp_path / example})"
    )
