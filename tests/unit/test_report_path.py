"""check_report_path: a report that could not be written is refused before anything is sent."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from matrix_bot_tester.errors import InputError
from matrix_bot_tester.report import check_report_path, write_atomically

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


# ------------------------------------------------ writing: links and special files


def test_a_symlinked_report_writes_its_target_and_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "reports" / "real.json"
    real.parent.mkdir()
    real.write_text("old", encoding="utf-8")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    check_report_path(link, "the --json report")
    write_atomically(link, "new")
    assert link.is_symlink()
    assert real.read_text(encoding="utf-8") == "new"


def test_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "made.json")
    write_atomically(link, "new")
    assert link.is_symlink()
    assert (tmp_path / "made.json").read_text(encoding="utf-8") == "new"


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="needs /dev/null")
def test_a_device_is_written_into_not_replaced() -> None:
    check_report_path("/dev/null", "the --json report")
    write_atomically("/dev/null", "anything")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # still the device


def test_a_fifo_with_a_reader_gets_the_report_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text(encoding="utf-8")))
    reader.start()
    try:
        # The reader thread may not have opened its end yet: retry until it has.
        deadline = time.monotonic() + 10
        while True:
            try:
                write_atomically(fifo, "the report")
                break
            except InputError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)  # waiting for the reader's open(), bounded by the deadline
    finally:
        reader.join(timeout=10)
    assert received == ["the report"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_fifo_nobody_reads_is_an_error_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError) as caught:
        write_atomically(fifo, "the report")
    assert "nothing reads from it" in caught.value.one_line()
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
