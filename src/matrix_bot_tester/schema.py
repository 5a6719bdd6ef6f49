"""The published JSON Schema of script files, generated from the language's models.

Editors use it to complete and check scripts; ``docs/script.schema.json`` is
a copy that a test keeps equal to what this module generates.
"""

from __future__ import annotations

import json
from typing import Any

from matrix_bot_tester.language import ScriptFile

SCHEMA_ID = "https://matrix-bot-tester.invalid/script.schema.json"


def script_schema() -> dict[str, Any]:
    schema = ScriptFile.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "matrix-bot-tester script",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def script_schema_text() -> str:
    return json.dumps(script_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
