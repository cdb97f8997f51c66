"""OpenAI Responses (`POST /v1/responses`): what Codex CLI speaks — and the Responses upstream half
(`from_canonical`, `message_from_responses`, `events_from_responses`) for the providers.

Input items map onto canonical turns: developer/system messages → system, `function_call` and
`custom_tool_call` → `tool_use`, their outputs → `tool_result`, `reasoning` → a thinking block whose
signature is the item's `encrypted_content` (the original item rides along under the private
`_openai_reasoning` key, so a Responses upstream gets it back byte for byte and an Anthropic
upstream never sees it). Custom (freeform grammar) tools become one-string-parameter functions
(`{"input": "..."}`) for other upstreams and are turned back into `custom_tool_call` items.

Streaming follows the order Codex and the SDK require: `response.created`, then per item
`output_item.added` before any delta, the deltas, `…done` events, `output_item.done` with the
complete item, and `response.completed` with integer usage — no `[DONE]`.
"""
from __future__ import annotations

import orjson
from aiohttp import web

from lynkr.errors import ProxyError
from lynkr.exchange import Exchange
from lynkr.wire.canonical import (SYNTHETIC_SIGNATURE, image_block_from_url, image_url_of, name_map, new_id, now, short_name,
                        strip_billing, usage_from_openai, usage_to_responses)
from lynkr.wire.events import KeepAlive
from lynkr.wire.render import ping_interval, respond
from lynkr.wire.sse import sse_event

__all__ = ["CLIENT", "to_canonical", "from_canonical", "message_from_responses", "events_from_responses",
           "render", "error_response", "error_body", "message_to_response"]

CLIENT = "openai_responses"
EXTRA = "_openai_responses"
_MAPPED = {"model", "input", "instructions", "tools", "tool_choice", "max_output_tokens", "temperature", "top_p",
           "stream"}
_CUSTOM_SCHEMA = {"type": "object", "properties": {"input": {"type": "string", "description": "the raw tool input"}},
                  "required": ["input"]}


def _bad(msg: str, code: str | None = None, param: str | None = None) -> ProxyError:
    e = ProxyError(400, msg, code=code)
    e.param = param
    return e


# ---- client request → canonical --------------------------------------------------------

def _parts(content, where: str) -> list:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _bad(f"{where}.content: must be a string or a list of content parts", param=where)
    out = []
    for j, p in enumerate(content):
        if not isinstance(p, dict):
            raise _bad(f"{where}.content[{j}]: must be an object", param=where)
        t = p.get("type")
        if t in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            out.append({"type": "text", "text": p.get("text") or ""})
        elif t == "input_image":
            url = p.get("image_url")
            if isinstance(url, dict):
                url = url.get("url")
            if isinstance(url, str):
                out.append(image_block_from_url(url))
        elif t == "input_file" and str(p.get("file_data", "")).startswith("data:"):
            head, _, data = p["file_data"].partition(",")
            out.append({"type": "document", "source": {"type": "base64", "media_type": head[5:].split(";")[0], "data": data}})
        elif t == "refusal":
            out.append({"type": "text", "text": p.get("refusal") or ""})
        else:
            out.append({"type": "text", "text": orjson.dumps(p).decode()})
    return out


def _args(raw) -> dict:
    if isinstance(raw, dict):
        return raw
    if not raw or not str(raw).strip():
        return {}
    try:
        v = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"_raw_arguments": raw}
    return v if isinstance(v, dict) else {"value": v}


def _reasoning_block(item: dict) -> dict:
    summary = "\n".join(s.get("text", "") for s in item.get("summary") or () if isinstance(s, dict))
    if not summary:
        summary = "\n".join(c.get("text", "") for c in item.get("content") or () if isinstance(c, dict))
    return {"type": "thinking", "thinking": summary,
            "signature": item.get("encrypted_content") or SYNTHETIC_SIGNATURE,
            "_openai_reasoning": {k: v for k, v in item.items() if k != "id"}}


