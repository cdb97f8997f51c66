"""The request validator at the edge: one typed check per client protocol, run on the parsed body
before any stage or provider sees it.

A malformed request is the client's fault and is answered here, once, with a 400 (413 past a
limit) in the client's own shape, naming the field (`messages[3].content[0].source.data: …`).
Without this, a wrong-typed field reached a stage or a provider adapter, which raised; the 502
that followed counted against the provider's circuit breaker, so one client's bad body opened it
for everyone (and with fallback on, the fallback got the same body).

What is checked is what the proxy or an adapter reads: the type of every field it touches, the
block and item types it knows, `tool_result`s that answer a `tool_use` of the conversation,
base64 image data that decodes, a `model` that is a short printable name (it is echoed in
headers, labels and logs), integer fields within range, and the limits of `server:`
(`max_messages`, default 10 000; docs/reliability.md). Fields the proxy does not read pass
untouched, so a new API field does not break a client.

    validate_request("anthropic", body, server_cfg)   # raises ProxyError, or returns None
"""
from __future__ import annotations

import binascii
import re

from lynkr.errors import ProxyError
from lynkr.wire.canonical import check_model_name

__all__ = ["validate_request", "DEFAULT_MAX_MESSAGES", "MAX_MODEL_CHARS", "PROTOCOLS"]

DEFAULT_MAX_MESSAGES = 10_000
MAX_MODEL_CHARS = 256
MAX_INT = 2 ** 31 - 1           # token counts and `n`: anything larger is a mistake, not a request
# A model name reaches response headers, metric labels and log lines: printable, no separators
# that would end a header or a label value.
_MODEL_OK = re.compile(r"[\x21-\x7e\u00a0-\uffff](?:[\x20-\x7e\u00a0-\uffff]*[\x21-\x7e\u00a0-\uffff])?")
_MODEL_BAD = re.compile(r'["\\\u2028\u2029\ufeff]')
_IMAGE_MEDIA = {"image/jpeg", "image/png", "image/gif", "image/webp"}

# Anthropic content blocks the proxy knows; server tools' blocks end in _tool_use / _tool_result.
_ANTHROPIC_BLOCKS = {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
                     "search_result", "container_upload"}
_CHAT_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_CHAT_PARTS = {"text", "image_url", "input_audio", "file", "refusal", "input_text", "output_text", "input_image"}
_RESPONSES_ITEMS = {"message", "function_call", "function_call_output", "reasoning", "custom_tool_call",
                    "custom_tool_call_output", "local_shell_call", "local_shell_call_output", "web_search_call",
                    "file_search_call", "computer_call", "computer_call_output", "item_reference",
                    "image_generation_call", "code_interpreter_call", "mcp_call", "mcp_list_tools",
                    "mcp_approval_request", "mcp_approval_response", "compaction", "tool_search_call",
                    "tool_search_output", "shell_call", "shell_call_output", "apply_patch_call",
                    "apply_patch_call_output"}
_RESPONSES_PARTS = {"input_text", "output_text", "input_image", "input_file", "input_audio", "refusal", "text",
                    "summary_text", "reasoning_text"}


def _bad(where: str, msg: str) -> ProxyError:
    return ProxyError(400, f"{where}: {msg}" if where else msg, type="invalid_request_error", retryable=False)


def _one_of(v, choices) -> bool:
    return isinstance(v, str) and v in choices


def _typename(v) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _str(v, where: str, *, optional: bool = True) -> None:
    if v is None and optional:
        return
    if not isinstance(v, str):
        raise _bad(where, f"must be a string (got {_typename(v)})")


def _obj(v, where: str, *, optional: bool = True) -> None:
    if v is None and optional:
        return
    if not isinstance(v, dict):
        raise _bad(where, f"must be an object (got {_typename(v)})")


def _list(v, where: str, *, optional: bool = True) -> None:
    if v is None and optional:
        return
    if not isinstance(v, list):
        raise _bad(where, f"must be a list (got {_typename(v)})")


def _bool(v, where: str) -> None:
    if v is not None and not isinstance(v, bool):
        raise _bad(where, f"must be true or false (got {_typename(v)})")


