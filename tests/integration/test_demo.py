"""The README's first command: the demo runs end to end on a machine with only Python."""

from __future__ import annotations

import pytest
from clirun import EXAMPLES, run_cli

pytestmark = pytest.mark.integration


def test_demo_runs_the_examples_and_shows_the_meant_failure() -> None:
    run = run_cli("demo", timeout=240)
    assert run.code == 0, run.stdout + run.stderr
    names = sorted(path.stem for path in (EXAMPLES / "conversations").glob("*.yaml"))
    meant_to_fail = [name for name in names if name.startswith("wrong-")]
    assert meant_to_fail == ["wrong-answer"]
    for name in names:
        verdict = "FAIL" if name in meant_to_fail else "PASS"
        assert f"{verdict} {name}" in run.stdout, name
    assert f"{len(names) - 1} passed, 1 failed" in run.stdout
    assert "Demo finished as expected" in run.stdout
