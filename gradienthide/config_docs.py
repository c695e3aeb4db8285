"""docs/configuration.md, written from the config schema: every key with its type, default and
description (`gradienthide config-docs -o docs/configuration.md`)."""

from __future__ import annotations

import json

from gradienthide.config import load_schema

HEADER = """\
# Configuration

<!-- Written by `gradienthide config-docs -o docs/configuration.md` from
gradienthide/schemas/config.schema.yaml: edit the schema, not this page
(tests/test_config_docs.py fails when the two differ). -->

{description}

A config file (`config.yaml`, `configs/*.yaml`, or any file given with `--configfile`) is
checked against the schema before any job starts: an unknown key, a wrong type or a value out of
range stops the run with a message naming the key. Keys below are dotted paths; `[]` stands for
each entry of a list. *required* keys have no default; others without a default are optional.
"""


def _resolve(schema: dict, root: dict) -> dict:
    """`schema` with its $ref replaced by the referenced definition (its own keys win)."""
    while "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _number_bounds(schema: dict) -> str:
    low = [f"≥ {schema['minimum']}"] if "minimum" in schema else []
    low += [f"> {schema['exclusiveMinimum']}"] if "exclusiveMinimum" in schema else []
    high = [f"≤ {schema['maximum']}"] if "maximum" in schema else []
    high += [f"< {schema['exclusiveMaximum']}"] if "exclusiveMaximum" in schema else []
    return ", ".join(low + high)


def type_text(schema: dict, root: dict) -> str:
    """A short reading of what the schema accepts, e.g. `integer ≥ 1 or list of integer ≥ 1`."""
    schema = _resolve(schema, root)
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(value) for value in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            return " or ".join(dict.fromkeys(type_text(option, root) for option in schema[combinator]))
    kinds = schema.get("type")
    if kinds is None:
        return "mapping" if "properties" in schema else "any"
    parts = []
    for kind in [kinds] if isinstance(kinds, str) else kinds:
        if kind == "array" and "items" in schema:
            item = type_text(schema["items"], root)
            parts.append(f"list of ({item})" if " " in item else f"list of {item}")
        elif kind == "array":
            parts.append("list")
        elif kind == "object":
            parts.append("mapping")
        elif kind in ("integer", "number") and _number_bounds(schema):
            parts.append(f"{kind} {_number_bounds(schema)}")
        else:
            parts.append(kind)
    return " or ".join(parts)


def _cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def rows(schema: dict, root: dict, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, description) of every key under `schema`, depth first."""
    schema = _resolve(schema, root)
    found = []
    required = set(schema.get("required", []))
    for key, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, root)
        path = f"{prefix}{key}"
        default = (f"`{json.dumps(sub['default'])}`" if "default" in sub
                   else "*required*" if key in required else "")
        found.append((path, type_text(sub, root), default, _cell(sub.get("description", ""))))
        found += rows(sub, root, f"{path}.")
        items = _resolve(sub.get("items", {}), root)
        if "properties" in items:
            found += rows(items, root, f"{path}[].")
    return found


def render(schema: dict | None = None) -> str:
    """The whole page, one section per top-level key."""
    schema = schema or load_schema()
    lines = [HEADER.format(description=_cell(schema.get("description", "")))]
    for path, kind, default, description in rows(schema, schema):
        if "." not in path and "[" not in path:
            lines.append(f"\n## `{path}`\n\n| key | type | default | description |\n| --- | --- | --- | --- |")
        lines.append(f"| `{path}` | {_cell(kind)} | {default} | {description} |")
    return "\n".join(lines) + "\n"