def _count(v, where: str, *, minimum: int = 1) -> None:
    if v is None:
        return
    if not isinstance(v, int) or isinstance(v, bool) or not minimum <= v <= MAX_INT:
        raise _bad(where, f"must be an integer from {minimum} to {MAX_INT}")


def _number(v, where: str) -> None:
    if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)):
        raise _bad(where, f"must be a number (got {_typename(v)})")


def _model(body: dict) -> None:
    m = body.get("model")
    if m is None:
        raise _bad("model", "field required")
    if not isinstance(m, str):
        raise _bad("model", f"must be a string (got {_typename(m)})")
    why = check_model_name(m)        # the wording lynkr.wire.canonical gives (empty, too long, controls)
    if why:
        raise _bad("", why)
    if len(m) > MAX_MODEL_CHARS or not _MODEL_OK.fullmatch(m) or _MODEL_BAD.search(m):
        raise _bad("model", f"must be a model name: 1 to {MAX_MODEL_CHARS} printable characters, no control "
                            "characters, quotes or backslashes")


def _messages(v, where: str, limit: int) -> list:
    if v is None:
        raise _bad(where, "field required")
    _list(v, where)
    if len(v) > limit:
        raise ProxyError(413, f"request has {len(v)} messages; the limit is {limit}", retryable=False)
    return v


def _limit(server: dict | None) -> int:
    return (server or {}).get("max_messages") or DEFAULT_MAX_MESSAGES


# -- Anthropic Messages -------------------------------------------------------------------------

def _image_source(src, where: str) -> None:
    _obj(src, where, optional=False)
    kind = src.get("type")
    if kind == "base64":
        if not _one_of(src.get("media_type"), _IMAGE_MEDIA):
            raise _bad(where + ".media_type", "must be one of " + ", ".join(sorted(_IMAGE_MEDIA)))
        data = src.get("data")
        _str(data, where + ".data", optional=False)
        try:
            binascii.a2b_base64(data, strict_mode=True)
        except (binascii.Error, ValueError):
            raise _bad(where + ".data", "is not valid base64") from None
    elif kind == "url":
        _str(src.get("url"), where + ".url", optional=False)
    elif kind not in ("file",):
        raise _bad(where + ".type", "must be base64, url or file")


_EMPTY: dict = {}


def _anthropic_block(b, where: str, tool_ids: set, in_result: bool = False) -> None:
    if not isinstance(b, dict):
        raise _bad(where, f"must be a content block object (got {_typename(b)})")
    t = b.get("type")
    if not isinstance(t, str) or not (t in _ANTHROPIC_BLOCKS or t.endswith(("_tool_use", "_tool_result"))):
        raise _bad(where + ".type", f"unknown content block type {str(t)[:40]!r}")
    if t == "text":
        _str(b.get("text"), where + ".text", optional=False)
    elif t == "image":
        _image_source(b.get("source"), where + ".source")
    elif t == "document":
        _obj(b.get("source"), where + ".source", optional=False)
    elif t == "tool_use":
        _str(b.get("id"), where + ".id", optional=False)
        _str(b.get("name"), where + ".name", optional=False)
        if "input" in b:
            _obj(b["input"], where + ".input", optional=False)
        tool_ids.add(b["id"])
    elif t == "tool_result":
        if in_result:
            raise _bad(where, "a tool_result cannot contain a tool_result")
        tid = b.get("tool_use_id")
        _str(tid, where + ".tool_use_id", optional=False)
        if tid not in tool_ids:
            raise _bad(where + ".tool_use_id", f"{tid[:64]!r} answers no tool_use earlier in the conversation")
        c = b.get("content")
        if isinstance(c, list):
            for k, inner in enumerate(c):
                _anthropic_block(inner, f"{where}.content[{k}]", tool_ids, in_result=True)
        elif c is not None and not isinstance(c, str):
            raise _bad(where + ".content", "must be a string or a list of blocks")
        _bool(b.get("is_error"), where + ".is_error")
    elif t == "thinking":
        _str(b.get("thinking"), where + ".thinking", optional=False)
        _str(b.get("signature"), where + ".signature")
    elif t == "redacted_thinking":
        _str(b.get("data"), where + ".data", optional=False)
    if "cache_control" in b:
        _obj(b["cache_control"], where + ".cache_control")