def to_canonical(body) -> dict:
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    if body.get("previous_response_id"):
        raise _bad("previous_response_id is not supported: this proxy keeps no response state; send the full "
                   "conversation in `input` (Codex does with store=false)", code="previous_response_not_found",
                   param="previous_response_id")
    if "input" not in body:
        raise _bad("input: field required (a string or a list of input items)", param="input")
    inp = body["input"]
    if isinstance(inp, str):
        inp = [{"type": "message", "role": "user", "content": inp}]
    if not isinstance(inp, list):
        raise _bad("input: must be a string or a list of items", param="input")
    if "model" in body and not isinstance(body["model"], str):
        raise _bad("model: must be a string", param="model")

    system: list = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        system.append({"type": "text", "text": instructions})
    msgs: list = []
    seen_turn = False

    def push(role: str, blocks: list, merge: bool = True):
        if merge and msgs and msgs[-1]["role"] == role and role != "system":
            msgs[-1]["content"].extend(blocks)
        else:
            msgs.append({"role": role, "content": list(blocks)})

    for i, item in enumerate(inp):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _bad(f"{where}: must be an object", param=where)
        t = item.get("type") or ("message" if "role" in item else None)
        if t == "message":
            role = item.get("role")
            blocks = _parts(item.get("content"), where)
            if role in ("developer", "system"):
                marked = [{**b, "_item": i, "_role": role} for b in blocks]
                if not seen_turn:
                    system.extend(marked)
                else:
                    push("system", marked, merge=False)
            elif role == "user":
                seen_turn = True
                push("user", blocks, merge=False)     # one turn per message, so the round trip keeps them apart
            elif role == "assistant":
                seen_turn = True
                push("assistant", blocks)
            else:
                raise _bad(f"{where}.role: must be user, assistant, developer or system (got {role!r})", param=where)
        elif t in ("function_call", "custom_tool_call", "local_shell_call"):
            seen_turn = True
            call_id = item.get("call_id") or item.get("id") or new_id("call_")
            if t == "function_call":
                inp_ = _args(item.get("arguments"))
            elif t == "custom_tool_call":
                inp_ = {"input": item.get("input") or ""}
            else:
                inp_ = item.get("action") or {}
            block = {"type": "tool_use", "id": call_id, "name": item.get("name") or ("local_shell" if t == "local_shell_call" else ""),
                     "input": inp_}
            if item.get("namespace"):
                block["_namespace"] = item["namespace"]
            push("assistant", [block])
        elif t in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
            seen_turn = True
            out = item.get("output")
            content = out if isinstance(out, str) else _parts(out, where) if isinstance(out, list) else orjson.dumps(out).decode()
            block = {"type": "tool_result", "tool_use_id": item.get("call_id") or "", "content": content}
            if msgs and msgs[-1]["role"] == "user" and all(b.get("type") == "tool_result" for b in msgs[-1]["content"]):
                msgs[-1]["content"].append(block)
            else:
                msgs.append({"role": "user", "content": [block]})
        elif t == "reasoning":
            seen_turn = True
            push("assistant", [_reasoning_block(item)])
        elif t == "item_reference":
            raise _bad(f"{where}: item_reference needs stored responses, which this proxy does not keep", param=where)
        else:
            # web_search_call, compaction, …: opaque to other upstreams, kept for a Responses upstream.
            role = "assistant" if t and t.endswith("_call") else "user"
            seen_turn = True
            push(role, [{"type": "_openai_item", "item": item}])

    canonical: dict = {"model": body.get("model") or "", "messages": msgs}
    if system:
        canonical["system"] = system
    mt = body.get("max_output_tokens")
    if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 1):
        raise _bad("max_output_tokens: must be a positive integer", param="max_output_tokens")
    canonical["max_tokens"] = mt or 8192        # Anthropic requires one
    for k in ("temperature", "top_p"):
        if body.get(k) is not None:
            canonical[k] = body[k]
    if body.get("stream") is not None:
        canonical["stream"] = bool(body["stream"])
    extra = {k: v for k, v in body.items() if k not in _MAPPED}
    tools_in = body.get("tools")
    if tools_in is not None:
        if not isinstance(tools_in, list):
            raise _bad("tools: must be a list", param="tools")
        tools, custom, other, strict = [], [], [], []
        for j, t in enumerate(tools_in):
            if not isinstance(t, dict):
                raise _bad(f"tools[{j}]: must be an object", param="tools")
            ty = t.get("type")
            if ty == "function":
                f = t.get("function") if isinstance(t.get("function"), dict) else t   # nested shape tolerated
                if not f.get("name"):
                    raise _bad(f"tools[{j}].name: required", param="tools")
                tool = {"name": f["name"], "input_schema": f.get("parameters") or {"type": "object", "properties": {}}}
                if f.get("description"):
                    tool["description"] = f["description"]
                if f.get("strict"):
                    strict.append(f["name"])
                tools.append(tool)
            elif ty == "custom":
                tool = {"name": t.get("name"), "input_schema": _CUSTOM_SCHEMA}
                if t.get("description"):
                    tool["description"] = t["description"]
                tools.append(tool)
                custom.append(t)
            else:
                other.append(t)       # namespace, web_search, local_shell, …: only a Responses upstream takes them
        if tools:
            canonical["tools"] = tools
        extra.pop("tools", None)
        extra["tools_order"] = [t.get("name") or t.get("type") for t in tools_in if isinstance(t, dict)]
        if custom:
            extra["custom_tools"] = custom
        if other:
            extra["other_tools"] = other
        if strict:
            extra["strict_tools"] = strict
    tc = body.get("tool_choice")
    if canonical.get("tools") and tc is not None:
        if tc == "auto":
            canonical["tool_choice"] = {"type": "auto"}
        elif tc == "required":
            canonical["tool_choice"] = {"type": "any"}
        elif tc == "none":
            canonical["tool_choice"] = {"type": "none"}
        elif isinstance(tc, dict) and tc.get("name"):
            canonical["tool_choice"] = {"type": "tool", "name": tc["name"]}
        if body.get("parallel_tool_calls") is False and canonical.get("tool_choice", {}).get("type") not in (None, "none"):
            canonical["tool_choice"]["disable_parallel_tool_use"] = True
    extra["tool_choice"] = tc
    if mt is None:
        extra["_default_max"] = True
    canonical[EXTRA] = extra
    return canonical


