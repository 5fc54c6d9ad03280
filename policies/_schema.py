"""The published JSON Schema of the policy file, generated from the pydantic model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from policies._model import Policy

#: The version of the policy format; bumped on any incompatible change.
SCHEMA_VERSION: Final = 1
SCHEMA_ID: Final = f"urn:accord:schema:policy:v{SCHEMA_VERSION}"
#: Where the schema is published in the source tree.
SCHEMA_PATH: Final = (
    Path(__file__).resolve().parent / "schema" / f"policy-v{SCHEMA_VERSION}.schema.json"
)


def policy_json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of the policy file."""
    schema = Policy.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"Accord sharing policy, format version {SCHEMA_VERSION}",
        "description": (
            "An agency's declared sharing policy, written as TOML. Default deny; "
            "prohibitions override permissions. See docs/policy.md."
        ),
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def policy_schema_text() -> str:
    """Return the schema as published: indented JSON with a final newline."""
    return json.dumps(policy_json_schema(), indent=2, ensure_ascii=False) + "\n"