def _anthropic_content(c, where: str, tool_ids: set) -> None:
    if isinstance(c, str):
        return
    if not isinstance(c, list):
        raise _bad(where, f"must be a string or a list of blocks (got {_typename(c)})")
    for k, b in enumerate(c):
        # The usual blocks (text, a tool call, its string result) are accepted in one expression
        # each: the checks that name a field cost a 62 KB agent request ~40 µs when every block
        # took them. Anything else, or anything odd about these, takes _anthropic_block.
        if type(b) is dict and "cache_control" not in b:
            t = b.get("type")
            if t == "text" and type(b.get("text")) is str:
                continue
            if (t == "tool_use" and type(tid := b.get("id")) is str and type(b.get("name")) is str
                    and type(b.get("input", _EMPTY)) is dict):
                tool_ids.add(tid)
                continue
            if (t == "tool_result" and type(rid := b.get("tool_use_id")) is str and rid in tool_ids
                    and type(b.get("content", "")) is str and type(b.get("is_error", False)) is bool):
                continue
        _anthropic_block(b, f"{where}[{k}]", tool_ids)


def _anthropic_tools(tools) -> None:
    _list(tools, "tools")
    for j, t in enumerate(tools or ()):
        if (type(t) is dict and type(t.get("name")) is str and type(t.get("type", "")) is str
                and type(t.get("description", "")) is str and type(t.get("input_schema", {})) is dict):
            continue        # the usual tool, accepted in one expression (as blocks are)
        where = f"tools[{j}]"
        _obj(t, where, optional=False)
        _str(t.get("name"), where + ".name", optional=t.get("type") not in (None, "custom"))
        _str(t.get("type"), where + ".type")
        _str(t.get("description"), where + ".description")
        _obj(t.get("input_schema"), where + ".input_schema")


def anthropic(body, server: dict | None, *, count_only: bool = False) -> None:
    if not isinstance(body, dict):
        raise _bad("", "request body must be a JSON object")
    if not count_only:
        _model(body)
        _count(body.get("max_tokens"), "max_tokens")
    elif "model" in body:
        _model(body)
    msgs = _messages(body.get("messages"), "messages", _limit(server))
    system = body.get("system")
    if isinstance(system, list):
        for k, b in enumerate(system):
            if not isinstance(b, dict) or b.get("type") != "text" or not isinstance(b.get("text"), str):
                raise _bad(f"system[{k}]", "must be a text block {type: text, text: string}")
    elif system is not None and not isinstance(system, str):
        raise _bad("system", f"must be a string or a list of text blocks (got {_typename(system)})")
    tool_ids: set = set()
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _bad(where, f"must be an object (got {_typename(m)})")
        if m.get("role") not in ("user", "assistant", "system"):
            raise _bad(where + ".role", f"must be 'user' or 'assistant' (got {str(m.get('role'))[:40]!r})")
        if "content" not in m:
            raise _bad(where + ".content", "field required")
        _anthropic_content(m["content"], where + ".content", tool_ids)
    _anthropic_tools(body.get("tools"))
    tc = body.get("tool_choice")
    _obj(tc, "tool_choice")
    if tc is not None:
        _str(tc.get("type"), "tool_choice.type", optional=False)
        _str(tc.get("name"), "tool_choice.name", optional=tc.get("type") != "tool")
    _bool(body.get("stream"), "stream")
    for k in ("temperature", "top_p", "top_k"):
        _number(body.get(k), k)
    _list(body.get("stop_sequences"), "stop_sequences")
    for k, s in enumerate(body.get("stop_sequences") or ()):
        _str(s, f"stop_sequences[{k}]", optional=False)
    meta = body.get("metadata")
    _obj(meta, "metadata")
    if meta:
        _str(meta.get("user_id"), "metadata.user_id")
    _obj(body.get("thinking"), "thinking")


def count_tokens(body, server: dict | None) -> None:
    anthropic(body, server, count_only=True)


# -- OpenAI Chat Completions --------------------------------------------------------------------

_TEXT_PARTS = {"text", "input_text", "output_text", "summary_text", "reasoning_text"}