# ---- canonical → upstream Responses request --------------------------------------------

def _custom_names(canonical: dict) -> set:
    return {t.get("name") for t in (canonical.get(EXTRA) or {}).get("custom_tools") or ()}


def _in_parts(blocks: list, role: str) -> list:
    out = []
    for b in blocks:
        t = b.get("type")
        if t == "text":
            out.append({"type": "output_text" if role == "assistant" else "input_text", "text": b.get("text", "")})
        elif t == "image":
            url = image_url_of(b)
            if url:
                out.append({"type": "input_image", "image_url": url})
        elif t == "document":
            src = b.get("source") or {}
            if src.get("type") == "base64":
                out.append({"type": "input_file", "filename": b.get("title") or "document",
                            "file_data": f"data:{src.get('media_type')};base64,{src.get('data')}"})
    return out


def _input_from_canonical(canonical: dict) -> tuple[list, str | None]:
    custom = _custom_names(canonical)
    custom_calls: set = set()
    items: list = []
    instructions: list[str] = []
    group = None
    for b in strip_billing(canonical.get("system") or []):
        if not isinstance(b, dict):
            continue
        if "_item" in b:
            if group is not None and group["_item"] == b["_item"]:
                group["content"].append({"type": "input_text", "text": b.get("text", "")})
            else:
                group = {"type": "message", "role": b.get("_role", "developer"), "_item": b["_item"],
                         "content": [{"type": "input_text", "text": b.get("text", "")}]}
                items.append(group)
        else:
            instructions.append(b.get("text", ""))
    for it in items:
        it.pop("_item", None)
    for m in canonical.get("messages") or ():
        role = m.get("role")
        content = m.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        pending: list = []

        def flush():
            if pending:
                r = "developer" if role == "system" else role
                items.append({"type": "message", "role": r, "content": _in_parts(pending, role)})
                pending.clear()
        for b in content or ():
            t = b.get("type")
            if t in ("text", "image", "document"):
                pending.append(b)
                continue
            flush()
            if t == "tool_use":
                name = b.get("name", "")
                if name in custom:
                    custom_calls.add(b.get("id"))
                    items.append({"type": "custom_tool_call", "call_id": b.get("id"), "name": name,
                                  "input": str((b.get("input") or {}).get("input", ""))})
                elif name == "local_shell" and "_namespace" not in b and isinstance(b.get("input"), dict) and b["input"].get("type") == "exec":
                    items.append({"type": "local_shell_call", "call_id": b.get("id"), "status": "completed", "action": b["input"]})
                else:
                    inp = b.get("input") or {}
                    args = inp["_raw_arguments"] if set(inp) == {"_raw_arguments"} else orjson.dumps(inp).decode()
                    item = {"type": "function_call", "call_id": b.get("id"), "name": short_name(name), "arguments": args}
                    if b.get("_namespace"):
                        item["namespace"] = b["_namespace"]
                    items.append(item)
            elif t == "tool_result":
                c = b.get("content")
                out = c if isinstance(c, str) or c is None else _in_parts(c, "user")
                if out is None:
                    out = ""
                kind = "custom_tool_call_output" if b.get("tool_use_id") in custom_calls else "function_call_output"
                items.append({"type": kind, "call_id": b.get("tool_use_id"), "output": out})
            elif t == "thinking" and b.get("_openai_reasoning"):
                items.append(b["_openai_reasoning"])
            elif t == "_openai_item":
                items.append(b["item"])
        flush()
    return items, ("\n\n".join(instructions) if instructions else None)


