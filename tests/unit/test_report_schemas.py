"""The JSON and JUnit reports against their published schemas (docs/report.schema.json, junit.xsd).

The results are the ones test_report.py builds (passed, failed, silent, error,
interrupted, not run), plus bodies that XML and UTF-8 find hard: control
characters, ``]]>``, astral-plane emoji and a lone surrogate.
"""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import xmlschema
from fakes import ME
from pydantic import BaseModel
from rich.console import Console
from test_report import (
    all_results,
    error_result,
    failed_result,
    interrupted_result,
    not_run_result,
    passed_result,
    silent_result,
)

from matrix_bot_tester.matching import Message
from matrix_bot_tester.report import ConsoleReporter, json_report, junit_xml, write_atomically
from matrix_bot_tester.report_schema import (
    ConversationReport,
    FailureReport,
    MessageReport,
    StepReport,
    TranscriptEntryReport,
    report_schema,
    report_schema_text,
)
from matrix_bot_tester.result import (
    ConversationResult,
    Failure,
    Outcome,
    StepResult,
    TranscriptEntry,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
JSON_SCHEMA_FILE = DOCS / "report.schema.json"
JUNIT_XSD = DOCS / "junit.xsd"

# What XML 1.0 and UTF-8 cannot carry as they are, and what a CDATA section could not.
HARD_BODY = "\x1b[31mred\x1b[0m\x07 ]]> <b>&amp;</b> 🦜🏳️‍🌈 \ud83d tail"


def hard_result() -> ConversationResult:
    return failed_result(received=HARD_BODY)


RESULTS = {
    "passed": passed_result,
    "failed": failed_result,
    "silent": silent_result,
    "error": error_result,
    "interrupted": interrupted_result,
    "not run": not_run_result,
    "hard characters": hard_result,
}


@pytest.fixture(scope="module")
def json_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(JSON_SCHEMA_FILE.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def junit_schema() -> xmlschema.XMLSchema10:
    return xmlschema.XMLSchema10(str(JUNIT_XSD))


def problems(validator: jsonschema.protocols.Validator, document: Any) -> list[str]:
    """Every error, with those behind an anyOf (a field that may be null) spelt out."""
    found = []
    pending = list(validator.iter_errors(document))
    while pending:
        error = pending.pop(0)
        found.append(f"{'/'.join(map(str, error.absolute_path))}: {error.message}")
        pending.extend(error.context or ())
    return found


# ------------------------------------------------------------------ JSON schema


def test_schema_file_is_what_the_models_generate() -> None:
    assert JSON_SCHEMA_FILE.read_text(encoding="utf-8") == report_schema_text(), (
        "docs/report.schema.json is stale: run"
        " 'python -m matrix_bot_tester.report_schema > docs/report.schema.json'"
    )


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(report_schema())


def test_every_field_of_the_schema_is_described() -> None:
    schema = report_schema()
    objects = {"JsonReport": schema, **schema["$defs"]}
    undescribed = [
        f"{name}.{field}"
        for name, definition in objects.items()
        for field, spec in definition.get("properties", {}).items()
        if "description" not in spec
    ]
    assert undescribed == []


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (ConversationReport, ConversationResult),
        (StepReport, StepResult),
        (TranscriptEntryReport, TranscriptEntry),
        (FailureReport, Failure),
        (MessageReport, Message),
    ],
)
def test_every_result_field_is_in_the_report(model: type[BaseModel], data: type) -> None:
    """A field added to a result reaches the JSON report only through its model: add it there."""
    fields = {field.name for field in dataclasses.fields(data)}
    missing = sorted(fields - set(model.model_fields))
    assert missing == [], (
        f"{data.__name__} has fields that {model.__name__} (report_schema.py) lacks: add"
        " them with a description to the model, then regenerate docs/report.schema.json"
    )
    # A model field with no result field behind it must have a default (older results).
    assert all(
        not model.model_fields[name].is_required() for name in set(model.model_fields) - fields
    )


@pytest.mark.parametrize("kind", list(RESULTS))
def test_a_report_of_each_outcome_fits_the_schema(
    kind: str, json_validator: jsonschema.protocols.Validator
) -> None:
    document = json.loads(json_report([RESULTS[kind]()], 1.0, 0))
    assert problems(json_validator, document) == []


def test_a_whole_run_fits_the_schema(json_validator: jsonschema.protocols.Validator) -> None:
    document = json.loads(json_report([*all_results(), silent_result()], 3.0, 130))
    assert problems(json_validator, document) == []
    assert {c["outcome"] for c in document["conversations"]} == {o.value for o in Outcome}