def _parts(c, where: str, kinds: set) -> None:
    """A string, null, or a list of OpenAI content parts of the given kinds."""
    if c is None or isinstance(c, str):
        return
    if not isinstance(c, list):
        raise _bad(where, f"must be a string, null or a list of content parts (got {_typename(c)})")
    for k, p in enumerate(c):
        w = f"{where}[{k}]"
        if isinstance(p, str):
            continue
        if not isinstance(p, dict) or not _one_of(p.get("type"), kinds):
            raise _bad(w + ".type", "must be one of " + ", ".join(sorted(kinds)))
        t = p["type"]
        if t in _TEXT_PARTS:
            _str(p.get("text"), w + ".text", optional=False)
        elif t == "refusal":
            _str(p.get("refusal"), w + ".refusal", optional=False)
        elif t in ("image_url", "input_image"):
            iu = p.get("image_url")
            url = iu.get("url") if isinstance(iu, dict) else iu
            _str(url, w + ".image_url", optional=t == "input_image")
            if url:
                _data_url(url, w + ".image_url")


def _data_url(url: str, where: str) -> None:
    if not url.startswith("data:"):
        return
    head, sep, data = url.partition(",")
    if not sep or ";base64" not in head:
        raise _bad(where, "a data: URL must be data:<media type>;base64,<data>")
    try:
        binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        raise _bad(where, "is not valid base64") from None


def _chat_tool_calls(calls, where: str) -> None:
    _list(calls, where)
    for k, tc in enumerate(calls or ()):
        w = f"{where}[{k}]"
        _obj(tc, w, optional=False)
        _str(tc.get("id"), w + ".id")
        f = tc.get("function") if "function" in tc else tc.get("custom")
        _obj(f, w + ".function", optional=False)
        _str(f.get("name"), w + ".function.name", optional=False)
        args = f.get("arguments", f.get("input"))
        if args is not None and not isinstance(args, (str, dict)):
            raise _bad(w + ".function.arguments", "must be a JSON string")


def chat(body, server: dict | None) -> None:
    if isinstance(body, dict) and "messages" not in body and "input" in body:
        return responses(body, server)       # Cursor's agent mode sends Responses bodies here
    if not isinstance(body, dict):
        raise _bad("", "request body must be a JSON object")
    _model(body)
    msgs = _messages(body.get("messages"), "messages", _limit(server))
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _bad(where, f"must be an object (got {_typename(m)})")
        role = m.get("role")
        if not _one_of(role, _CHAT_ROLES):
            raise _bad(where + ".role", "must be system, developer, user, assistant or tool "
                                        f"(got {str(role)[:40]!r})")
        _parts(m.get("content"), where + ".content", _CHAT_PARTS)
        _chat_tool_calls(m.get("tool_calls"), where + ".tool_calls")
        if m.get("function_call") is not None:
            _chat_tool_calls([{"function": m["function_call"]}], where + ".function_call")
        for k in ("tool_call_id", "name", "reasoning_content", "reasoning"):
            if k in m and not isinstance(m[k], (str, type(None))) and k != "reasoning":
                raise _bad(f"{where}.{k}", f"must be a string (got {_typename(m[k])})")
    tools = body.get("tools")
    _list(tools, "tools")
    for j, t in enumerate(tools or ()):
        w = f"tools[{j}]"
        _obj(t, w, optional=False)
        _str(t.get("type"), w + ".type")
        f = t.get("function") if t.get("type", "function") == "function" else t.get(t.get("type")) or {}
        _obj(f, w + ".function", optional=False)
        _str(f.get("name"), w + ".function.name", optional=t.get("type", "function") != "function")
        _obj(f.get("parameters"), w + ".function.parameters")
        _str(f.get("description"), w + ".function.description")
    tc = body.get("tool_choice")
    if tc is not None and not isinstance(tc, (str, dict)):
        raise _bad("tool_choice", "must be a string or an object")
    for k in ("max_tokens", "max_completion_tokens", "n"):
        _count(body.get(k), k)
    _bool(body.get("stream"), "stream")
    _bool(body.get("parallel_tool_calls"), "parallel_tool_calls")
    _obj(body.get("stream_options"), "stream_options")
    _obj(body.get("response_format"), "response_format")
    for k in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        _number(body.get(k), k)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise _bad("stop", "must be a string or a list of strings")