def from_canonical(canonical: dict, model: str) -> dict:
    """The canonical request as a Responses request body for an upstream."""
    items, instructions = _input_from_canonical(canonical)
    body: dict = {"model": model}
    if instructions:
        body["instructions"] = instructions
    body["input"] = items
    extra = dict(canonical.get(EXTRA) or {})
    custom_defs = {t.get("name"): t for t in extra.pop("custom_tools", None) or ()}
    other = extra.pop("other_tools", None) or []
    order = extra.pop("tools_order", None)
    tool_choice_raw = extra.pop("tool_choice", None)
    strict = set(extra.pop("strict_tools", None) or ())
    tools = []
    for t in canonical.get("tools") or ():
        if not isinstance(t, dict) or t.get("type") not in (None, "custom"):
            continue
        if t.get("name") in custom_defs:
            tools.append(custom_defs[t["name"]])
        else:
            tools.append({"type": "function", "name": short_name(t["name"]),
                          **({"description": t["description"]} if t.get("description") else {}),
                          "strict": t["name"] in strict,
                          "parameters": {k: v for k, v in (t.get("input_schema") or {}).items() if k != "$schema"}})
    tools.extend(other)
    if order:
        pos = {n: k for k, n in enumerate(order)}
        tools.sort(key=lambda t: pos.get(t.get("name") or t.get("type"), len(pos)))
    if tools:
        body["tools"] = tools
        tc = canonical.get("tool_choice") or {}
        if tool_choice_raw is not None:
            body["tool_choice"] = tool_choice_raw
        elif tc.get("type") == "any":
            body["tool_choice"] = "required"
        elif tc.get("type") == "tool":
            body["tool_choice"] = {"type": "function", "name": short_name(tc.get("name", ""))}
        elif tc.get("type") in ("auto", "none"):
            body["tool_choice"] = tc["type"]
        if tc.get("disable_parallel_tool_use") and "parallel_tool_calls" not in extra:
            body["parallel_tool_calls"] = False
    # A default we filled in for Anthropic's sake is not sent back to an OpenAI upstream.
    if canonical.get("max_tokens") is not None and not (extra.get("_default_max") and canonical["max_tokens"] == 8192):
        body["max_output_tokens"] = canonical["max_tokens"]
    for k in ("temperature", "top_p"):
        if canonical.get(k) is not None:
            body[k] = canonical[k]
    if canonical.get("stream"):
        body["stream"] = True
    for k, v in extra.items():
        if k not in body and not k.startswith("_"):
            body[k] = v
    if EXTRA not in canonical:
        body.setdefault("store", False)    # stateless: every turn carries the whole conversation
    return body


# ---- upstream answer → canonical --------------------------------------------------------

def _stop_of(resp: dict, tool_called: bool) -> str:
    if tool_called:
        return "tool_use"
    if resp.get("status") == "incomplete":
        reason = (resp.get("incomplete_details") or {}).get("reason")
        return "refusal" if reason == "content_filter" else "max_tokens"
    return "end_turn"


