"""The published JSON Schema of script files, generated from the language's models.

Editors use it to complete and check scripts; ``docs/script.schema.json`` is
a copy that a test keeps equal to what this module generates. The JSON
report's schema (``report_schema``) is published the same way.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel

from matrix_bot_tester.language import ScriptFile

SCHEMA_ID = "https://matrix-bot-tester.invalid/script.schema.json"


def published_schema(
    model: type[BaseModel],
    *,
    schema_id: str,
    title: str,
    mode: Literal["validation", "serialization"] = "validation",
) -> dict[str, Any]:
    """A model's JSON Schema as we publish it: draft 2020-12, with an ``$id`` and a title."""
    schema = model.model_json_schema(mode=mode)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id,
        "title": title,
        **{k: v for k, v in schema.items() if k != "title"},
    }


def schema_text(schema: dict[str, Any]) -> str:
    """The text of a published schema file: stable key order, so diffs show real changes."""
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def script_schema() -> dict[str, Any]:
    return published_schema(ScriptFile, schema_id=SCHEMA_ID, title="matrix-bot-tester script")


def script_schema_text() -> str:
    return schema_text(script_schema())