# -- OpenAI Responses ---------------------------------------------------------------------------

def _responses_item(item, where: str) -> None:
    if not isinstance(item, dict):
        raise _bad(where, f"must be an input item object (got {_typename(item)})")
    t = item.get("type", "message" if "role" in item else None)
    if not _one_of(t, _RESPONSES_ITEMS):
        raise _bad(where + ".type", f"unknown input item type {str(t)[:40]!r}")
    if t == "message":
        if item.get("role") not in ("user", "assistant", "system", "developer"):
            raise _bad(where + ".role", f"must be user, assistant, system or developer "
                                        f"(got {str(item.get('role'))[:40]!r})")
        _parts(item.get("content"), where + ".content", _RESPONSES_PARTS)
    elif t in ("function_call", "custom_tool_call"):
        _str(item.get("call_id"), where + ".call_id", optional=False)
        _str(item.get("name"), where + ".name", optional=False)
        _str(item.get("arguments" if t == "function_call" else "input"),
             where + (".arguments" if t == "function_call" else ".input"))
    elif t in ("function_call_output", "custom_tool_call_output"):
        cid = item.get("call_id")
        _str(cid, where + ".call_id", optional=False)
        out = item.get("output")
        if isinstance(out, list):
            _parts(out, where + ".output", _RESPONSES_PARTS)
        elif out is not None and not isinstance(out, str):
            raise _bad(where + ".output", "must be a string or a list of content parts")
    elif t == "reasoning":
        _list(item.get("summary"), where + ".summary")
        _parts(item.get("summary"), where + ".summary", _RESPONSES_PARTS)
        _list(item.get("content"), where + ".content")
        _parts(item.get("content"), where + ".content", _RESPONSES_PARTS)
        _str(item.get("encrypted_content"), where + ".encrypted_content")


def responses(body, server: dict | None) -> None:
    if not isinstance(body, dict):
        raise _bad("", "request body must be a JSON object")
    _model(body)
    inp = body.get("input")
    if inp is None:
        raise _bad("input", "field required (a string or a list of input items)")
    if not isinstance(inp, str):
        _messages(inp, "input", _limit(server))
        for i, item in enumerate(inp):
            _responses_item(item, f"input[{i}]")
    _str(body.get("instructions"), "instructions")
    tools = body.get("tools")
    _list(tools, "tools")
    for j, t in enumerate(tools or ()):
        _obj(t, f"tools[{j}]", optional=False)
        _str(t.get("type"), f"tools[{j}].type", optional=False)
        _str(t.get("name"), f"tools[{j}].name")
        _str(t.get("description"), f"tools[{j}].description")
        _obj(t.get("parameters"), f"tools[{j}].parameters")
    tc = body.get("tool_choice")
    if tc is not None and not isinstance(tc, (str, dict)):
        raise _bad("tool_choice", "must be a string or an object")
    _count(body.get("max_output_tokens"), "max_output_tokens")
    _bool(body.get("stream"), "stream")
    _bool(body.get("store"), "store")
    _bool(body.get("parallel_tool_calls"), "parallel_tool_calls")
    _obj(body.get("reasoning"), "reasoning")
    _obj(body.get("text"), "text")
    _str(body.get("previous_response_id"), "previous_response_id")
    inc = body.get("include")
    if inc is not None and not (isinstance(inc, list) and all(isinstance(s, str) for s in inc)):
        raise _bad("include", "must be a list of strings")
    for k in ("temperature", "top_p"):
        _number(body.get(k), k)


PROTOCOLS = {"anthropic": anthropic, "openai_chat": chat, "openai_responses": responses, "count_tokens": count_tokens}


def validate_request(client: str, body, server: dict | None = None) -> None:
    """Raise the ProxyError (400, or 413 past a limit) a malformed `body` of this protocol gets."""
    try:
        PROTOCOLS[client](body, server)
    except (TypeError, AttributeError, KeyError, IndexError, RecursionError) as e:
        # A shape no check foresaw is still the client's: refuse it rather than pass it on.
        raise _bad("", f"malformed request ({type(e).__name__}: {e})"[:300]) from None