def message_from_responses(resp: dict, request: dict | None = None) -> dict:
    names = name_map(request)
    content: list = []
    tool_called = False
    for item in resp.get("output") or ():
        t = item.get("type")
        if t == "reasoning":
            content.append(_reasoning_block(item))
        elif t == "message":
            for p in item.get("content") or ():
                if p.get("type") == "output_text":
                    content.append({"type": "text", "text": p.get("text", "")})
                elif p.get("type") == "refusal":
                    content.append({"type": "text", "text": p.get("refusal", "")})
        elif t in ("function_call", "custom_tool_call"):
            tool_called = True
            name = item.get("name", "")
            inp = _args(item.get("arguments")) if t == "function_call" else {"input": item.get("input", "")}
            content.append({"type": "tool_use", "id": item.get("call_id") or item.get("id"), "name": names.get(name, name),
                            "input": inp})
    return {"id": resp.get("id") or new_id("msg_"), "type": "message", "role": "assistant",
            "model": resp.get("model") or (request or {}).get("model", ""), "content": content,
            "stop_reason": _stop_of(resp, tool_called), "stop_sequence": None,
            "usage": usage_from_openai(resp.get("usage"))}


def _failure(ev: dict) -> ProxyError:
    r = ev.get("response") or {}
    err = r.get("error") or ev.get("error") or ev
    if not isinstance(err, dict):
        err = {"message": str(err)}
    code = err.get("code")
    status = {"context_length_exceeded": 400, "rate_limit_exceeded": 429, "insufficient_quota": 429,
              "server_is_overloaded": 529}.get(code, 502)
    return ProxyError(status, err.get("message") or "upstream response failed", code=code)


