"""Is a recovered call one the client can run? Its tool was declared, its arguments fit the schema.

Name: exact, else case-insensitively equal to exactly one declared tool (emitted under the declared
spelling). Arguments: an object (a JSON-encoded string is decoded first, as OpenAI-habit models
write it), coerced the way the schema implies — `"5"` → 5 for an integer, `"true"` → true for a
boolean, JSON text → an array/object, a number → a string for a string property, and `null` on an
optional property that does not allow null means "not given" and is left out — then validated with
`jsonschema`. Values from the XML formats are always raw text, so this coercion is what gives them
their types (vLLM's Qwen3-Coder parser converts by the schema's type the same way).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import jsonschema

from lynkr.toolcalls.formats import Candidate, load_json

__all__ = ["Toolset", "Call", "Rejection", "coerce"]

_INT = re.compile(r"[+-]?\d+")
_NUM = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(slots=True)
class Call:
    name: str
    input: dict


@dataclass(slots=True)
class Rejection:
    reason: str            # empty_name | undeclared | bad_arguments | schema | unparseable | unclosed
    name: str
    detail: str = ""
    declared: bool = False  # the name resolved to a declared tool


class Toolset:
    """The request's declared tools (canonical: `name` + `input_schema`)."""

    def __init__(self, tools):
        self.schemas: dict[str, dict | None] = {}
        for t in tools or ():
            if isinstance(t, dict) and isinstance(t.get("name"), str) and t["name"]:
                self.schemas[t["name"]] = t.get("input_schema")
        self._folded: dict[str, list[str]] = {}
        for n in self.schemas:
            self._folded.setdefault(n.casefold(), []).append(n)
        self._validators: dict[str, Any] = {}

    def __bool__(self) -> bool:
        return bool(self.schemas)

    def resolve(self, name: Any) -> str | None:
        if not isinstance(name, str):
            return None
        name = name.strip()
        if name in self.schemas:
            return name
        hits = self._folded.get(name.casefold()) or []
        return hits[0] if len(hits) == 1 else None

    def check(self, c: Candidate) -> Call | Rejection:
        raw_name = c.name if isinstance(c.name, str) else ("" if c.name is None else str(c.name))
        if not raw_name.strip():
            return Rejection("empty_name", "", "the tool name is empty")
        name = self.resolve(raw_name)
        if name is None:
            return Rejection("undeclared", raw_name[:200], "no declared tool has this name")
        args = c.args
        if isinstance(args, str):
            args = {} if not args.strip() else load_json(args)
        if args is None:
            args = {}
        if not isinstance(args, dict):
            return Rejection("bad_arguments", name, "the arguments are not an object", declared=True)
        schema = self.schemas[name]
        if not isinstance(schema, dict):
            return Call(name, args)
        args = coerce(args, schema)
        error = self._first_error(name, schema, args)
        if error:
            return Rejection("schema", name, error, declared=True)
        return Call(name, args)

    def _first_error(self, name: str, schema: dict, value: dict) -> str | None:
        v = self._validators.get(name)
        if v is None:
            try:
                cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
                v = self._validators[name] = cls(schema)
            except Exception:
                return None          # a schema jsonschema cannot read is the client's to enforce
        try:
            err = jsonschema.exceptions.best_match(v.iter_errors(value))
        except Exception:
            return None
        if err is None:
            return None
        where = "/".join(str(p) for p in err.absolute_path)
        return (f"{where}: " if where else "") + err.message[:300]


def _types(schema: dict) -> list[str]:
    t = schema.get("type")
    if isinstance(t, str):
        return [t]
    if isinstance(t, list):
        return [x for x in t if isinstance(x, str)]
    if "properties" in schema:
        return ["object"]
    if "items" in schema:
        return ["array"]
    return []


def _from_text(s: str, t: str) -> Any:
    """`s` as type `t`, or the `_KEEP` sentinel when it is not one."""
    v = s.strip()
    if t == "integer":
        if _INT.fullmatch(v):
            return int(v)
        if _NUM.fullmatch(v) and float(v).is_integer():
            return int(float(v))
    elif t == "number":
        if _INT.fullmatch(v):
            return int(v)
        if _NUM.fullmatch(v):
            return float(v)
    elif t == "boolean":
        if v.lower() in ("true", "false"):
            return v.lower() == "true"
    elif t == "null":
        if v.lower() in ("null", "none"):
            return None
    elif t in ("array", "object"):
        value = load_json(v, repair=False)
        if isinstance(value, list if t == "array" else dict):
            return value
    return _KEEP


_KEEP = object()


def _fits(value: Any, t: str) -> bool:
    return {"string": isinstance(value, str), "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "boolean": isinstance(value, bool), "null": value is None, "array": isinstance(value, list),
            "object": isinstance(value, dict)}.get(t, True)   # "any": no type given


def coerce(value: Any, schema: Any, depth: int = 0) -> Any:
    """`value` with the conversions `schema` implies; anything else is left for validation to judge."""
    if not isinstance(schema, dict) or depth > 32:
        return value
    subs = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(subs, list):
        subs = [x for x in subs if isinstance(x, dict)]
        fitting = [x for x in subs if any(_fits(value, t) for t in _types(x) or ["any"])]
        for sub in fitting or subs:        # the branch it already fits, else the first that converts it
            c = coerce(value, sub, depth + 1)
            if fitting or c is not value:
                return c
    types = _types(schema)
    if isinstance(value, str) and types and "string" not in types and value.strip().lower() in ("null", "none"):
        return None                        # the XML formats' spelling of "no value"
    if types and not any(_fits(value, t) for t in types):
        for t in types:
            c = _from_text(value, t) if isinstance(value, str) else _KEEP
            if c is _KEEP and t == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
                c = str(value)
            if c is not _KEEP:
                value = c
                break
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        props, required = schema["properties"], set(schema.get("required") or ())
        out = {}
        for k, v in value.items():
            sub = props.get(k)
            v = coerce(v, sub, depth + 1) if sub is not None else v
            if v is None and k not in required and isinstance(sub, dict) and not _allows_null(sub):
                continue
            out[k] = v
        value = out
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value = [coerce(v, schema["items"], depth + 1) for v in value]
    return value


def _allows_null(schema: dict) -> bool:
    if "null" in _types(schema):
        return True
    return any(isinstance(s, dict) and _allows_null(s) for k in ("anyOf", "oneOf") for s in schema.get(k) or ())