def test_the_schema_refuses_what_the_report_never_writes(
    json_validator: jsonschema.protocols.Validator,
) -> None:
    document = json.loads(json_report([failed_result()], 1.0, 1))
    conversation = document["conversations"][0]
    conversation["outcome"] = "passd"
    del conversation["steps"][0]["latency"]
    conversation["failure"]["surprise"] = True
    found = problems(json_validator, document)
    assert any("'passd' is not one of" in line for line in found)
    assert any("'latency' is a required property" in line for line in found)
    assert any("'surprise' was unexpected" in line for line in found)


def test_a_report_with_hard_characters_is_written_and_read_back(tmp_path: Path) -> None:
    # A lone surrogate cannot be encoded as UTF-8: it is written as a JSON escape.
    path = tmp_path / "report.json"
    write_atomically(path, json_report([hard_result()], 1.0, 1))
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["conversations"][0]["failure"]["received"]["body"] == HARD_BODY
    assert "🦜" in path.read_text(encoding="utf-8")  # readable, not escaped


# ------------------------------------------------------------------------ JUnit


def test_the_junit_xsd_is_a_valid_schema(junit_schema: xmlschema.XMLSchema10) -> None:
    assert junit_schema.validity == "valid"


@pytest.mark.parametrize("kind", list(RESULTS))
def test_junit_of_each_outcome_fits_the_xsd(kind: str, junit_schema: xmlschema.XMLSchema10) -> None:
    junit_schema.validate(junit_xml([RESULTS[kind]()], 1.0))


def test_junit_of_a_whole_run_fits_the_xsd_and_counts_add_up(
    junit_schema: xmlschema.XMLSchema10,
) -> None:
    text = junit_xml([*all_results(), silent_result(), hard_result()], 3.0)
    junit_schema.validate(text)
    suite = ET.fromstring(text)
    # What XSD 1.0 cannot say: the counts are the test cases'.
    found = {
        kind: sum(case.find(kind) is not None for case in suite.iter("testcase"))
        for kind in ("failure", "error", "skipped")
    }
    assert suite.get("tests") == str(len(suite.findall("testcase"))) == "7"
    assert suite.get("failures") == str(found["failure"]) == "3"
    assert suite.get("errors") == str(found["error"]) == "2"
    assert suite.get("skipped") == str(found["skipped"]) == "1"


def test_junit_failure_body_has_the_story_and_errors_are_not_failures(
    junit_schema: xmlschema.XMLSchema10,
) -> None:
    text = junit_xml([failed_result(), error_result(), interrupted_result()], 2.0)
    junit_schema.validate(text)
    cases = {case.get("name"): case for case in ET.fromstring(text).iter("testcase")}
    failure = cases["client-replay"].find("failure")
    assert failure is not None
    assert failure.get("message") == "wrong reply"
    body = failure.text or ""
    for part in ("scripts/client-replay.yaml:4 (step 2)", "expected: 'Baz'", "- expected"):
        assert part in body
    assert "transcript:" in body and f"→ {ME}: Foo" in body
    error = cases["unreachable"].find("error")
    assert error is not None and error.get("type") == "error"
    assert cases["unreachable"].find("failure") is None
    interrupted = cases["long"].find("error")
    assert interrupted is not None and interrupted.get("type") == "interrupted"


def test_junit_keeps_hard_characters_readable(
    tmp_path: Path, junit_schema: xmlschema.XMLSchema10
) -> None:
    path = tmp_path / "junit.xml"
    write_atomically(path, junit_xml([hard_result()], 1.0))
    junit_schema.validate(str(path))
    case = ET.parse(path).getroot().find("testcase")
    assert case is not None
    out = case.findtext("system-out") or ""
    story = case.findtext("failure") or ""
    # Control characters and the lone surrogate become visible escapes; the rest stays.
    assert "\\x1b[31mred\\x1b[0m\\x07" in story and "\\x1b[31mred" in out
    assert "]]> <b>&amp;</b> 🦜🏳️‍🌈 \\ud83d tail" in story


def test_junit_suite_carries_when_the_run_started(junit_schema: xmlschema.XMLSchema10) -> None:
    text = junit_xml([not_run_result(), passed_result()], 1.0)
    junit_schema.validate(text)
    assert ET.fromstring(text).get("timestamp") == "2026-01-01T00:00:00+00:00"


def test_the_console_prints_hard_characters_without_crashing(tmp_path: Path) -> None:
    # Regression: a lone surrogate in a reply made the failure's story unprintable.
    path = tmp_path / "console.txt"
    with path.open("w", encoding="utf-8", errors="strict") as handle:
        console = Console(file=handle, width=200)
        ConsoleReporter(console, console, verbose=True).conversation_finished(hard_result())
    printed = path.read_text(encoding="utf-8")
    assert "🦜🏳️‍🌈 \\ud83d tail" in printed
