"""What is inside a call region: the candidate calls (name, arguments) each format writes.

A region is the text the scanner (`scan.py`) set apart: the body of a `<tool_call>` block, what
follows `[TOOL_CALLS]`, a DeepSeek tool-calls section, a fenced block, a bare JSON value. Each parser
returns `Candidate`s, never raising: text that does not parse gives no candidate, and the caller
decides whether the region stays visible. Arguments are left as the model wrote them (raw strings
from the XML formats, JSON strings where the model encoded them twice); `validate.py` coerces them
against the declared schema.

Malformed JSON (trailing commas, single quotes, Python literals, a missing final brace, raw
newlines in strings) is repaired with the `json-repair` package, after the strict parser failed.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

import orjson
from json_repair import repair_json

__all__ = ["Candidate", "load_json", "parse_region", "call_shaped", "NAME_KEYS", "ARG_KEYS"]

NAME_KEYS = ("name", "tool", "tool_name", "function", "function_name", "action", "recipient_name")
ARG_KEYS = ("arguments", "parameters", "input", "args", "tool_input", "action_input", "params")
# llama.cpp's generic format and OpenAI-habit wrappers: {"tool_call": {…}}, {"tool_calls": [{…}]}
WRAPPERS = ("tool_call", "tool_calls", "function_call")
_NONE = object()


@dataclass(slots=True)
class Candidate:
    name: Any                   # what the model wrote (a str for a well-formed call)
    args: Any                   # dict, JSON string, or raw XML values (dict of str)
    raw_values: bool = False    # the argument values are raw text (XML formats): coerce from strings


def load_json(text: str, *, repair: bool = True) -> Any:
    """The JSON value in `text`, repaired when the strict parse fails; `_NONE` when neither works."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    if not repair or not text.strip():
        return _NONE
    try:
        value = repair_json(text, return_objects=True, skip_json_loads=True)
    except Exception:           # json-repair raises on some inputs; nothing to recover then
        return _NONE
    return _NONE if value in ("", None) else value


def _name_of(obj: dict) -> Any:
    for key in NAME_KEYS:
        v = obj.get(key)
        if isinstance(v, dict) and key == "function":        # {"function": {"name", "arguments"}}
            return v.get("name")
        if v is not None:
            return v
    return None


def _args_of(obj: dict) -> Any:
    fn = obj.get("function")
    if isinstance(fn, dict):
        obj = fn
    for key in ARG_KEYS:
        if key in obj:
            return obj[key]
    return _NONE


def _unwrap(obj: Any) -> Any:
    if isinstance(obj, dict) and len(obj) == 1:
        key = next(iter(obj))
        if key in WRAPPERS and isinstance(obj[key], (dict, list)):
            return obj[key]
    return obj


def call_shaped(obj: Any) -> bool:
    """An object that names a call and carries its arguments (or a list of such)."""
    obj = _unwrap(obj)
    if isinstance(obj, list):
        return bool(obj) and all(call_shaped(o) for o in obj)
    return isinstance(obj, dict) and _name_of(obj) is not None and _args_of(obj) is not _NONE


def candidates_from_value(value: Any) -> list[Candidate]:
    value = _unwrap(value)
    items = value if isinstance(value, list) else [value]
    out = []
    for obj in items:
        obj = _unwrap(obj)
        if isinstance(obj, dict) and _name_of(obj) is not None:
            args = _args_of(obj)
            out.append(Candidate(_name_of(obj), {} if args is _NONE else args))
    return out


def _json_calls(body: str) -> list[Candidate]:
    value = load_json(body.strip())
    return [] if value is _NONE else candidates_from_value(value)


# ---- XML-ish formats: Qwen3-Coder and GLM-4.5 ------------------------------------------------

_FUNCTION = re.compile(r"<function=([^>\n]*)>(.*?)(?:</function>|\Z)", re.S)
_PARAMETER = re.compile(r"<parameter=([^>\n]*)>(.*?)(?:</parameter>|(?=<parameter=)|\Z)", re.S)
_ARG_PAIR = re.compile(r"<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)(?:</arg_value>|\Z)", re.S)


def _trim_newline(v: str) -> str:
    # The templates put each value on its own lines; one newline each side is markup, not data.
    if v.startswith("\n"):
        v = v[1:]
    if v.endswith("\n"):
        v = v[:-1]
    return v


def qwen_xml_calls(body: str) -> list[Candidate]:
    out = []
    for name, inner in _FUNCTION.findall(body):
        params = {k.strip(): _trim_newline(v) for k, v in _PARAMETER.findall(inner)}
        out.append(Candidate(name.strip(), params, raw_values=True))
    return out


_INVOKE = re.compile(r"<invoke\s+name=\"([^\"]*)\"\s*>(.*?)(?:</invoke>|\Z)", re.S)
_INVOKE_PARAM = re.compile(r"<parameter\s+name=\"([^\"]*)\"\s*>(.*?)(?:</parameter>|\Z)", re.S)


def invoke_calls(body: str) -> list[Candidate]:
    """Claude-style `<invoke name="f"><parameter name="k">v</parameter></invoke>` (raw values)."""
    return [Candidate(name.strip(), {k.strip(): _trim_newline(v) for k, v in _INVOKE_PARAM.findall(inner)},
                      raw_values=True) for name, inner in _INVOKE.findall(body)]


def glm_calls(body: str) -> list[Candidate]:
    body = body.strip()
    head, _, rest = body.partition("<arg_key>")
    name = head.strip()
    if not name or "\n" in name or "{" in name:
        return []
    args = {k.strip(): v for k, v in _ARG_PAIR.findall("<arg_key>" + rest)} if rest else {}
    return [Candidate(name, args, raw_values=True)]


