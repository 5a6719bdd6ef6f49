"""The README's first command: the demo runs end to end on a machine with only Python."""

from __future__ import annotations

import pytest
from clirun import run_cli

pytestmark = pytest.mark.integration


def test_demo_runs_the_examples_and_shows_the_meant_failure() -> None:
    run = run_cli("demo", timeout=180)
    assert run.code == 0, run.stdout + run.stderr
    for name in ("echo", "help", "ping"):
        assert f"PASS {name}" in run.stdout
    assert "FAIL wrong-answer" in run.stdout
    assert "3 passed, 1 failed" in run.stdout
    assert "Demo finished as expected" in run.stdout
