"""Run the real command in a real process, so exit codes and output are what users see."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
# The original tool's own test files, copied byte for byte from the seed.
SEED = REPO / "tests" / "data" / "original"

# make_account(user_to_test=None, user=None, password=None, url=None) -> account file path
AccountFactory = Callable[..., Path]


@dataclass(frozen=True)
class CliRun:
    code: int
    stdout: str
    stderr: str
    seconds: float


def run_cli(*args: str | Path, timeout: float = 90, cwd: Path | None = None) -> CliRun:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "matrix_bot_tester", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )
    return CliRun(done.returncode, done.stdout, done.stderr, time.monotonic() - began)


def start_cli(*args: str | Path) -> subprocess.Popen[str]:
    """The command in the background, for the two sides of a conversation at once."""
    return subprocess.Popen(
        [sys.executable, "-m", "matrix_bot_tester", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def cli_in_background(*args: str | Path) -> Iterator[subprocess.Popen[str]]:
    """start_cli, and the process killed on the way out if the test left it running."""
    process = start_cli(*args)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def finish(process: subprocess.Popen[str], timeout: float = 90) -> CliRun:
    began = time.monotonic()
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(
            f"the command did not finish within {timeout} s:\n{stdout}{stderr}"
        ) from None
    return CliRun(process.returncode, stdout, stderr, time.monotonic() - began)


def write_script(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def matrix_request(
    base_url: str, token: str, method: str, path: str, body: object | None = None
) -> dict[str, object]:
    """A plain client-server API call, for setting the scene outside the tester."""
    import json
    import urllib.request

    request = urllib.request.Request(
        base_url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method=method,
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        answer = json.load(response)
    assert isinstance(answer, dict)
    return answer


def wait_until(probe: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a condition with a deadline (the test's own scene-setting, not the tester)."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def public_room_with_bot(
    base_url: str, token: str, bot: str, server_name: str, timeout: float = 30
) -> tuple[str, str]:
    """A new public room with an alias, created by ``token``'s user, once ``bot`` has joined.

    Returns the room ID and the alias, for scripts and commands that name a room.
    """
    import uuid

    alias_local = f"bots-{uuid.uuid4().hex[:8]}"
    created = matrix_request(
        base_url,
        token,
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "public_chat", "room_alias_name": alias_local, "invite": [bot]},
    )
    room_id = str(created["room_id"])

    def bot_joined() -> bool:
        members = matrix_request(
            base_url, token, "GET", f"/_matrix/client/v3/rooms/{room_id}/joined_members"
        )["joined"]
        return isinstance(members, dict) and bot in members

    wait_until(bot_joined, timeout, f"{bot} to join the public room")
    return room_id, f"#{alias_local}:{server_name}"