async def events_from_responses(events, request: dict | None = None):
    """Parsed Responses stream events → canonical Anthropic events, as they arrive."""
    names = name_map(request)
    started = False
    index = -1
    kind = None                # "text" | "thinking" | "tool" | "custom"
    item_key = None            # output_index of the open item
    args_seen = False
    tool_called = False
    usage = None
    final = None
    model = (request or {}).get("model", "")

    def open_block(k, block, key):
        nonlocal index, kind, item_key, args_seen
        index += 1
        kind, item_key, args_seen = k, key, False
        return {"type": "content_block_start", "index": index, "content_block": block}

    def close(item: dict | None = None):
        nonlocal kind, item_key
        evs = []
        if kind == "thinking":
            sig = (item or {}).get("encrypted_content") or SYNTHETIC_SIGNATURE
            evs.append({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": sig}})
        elif kind == "tool" and not args_seen:
            args = (item or {}).get("arguments") or "{}"
            evs.append({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": args}})
        elif kind == "custom":
            if not args_seen:
                evs.append({"type": "content_block_delta", "index": index,
                            "delta": {"type": "input_json_delta",
                                      "partial_json": '{"input":' + orjson.dumps((item or {}).get("input", "")).decode()[:-1]}})
            evs.append({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": '"}'}})
        if kind is not None:
            evs.append({"type": "content_block_stop", "index": index})
        kind, item_key = None, None
        return evs

    async for ev in events:
        if not isinstance(ev, dict):
            continue
        t = ev.get("type", "")
        if not started and t not in ("error", "response.failed"):
            r = ev.get("response") or {}
            model = r.get("model") or model
            started = True
            yield {"type": "message_start", "message": {
                "id": r.get("id") or new_id("msg_"), "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0}}}
        oi = ev.get("output_index")
        if t == "response.output_item.added":
            item = ev.get("item") or {}
            it = item.get("type")
            if it in ("function_call", "custom_tool_call", "reasoning"):
                for e in close():
                    yield e
                if it == "reasoning":
                    yield open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""}, oi)
                else:
                    tool_called = True
                    name = item.get("name", "")
                    yield open_block("tool" if it == "function_call" else "custom",
                                     {"type": "tool_use", "id": item.get("call_id") or item.get("id") or new_id("call_"),
                                      "name": names.get(name, name), "input": {}}, oi)
        elif t == "response.output_text.delta" or t == "response.refusal.delta":
            if kind != "text" or item_key != oi:
                for e in close():
                    yield e
                yield open_block("text", {"type": "text", "text": ""}, oi)
            if ev.get("delta"):
                yield {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": ev["delta"]}}
        elif t in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            if kind != "thinking":
                for e in close():
                    yield e
                yield open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""}, oi)
            if ev.get("delta"):
                yield {"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": ev["delta"]}}
        elif t == "response.function_call_arguments.delta" and kind == "tool":
            if ev.get("delta"):
                args_seen = True
                yield {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": ev["delta"]}}
        elif t == "response.custom_tool_call_input.delta" and kind == "custom":
            frag = orjson.dumps(ev.get("delta") or "").decode()[1:-1]
            yield {"type": "content_block_delta", "index": index,
                   "delta": {"type": "input_json_delta", "partial_json": ('' if args_seen else '{"input":"') + frag}}
            args_seen = True
        elif t == "response.output_item.done":
            item = ev.get("item") or {}
            if item.get("type") == "message" and kind != "text":
                # a message item whose text never streamed: take it from the done item
                text = "".join(p.get("text", "") for p in item.get("content") or () if p.get("type") == "output_text")
                if text:
                    for e in close():
                        yield e
                    yield open_block("text", {"type": "text", "text": ""}, oi)
                    yield {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}
            if item.get("type") == "function_call" and kind == "tool" and not args_seen:
                pass   # close() emits the done item's arguments
            if kind is not None:
                for e in close(item):
                    yield e
        elif t in ("response.completed", "response.incomplete"):
            final = ev.get("response") or {}
            usage = final.get("usage")
        elif t == "response.failed" or t == "error":
            raise _failure(ev)
    if not started:
        raise ProxyError(502, "the upstream closed the Responses stream before response.created")
    for e in close():
        yield e
    if final is None:
        raise ProxyError(502, "the upstream closed the stream before response.completed")
    yield {"type": "message_delta", "delta": {"stop_reason": _stop_of(final, tool_called), "stop_sequence": None},
           "usage": usage_from_openai(usage)}
    yield {"type": "message_stop"}


# ---- canonical answer → Codex / Responses client ----------------------------------------

_ERROR_TYPES = {"overloaded_error": "server_error", "api_error": "server_error", "request_too_large": "invalid_request_error",
                "timeout_error": "server_error", "not_found_error": "invalid_request_error"}


def error_body(err: ProxyError) -> dict:
    code = err.code if err.code and err.code != err.type else (
        {429: "rate_limit_exceeded", 401: "invalid_api_key", 529: "server_is_overloaded", 503: "server_is_overloaded"}.get(err.status))
    return {"error": {"message": err.message, "type": _ERROR_TYPES.get(err.type, err.type),
                      "param": getattr(err, "param", None), "code": code}}


def error_response(err: ProxyError, headers: dict | None = None) -> web.Response:
    h = dict(headers or {})
    if err.retry_after is not None:
        h["retry-after"] = str(max(0, int(round(err.retry_after))))
    h["x-should-retry"] = "true" if err.retryable else "false"
    return web.Response(status=err.status, body=orjson.dumps(error_body(err)), content_type="application/json", headers=h)


def _client_custom(x: Exchange) -> set:
    tools = x.original.get("tools") if isinstance(x.original, dict) else None
    return {t.get("name") for t in tools or () if isinstance(t, dict) and t.get("type") == "custom"}


def _resp_id(mid) -> str:
    mid = str(mid or new_id(""))
    return mid if mid.startswith("resp_") else "resp_" + mid.removeprefix("msg_").removeprefix("chatcmpl-")


def _shell(x: Exchange, rid: str, model: str, status: str) -> dict:
    o = x.original if isinstance(x.original, dict) else {}
    return {"id": rid, "object": "response", "created_at": now(), "status": status, "model": model,
            "output": [], "parallel_tool_calls": o.get("parallel_tool_calls", True),
            "tool_choice": o.get("tool_choice", "auto"), "tools": [], "error": None, "incomplete_details": None,
            "usage": None}


def _items_of(message: dict, custom: set) -> list:
    items = []
    for b in message.get("content") or ():
        t = b.get("type")
        if t == "text":
            items.append({"id": new_id("msg_"), "type": "message", "status": "completed", "role": "assistant",
                          "content": [{"type": "output_text", "text": b.get("text", ""), "annotations": []}]})
        elif t == "thinking":
            items.append(_reasoning_item(new_id("rs_"), b.get("thinking", ""), b.get("signature")))
        elif t == "tool_use":
            items.append(_call_item(b.get("id"), b.get("name", ""), b.get("input") or {}, custom))
    return items


def _reasoning_item(rid: str, text: str, signature: str | None) -> dict:
    item = {"id": rid, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}] if text else []}
    if signature and signature != SYNTHETIC_SIGNATURE:
        item["encrypted_content"] = signature
    return item


def _call_item(call_id, name, inp, custom: set) -> dict:
    if name in custom:
        return {"id": new_id("ctc_"), "type": "custom_tool_call", "status": "completed", "call_id": call_id,
                "name": name, "input": str(inp.get("input", "")) if isinstance(inp, dict) else str(inp)}
    args = inp["_raw_arguments"] if isinstance(inp, dict) and set(inp) == {"_raw_arguments"} else orjson.dumps(inp).decode()
    return {"id": new_id("fc_"), "type": "function_call", "status": "completed", "call_id": call_id, "name": name,
            "arguments": args}


def message_to_response(x: Exchange, message: dict) -> dict:
    model = (x.original.get("model") if isinstance(x.original, dict) else None) or message.get("model", "")
    out = _shell(x, _resp_id(message.get("id")), model, "completed")
    out["output"] = _items_of(message, _client_custom(x))
    if message.get("stop_reason") == "max_tokens":
        out["status"] = "incomplete"
        out["incomplete_details"] = {"reason": "max_output_tokens"}
    out["usage"] = usage_to_responses(message.get("usage"))
    return out


class _Writer:
    """Canonical events → Responses events, with sequence numbers and the complete items kept for
    `response.completed`."""

    def __init__(self, x: Exchange, out: web.StreamResponse):
        self.x, self.out = x, out
        self.seq = 0
        self.custom = _client_custom(x)
        self.output: list = []
        self.item: dict | None = None
        self.kind = None
        self.buf: list[str] = []
        self.rid = _resp_id(None)
        self.model = (x.original.get("model") if isinstance(x.original, dict) else None) or ""
        self.stop = None

    async def send(self, etype: str, payload: dict) -> None:
        payload = {"type": etype, "sequence_number": self.seq, **payload}
        self.seq += 1
        await self.out.write(sse_event(etype, payload))

    @property
    def oi(self) -> int:
        return len(self.output)

    async def start(self, message: dict) -> None:
        self.rid = _resp_id(message.get("id"))
        self.model = self.model or message.get("model", "")
        shell = _shell(self.x, self.rid, self.model, "in_progress")
        await self.send("response.created", {"response": shell})
        await self.send("response.in_progress", {"response": shell})

    async def block_start(self, b: dict) -> None:
        t = b.get("type")
        self.buf = []
        if t == "text":
            self.kind = "text"
            self.item = {"id": new_id("msg_"), "type": "message", "status": "in_progress", "role": "assistant", "content": []}
            await self.send("response.output_item.added", {"output_index": self.oi, "item": self.item})
            await self.send("response.content_part.added", {"item_id": self.item["id"], "output_index": self.oi,
                                                            "content_index": 0,
                                                            "part": {"type": "output_text", "text": "", "annotations": []}})
        elif t == "thinking":
            self.kind = "thinking"
            self.item = {"id": new_id("rs_"), "type": "reasoning", "summary": []}
            self.sig = b.get("signature") or ""
            await self.send("response.output_item.added", {"output_index": self.oi, "item": self.item})
            await self.send("response.reasoning_summary_part.added", {"item_id": self.item["id"], "output_index": self.oi,
                                                                      "summary_index": 0,
                                                                      "part": {"type": "summary_text", "text": ""}})
        elif t == "tool_use":     # server_tool_use ran upstream; Codex has nothing to execute
            custom = b.get("name") in self.custom
            self.kind = "custom" if custom else "tool"
            if custom:
                self.item = {"id": new_id("ctc_"), "type": "custom_tool_call", "status": "in_progress",
                             "call_id": b.get("id"), "name": b.get("name"), "input": ""}
            else:
                self.item = {"id": new_id("fc_"), "type": "function_call", "status": "in_progress",
                             "call_id": b.get("id"), "name": b.get("name"), "arguments": ""}
            await self.send("response.output_item.added", {"output_index": self.oi, "item": self.item})
        else:
            self.kind, self.item = None, None

    async def delta(self, d: dict) -> None:
        dt = d.get("type")
        if self.item is None:
            return
        base = {"item_id": self.item["id"], "output_index": self.oi}
        if dt == "text_delta" and self.kind == "text":
            self.buf.append(d.get("text", ""))
            await self.send("response.output_text.delta", {**base, "content_index": 0, "delta": d.get("text", ""), "logprobs": []})
        elif dt == "thinking_delta" and self.kind == "thinking":
            self.buf.append(d.get("thinking", ""))
            await self.send("response.reasoning_summary_text.delta", {**base, "summary_index": 0, "delta": d.get("thinking", "")})
        elif dt == "signature_delta" and self.kind == "thinking":
            self.sig = getattr(self, "sig", "") + d.get("signature", "")
        elif dt == "input_json_delta" and self.kind in ("tool", "custom"):
            frag = d.get("partial_json", "")
            self.buf.append(frag)
            if self.kind == "tool" and frag:
                await self.send("response.function_call_arguments.delta", {**base, "delta": frag})

    async def block_stop(self) -> None:
        item = self.item
        if item is None:
            return
        base = {"item_id": item["id"], "output_index": self.oi}
        text = "".join(self.buf)
        if self.kind == "text":
            part = {"type": "output_text", "text": text, "annotations": []}
            await self.send("response.output_text.done", {**base, "content_index": 0, "text": text, "logprobs": []})
            await self.send("response.content_part.done", {**base, "content_index": 0, "part": part})
            item = {**item, "status": "completed", "content": [part]}
        elif self.kind == "thinking":
            await self.send("response.reasoning_summary_text.done", {**base, "summary_index": 0, "text": text})
            await self.send("response.reasoning_summary_part.done", {**base, "summary_index": 0,
                                                                     "part": {"type": "summary_text", "text": text}})
            item = _reasoning_item(item["id"], text, getattr(self, "sig", None))
        elif self.kind == "tool":
            args = text if text.strip() else "{}"
            await self.send("response.function_call_arguments.done", {**base, "arguments": args})
            item = {**item, "status": "completed", "arguments": args}
        elif self.kind == "custom":
            try:
                inp = orjson.loads(text) if text.strip() else {}
            except orjson.JSONDecodeError:
                inp = {}
            value = str(inp.get("input", "")) if isinstance(inp, dict) else str(inp)
            if value:
                await self.send("response.custom_tool_call_input.delta", {**base, "delta": value})
            await self.send("response.custom_tool_call_input.done", {**base, "input": value})
            item = {**item, "status": "completed", "input": value}
        await self.send("response.output_item.done", {"output_index": self.oi, "item": item})
        self.output.append(item)
        self.item, self.kind = None, None

    async def complete(self, usage: dict) -> None:
        final = _shell(self.x, self.rid, self.model, "completed")
        final["output"] = self.output
        final["usage"] = usage_to_responses(usage)
        if self.stop == "max_tokens":
            final["status"] = "incomplete"
            final["incomplete_details"] = {"reason": "max_output_tokens"}
            await self.send("response.incomplete", {"response": final})
        else:
            await self.send("response.completed", {"response": final})

    async def fail(self, err: ProxyError) -> None:
        final = _shell(self.x, self.rid, self.model, "failed")
        final["output"] = self.output
        final["error"] = {"code": error_body(err)["error"]["code"] or "server_error", "message": err.message}
        await self.send("response.failed", {"response": final})


async def render(request: web.Request, x: Exchange) -> web.StreamResponse:
    async def write_stream(out, events, acc):
        w = _Writer(x, out)
        started = finished = False
        async with KeepAlive(out.write, b": ping\n\n", ping_interval(x)) as ka:
            try:
                async for ev in events:
                    ka.touch()
                    t = ev.get("type")
                    acc.feed(ev)
                    if t == "message_start":
                        started = True
                        await w.start(ev.get("message") or {})
                    elif t == "content_block_start":
                        await w.block_start(ev.get("content_block") or {})
                    elif t == "content_block_delta":
                        await w.delta(ev.get("delta") or {})
                    elif t == "content_block_stop":
                        await w.block_stop()
                    elif t == "message_delta":
                        w.stop = (ev.get("delta") or {}).get("stop_reason") or w.stop
                    elif t == "message_stop":
                        await w.complete(acc.usage)
                        finished = True
                    elif t == "error":
                        raise ProxyError(502, ((ev.get("error") or {}).get("message")) or "upstream error")
                if not finished:
                    raise ProxyError(502, "the upstream stream ended before the message was complete")
            except ProxyError as e:
                if not started:
                    await w.start({})
                await w.fail(e)

    return await respond(request, x, error_response=error_response,
                         to_body=lambda m: message_to_response(x, m), write_stream=write_stream)
