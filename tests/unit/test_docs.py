"""The documentation is tested like code: its YAML loads, its schema is current, examples validate.

Every ```yaml block of docs/script-language.md is a complete script or
fragment. A block whose first line is ``# file: NAME`` is also written under
that name beside the others, so that ``include`` finds it. A block with a
line ``# expect-error: TEXT`` is deliberately broken: loading it must fail
with an InputError containing TEXT.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from matrix_bot_tester.errors import InputError
from matrix_bot_tester.schema import script_schema, script_schema_text
from matrix_bot_tester.script import load_script

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
LANGUAGE_PAGE = DOCS / "script-language.md"
SCHEMA_FILE = DOCS / "script.schema.json"
EXAMPLE_SCRIPTS = sorted((REPO / "examples" / "conversations").glob("*.yaml"))

_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)
_FILE_NAME = re.compile(r"^# file: (\S+)$", re.MULTILINE)
_EXPECT_ERROR = re.compile(r"^# expect-error: (.+)$", re.MULTILINE)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def yaml_blocks() -> list[tuple[int, str]]:
    """``(line, text)`` of every yaml block of the language page."""
    page = LANGUAGE_PAGE.read_text(encoding="utf-8")
    return [(page.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(page)]


BLOCKS = yaml_blocks()
WELL_FORMED = [(line, text) for line, text in BLOCKS if not _EXPECT_ERROR.search(text)]


def _files_sent(data: Any) -> list[str]:
    """The paths of ``send: {file: ...}`` in a block, to create beside it."""
    found: list[str] = []
    if isinstance(data, dict):
        send = data.get("send")
        if isinstance(send, dict) and isinstance(send.get("file"), str):
            found.append(send["file"])
        for value in data.values():
            found.extend(_files_sent(value))
    elif isinstance(data, list):
        for item in data:
            found.extend(_files_sent(item))
    return found


def _set_the_scene(text: str, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The files and environment a block refers to: other blocks, attachments, ${ENV}."""
    for _, other in BLOCKS:
        named = _FILE_NAME.match(other)
        if named:
            (directory / named.group(1)).write_text(other, encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    for name in _files_sent(data):
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"\x89PNG\r\n\x1a\n")
    for name in _ENV.findall(text):
        monkeypatch.setenv(name, f"value of {name}")


def test_the_page_has_many_yaml_blocks() -> None:
    """A guard against a broken block pattern, which would test nothing."""
    assert len(BLOCKS) > 40
    assert sum(1 for _, text in BLOCKS if _EXPECT_ERROR.search(text)) >= 3
    assert any(_FILE_NAME.match(text) for _, text in BLOCKS)


@pytest.mark.parametrize(("line", "text"), BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_yaml_block_loads(
    line: int, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set_the_scene(text, tmp_path, monkeypatch)
    named = _FILE_NAME.match(text)
    path = tmp_path / (named.group(1) if named else f"block-{line}.yaml")
    path.write_text(text, encoding="utf-8")
    expected_error = _EXPECT_ERROR.search(text)
    if expected_error:
        with pytest.raises(InputError) as caught:
            load_script(path)
        assert expected_error.group(1) in str(caught.value)
        assert caught.value.exit_code == 2
        assert str(caught.value).startswith(f"{path}:")
        return
    script = load_script(path)
    assert script.steps


@pytest.mark.parametrize(
    ("line", "text"), WELL_FORMED, ids=[f"line{line}" for line, _ in WELL_FORMED]
)
def test_yaml_block_fits_the_schema(line: int, text: str) -> None:
    """What the page shows, an editor accepts too (the broken examples aside)."""
    validator = jsonschema.Draft202012Validator(script_schema())
    errors = [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(yaml.safe_load(text))
    ]
    assert errors == []


def test_schema_file_is_what_the_command_prints() -> None:
    """docs/script.schema.json is regenerated with: matrix-bot-tester schema > docs/..."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == script_schema_text(), (
        "docs/script.schema.json is stale: run 'matrix-bot-tester schema > docs/script.schema.json'"
    )


def test_schema_is_a_valid_json_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_schema_rejects_what_the_loader_rejects() -> None:
    """Spot checks that the schema is strict where editors help most: keys and shapes."""
    validator = jsonschema.Draft202012Validator(script_schema())
    assert validator.is_valid({"messages": [{"send": "!ping", "expect": "pong"}]})
    for wrong in (
        {},
        {"messages": []},
        {"messages": [{"send": "!ping", "expct": "pong"}]},
        {"messages": [{"send": "!ping", "expect": {"body": {"exactly": "pong"}}}]},
        {"messages": [{"react": {"to": "x"}}]},
        {"messages": [{"send": "hi", "timeout": -1}]},
        {"timeout": "10", "messages": [{"send": "hi"}]},
    ):
        assert not validator.is_valid(wrong), wrong


def test_there_are_example_scripts() -> None:
    names = {path.name for path in EXAMPLE_SCRIPTS}
    assert {"ping.yaml", "echo.yaml", "help.yaml", "wrong-answer.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLE_SCRIPTS, ids=lambda path: path.name)
def test_example_script_loads_and_fits_the_schema(path: Path) -> None:
    assert load_script(path).steps
    validator = jsonschema.Draft202012Validator(script_schema())
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(data)
    ]
    assert errors == []