def tool_call_body(body: str) -> list[Candidate]:
    """The body of a `<tool_call>` block: Hermes JSON, Qwen3-Coder `<function=…>` or GLM `<arg_key>`."""
    body = re.sub(r"^(\s*<tool_call>)+", "", body)        # nested opening tags
    if "<invoke" in body:
        return invoke_calls(body)
    if "<function=" in body:
        return qwen_xml_calls(body)
    stripped = body.strip()
    if stripped.startswith(("{", "[")) or stripped.startswith("```"):
        return _json_calls(_unfence(stripped))
    return glm_calls(body)


def _unfence(text: str) -> str:
    m = re.match(r"```[\w-]*\s*\n?(.*?)\n?```\s*\Z", text, re.S)
    return m.group(1) if m else text


# ---- DeepSeek --------------------------------------------------------------------------------

_BAR = "[|｜]"
_DS_CALL = re.compile(rf"<{_BAR}tool[▁_]call[▁_]begin{_BAR}>(.*?)(?:<{_BAR}tool[▁_]call[▁_]end{_BAR}>|\Z)", re.S)
_DS_SEP = re.compile(rf"<{_BAR}tool[▁_]sep{_BAR}>")


def deepseek_calls(body: str) -> list[Candidate]:
    out = []
    calls = _DS_CALL.findall(body) or [body]      # a lone call-begin token opened the region
    for call in calls:
        parts = _DS_SEP.split(call, maxsplit=1)
        if len(parts) != 2:
            continue
        left, right = parts[0].strip(), parts[1]
        if left in ("function", ""):                       # V3: function<sep>NAME\n```json …```
            name, _, args = right.strip().partition("\n")
        else:                                              # V3.1: NAME<sep>{…}
            name, args = left, right
        value = load_json(_unfence(args.strip()))
        out.append(Candidate(name.strip(), {} if value is _NONE else value))
    return out


# ---- Mistral ---------------------------------------------------------------------------------

_MISTRAL_NAMED = re.compile(r"\s*([\w.-]+)\s*(?:\[CALL_ID\][\w-]*)?\s*(?:\[ARGS\])?\s*(\{.*)", re.S)


def mistral_calls(body: str) -> list[Candidate]:
    out = []
    for piece in body.split("[TOOL_CALLS]"):
        piece = piece.strip()
        if not piece:
            continue
        if piece.startswith("["):
            out += _json_calls(piece)
            continue
        m = _MISTRAL_NAMED.match(piece)
        if m:
            value = load_json(m.group(2))
            out.append(Candidate(m.group(1), {} if value is _NONE else value))
    return out


# ---- Llama: JSON after <|python_tag|>, `;`-separated ------------------------------------------

def json_sequence(body: str) -> list[Candidate]:
    """One or more JSON values, `;`- or whitespace-separated (llama3_json's multi-call habit)."""
    from lynkr.toolcalls.scan import balanced_end
    out, pos = [], 0
    body = body.strip()
    while pos < len(body):
        while pos < len(body) and body[pos] in " \t\r\n;,":
            pos += 1
        if pos >= len(body):
            break
        end = balanced_end(body, pos)
        chunk = body[pos:end] if end and end > 0 else body[pos:]
        out += _json_calls(chunk)
        if not end or end < 0:
            break
        pos = end
    return out


# ---- Pythonic: [f(a=1), g(b="x")] and Gemma's tool_code ---------------------------------------

def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Name) and node.id in ("true", "false", "null"):   # JSON spellings
        return {"true": True, "false": False, "null": None}[node.id]
    return ast.literal_eval(node)


def pythonic_calls(body: str) -> list[Candidate]:
    try:
        tree = ast.parse(body.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    nodes = tree.elts if isinstance(tree, (ast.List, ast.Tuple)) else [tree]
    # Gemma prints its calls: print(default_api.read_file(path="a"))
    nodes = [n.args[0] if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
             and len(n.args) == 1 and not n.keywords and isinstance(n.args[0], ast.Call) else n for n in nodes]
    out = []
    for node in nodes:
        if not isinstance(node, ast.Call) or node.args:
            return []
        fn = node.func
        name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
        if name is None:
            return []
        try:
            args = {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg}
        except (ValueError, SyntaxError, TypeError, RecursionError):
            return []
        out.append(Candidate(name, args))
    return out


def bare_calls(body: str) -> list[Candidate]:
    """A bare or fenced value: JSON call object(s), else a pythonic call list."""
    stripped = body.strip()
    if stripped.startswith("{") or (stripped.startswith("[") and stripped[1:].lstrip().startswith(("{", "'{"))):
        value = load_json(stripped, repair=False)
        if value is _NONE:                 # several values in a row, or JSON that needs repair
            seq = json_sequence(stripped)
            if seq:
                return seq
            value = load_json(stripped)
        return candidates_from_value(value) if value is not _NONE and call_shaped(value) else []
    return pythonic_calls(stripped)


_PARSERS = {
    "tool_call": tool_call_body,
    "function": lambda body: qwen_xml_calls("<function=" + body),
    "python_tag": json_sequence,
    "mistral": mistral_calls,
    "deepseek": deepseek_calls,
    "invoke": invoke_calls,
    "bare": bare_calls,
    "tail": bare_calls,
    "fence": bare_calls,
}


def parse_region(kind: str, body: str) -> list[Candidate]:
    try:
        return _PARSERS[kind](body)
    except RecursionError:          # absurdly nested input: no call in it
        return []
