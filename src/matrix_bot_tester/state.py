"""Remembered logins: the access token and device of each test account, reused across runs.

Logging in on every run piles up devices on the test account and meets
Synapse's login rate limit (the 6th login in about five minutes gets a 429).
So the first password login's token and device ID are kept in a state file
that only its owner may read, and later runs reuse them.

Entries are keyed by homeserver, user and a salted hash of the password, so
changing the password in the account file means a fresh login (and a wrong
password is still noticed). The password itself is never stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matrix_bot_tester.errors import InputError

ENV_VAR = "MATRIX_BOT_TESTER_STATE"


def default_path() -> Path:
    """``$MATRIX_BOT_TESTER_STATE``, else ``$XDG_STATE_HOME/matrix-bot-tester/logins.json``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "matrix-bot-tester" / "logins.json"


@dataclass(frozen=True)
class StoredLogin:
    access_token: str
    device_id: str

    def __repr__(self) -> str:
        return f"StoredLogin(access_token=<hidden>, device_id={self.device_id!r})"


class LoginStore:
    """A JSON file of logins, read and written under a lock, mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def check(self) -> None:
        """Refuse a state file that others may read, or that is not one, before anything
        is sent."""
        self._check_private()
        self._read()

    def _check_private(self) -> None:
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            raise InputError(
                f"cannot read the login state file: {exc.strerror}", path=str(self.path)
            ) from None
        if not stat.S_ISREG(mode):
            raise InputError("the login state file is not a regular file", path=str(self.path))
        if mode & 0o077:
            self._read()  # another file given by mistake is named as such, not chmod-ed
            raise InputError(
                "the login state file holds access tokens but others may read it",
                path=str(self.path),
                hint=f"chmod 600 {self.path}, or delete it to start afresh",
            )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The file's data, locked against other runs; written back atomically on exit."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._check_private()
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self._read()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                self._write(data)
        finally:
            os.close(fd)

    def _read(self) -> dict[str, Any]:
        """The file's logins; an empty or missing file has none.

        A file that is not a login state file is refused rather than replaced:
        this tool writes it whole (atomically), so anything else there is most
        likely another file given by mistake (``--state-file account.yaml``).
        Entries it cannot use are skipped: they only cost a fresh login.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except (OSError, ValueError):  # unreadable, or not UTF-8
            raise self._not_ours() from None
        if not text.strip():
            return {"salt": secrets.token_hex(16), "logins": {}}
        try:
            data = json.loads(text)
        except ValueError:
            raise self._not_ours() from None
        if not isinstance(data, dict) or not isinstance(data.get("logins"), dict):
            raise self._not_ours()
        data.setdefault("salt", secrets.token_hex(16))
        return data

    def _not_ours(self) -> InputError:
        return InputError(
            "this is not a login state file of matrix-bot-tester; it was left as it is",
            path=str(self.path),
            hint="give --state-file a path of its own (the default needs none)",
        )

    def _write(self, data: dict[str, Any]) -> None:
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".logins.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    @staticmethod
    def _key(data: dict[str, Any], homeserver: str, user: str, password: str) -> str:
        digest = hashlib.sha256(
            f"{data['salt']}\0{homeserver}\0{user}\0{password}".encode()
        ).hexdigest()
        return digest[:32]

    def get(self, homeserver: str, user: str, password: str) -> StoredLogin | None:
        with self._locked() as data:
            entry = data["logins"].get(self._key(data, homeserver, user, password))
        if not isinstance(entry, dict):
            return None
        token, device = entry.get("access_token"), entry.get("device_id")
        if isinstance(token, str) and isinstance(device, str):
            return StoredLogin(token, device)
        return None

    def put(self, homeserver: str, user: str, password: str, login: StoredLogin) -> None:
        with self._locked() as data:
            logins = data["logins"]
            # One entry per account: a changed password replaces the old one.
            for key, entry in list(logins.items()):
                if isinstance(entry, dict) and entry.get("who") == f"{user} at {homeserver}":
                    del logins[key]
            logins[self._key(data, homeserver, user, password)] = {
                "who": f"{user} at {homeserver}",
                "access_token": login.access_token,
                "device_id": login.device_id,
            }

    def forget(self, homeserver: str, user: str, password: str) -> None:
        with self._locked() as data:
            data["logins"].pop(self._key(data, homeserver, user, password), None)
