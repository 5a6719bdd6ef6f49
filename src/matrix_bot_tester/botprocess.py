"""Run a bot as a child process and know when it is ready to talk.

The demo and the test fixtures start bots this way. A bot announces that it is
listening by printing one agreed line (``ready``) on stdout; we wait for that
line with a deadline instead of sleeping and hoping. Its output is drained
continuously by reader threads (a full pipe would freeze the bot), and the last
lines are kept so that a bot that dies or hangs can be diagnosed from the error
alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from matrix_bot_tester.errors import InfrastructureError

TAIL_LINES = 40  # how much output an error message quotes
_READER_JOIN_TIMEOUT = 2.0  # a grandchild may hold the pipe open; don't wait on it


class BotProcess:
    """A running bot; stop it with ``stop()`` or by leaving a ``with`` block."""

    def __init__(self, popen: subprocess.Popen[str], name: str, ready_line: str) -> None:
        self.name = name
        self._popen = popen
        self._ready_line = ready_line
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._changed = threading.Condition()  # guards everything below
        self._ready = False
        self._open_streams = 0
        self._readers: list[threading.Thread] = []
        for stream, is_stdout in ((popen.stdout, True), (popen.stderr, False)):
            if stream is None:
                continue
            self._open_streams += 1
            reader = threading.Thread(
                target=self._read, args=(stream, is_stdout), name=f"{name}-reader", daemon=True
            )
            self._readers.append(reader)
            reader.start()

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit status, or None while the bot runs (negative: killed by that signal)."""
        return self._popen.poll()

    def output(self) -> list[str]:
        """The last lines the bot wrote, stdout and stderr interleaved as they came."""
        with self._changed:
            return list(self._tail)

    def _read(self, stream: IO[str], is_stdout: bool) -> None:
        try:
            for raw in stream:
                line = raw.rstrip("\r\n")
                with self._changed:
                    self._tail.append(line)
                    if is_stdout and line == self._ready_line:
                        self._ready = True
                    self._changed.notify_all()
        except (OSError, ValueError):
            pass  # the pipe was closed under us by stop()
        finally:
            with self._changed:
                self._open_streams -= 1
                self._changed.notify_all()

    def wait_ready(self, timeout: float) -> None:
        """Block until the bot prints its ready line on stdout; stop it and raise if it can't."""
        ready_line = self._ready_line
        with self._changed:
            # EOF on every stream means the bot is gone (or has closed its
            # output, which leaves us no way to hear "ready" either).
            done = self._changed.wait_for(lambda: self._ready or self._open_streams == 0, timeout)
            if self._ready:
                return
        if done:
            status = self._wait_exit(_READER_JOIN_TIMEOUT)
            how = "closed its output" if status is None else _describe_exit(status)
            self.stop()
            problem = f"{how} before printing {ready_line!r}"
        else:
            self.stop()
            problem = f"did not print {ready_line!r} within {timeout:g}s"
        # The quoted output usually says why (a traceback, a refused login).
        raise InfrastructureError(
            f"bot {self.name} (pid {self.pid}) {problem}{self._quoted_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit status."""
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            if self._wait_exit(timeout) is None:
                self._popen.kill()
                self._popen.wait()
        for reader in self._readers:
            reader.join(_READER_JOIN_TIMEOUT)
        for stream in (self._popen.stdout, self._popen.stderr):
            if stream is not None:
                stream.close()
        return self._popen.returncode

    def _wait_exit(self, timeout: float) -> int | None:
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def _quoted_tail(self) -> str:
        lines = self.output()
        if not lines:
            return "; it wrote nothing"
        return "; its last output:\n" + "\n".join(f"    {line}" for line in lines)

    def __enter__(self) -> BotProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<BotProcess {self.name} pid={self.pid} returncode={self.returncode}>"


def _describe_exit(status: int) -> str:
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


def start_bot(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    ready_line: str = "ready",
    timeout: float = 30.0,
) -> BotProcess:
    """Start ``python argv...`` and return once it has printed ``ready_line``.

    ``env`` is added to a copy of this process's environment (with
    PYTHONUNBUFFERED=1 unless ``env`` says otherwise, so the bot's output
    reaches us as it is written). The bot gets a session of its own, so a
    Ctrl-C in the terminal reaches us and not it: we decide when it stops.

    Raises InfrastructureError, quoting the bot's last output, if it exits or
    stays silent for ``timeout`` seconds; the bot is stopped in both cases.
    """
    command = [sys.executable, *argv]
    name = Path(argv[0]).name if argv else "python"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    try:
        popen = subprocess.Popen(
            command,
            env=full_env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        raise InfrastructureError(f"cannot start bot {name}: {exc}") from exc
    bot = BotProcess(popen, name, ready_line)
    try:
        bot.wait_ready(timeout)
    except BaseException:
        bot.stop()  # also on KeyboardInterrupt: never leave a bot behind
        raise
    return bot


__all__ = ["BotProcess", "start_bot"]
