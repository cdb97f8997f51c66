"""The upstream half of Responses, for a Responses upstream: the canonical request → a Responses
request body (custom tools, reasoning items and opaque items restored as the client sent them),
and the upstream's response or event stream → canonical, translated on the shared EventBuilder
(lynkr/wire/builder.py)."""
from __future__ import annotations

import orjson

from lynkr.errors import ProxyError
from lynkr.wire.builder import EventBuilder
from lynkr.wire.canonical import (SYNTHETIC_SIGNATURE, image_url_of, name_map, new_id, short_name, strip_billing,
                                  usage_from_openai)
from lynkr.wire.openai_responses.common import EXTRA, args_of, reasoning_block

__all__ = ["from_canonical", "message_from_responses", "events_from_responses"]


# ---- canonical → upstream Responses request --------------------------------------------

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


def _system_items(canonical: dict) -> tuple[list, list[str]]:
    """Developer/system messages that were input items go back as items (blocks of one item
    regrouped); the rest of the system prompt is the instructions."""
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
    return items, instructions


def _call_item(b: dict, custom: set, custom_calls: set) -> dict:
    name = b.get("name", "")
    if name in custom:
        custom_calls.add(b.get("id"))
        return {"type": "custom_tool_call", "call_id": b.get("id"), "name": name,
                "input": str((b.get("input") or {}).get("input", ""))}
    if name == "local_shell" and "_namespace" not in b and isinstance(b.get("input"), dict) and b["input"].get("type") == "exec":
        return {"type": "local_shell_call", "call_id": b.get("id"), "status": "completed", "action": b["input"]}
    inp = b.get("input") or {}
    args = inp["_raw_arguments"] if set(inp) == {"_raw_arguments"} else orjson.dumps(inp).decode()
    item = {"type": "function_call", "call_id": b.get("id"), "name": short_name(name), "arguments": args}
    if b.get("_namespace"):
        item["namespace"] = b["_namespace"]
    return item


def _block_item(b: dict, custom: set, custom_calls: set) -> dict | None:
    t = b.get("type")
    if t == "tool_use":
        return _call_item(b, custom, custom_calls)
    if t == "tool_result":
        c = b.get("content")
        out = c if isinstance(c, str) or c is None else _in_parts(c, "user")
        kind = "custom_tool_call_output" if b.get("tool_use_id") in custom_calls else "function_call_output"
        return {"type": kind, "call_id": b.get("tool_use_id"), "output": "" if out is None else out}
    if t == "thinking" and b.get("_openai_reasoning"):
        return b["_openai_reasoning"]
    if t == "_openai_item":
        return b["item"]
    return None


def _input_from_canonical(canonical: dict) -> tuple[list, str | None]:
    custom = {t.get("name") for t in (canonical.get(EXTRA) or {}).get("custom_tools") or ()}
    custom_calls: set = set()
    items, instructions = _system_items(canonical)
    for m in canonical.get("messages") or ():
        role = m.get("role")
        content = m.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        pending: list = []
        for b in [*(content or ()), None]:
            if b is not None and b.get("type") in ("text", "image", "document"):
                pending.append(b)
                continue
            if pending:       # a run of content parts is one message item
                items.append({"type": "message", "role": "developer" if role == "system" else role,
                              "content": _in_parts(pending, role)})
                pending = []
            item = _block_item(b, custom, custom_calls) if b is not None else None
            if item is not None:
                items.append(item)
    return items, ("\n\n".join(instructions) if instructions else None)


def _tools_of(canonical: dict, extra: dict) -> list:
    custom_defs = {t.get("name"): t for t in extra.pop("custom_tools", None) or ()}
    other = extra.pop("other_tools", None) or []
    order = extra.pop("tools_order", None)
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
    return tools


def _tool_choice_of(canonical: dict, raw, extra: dict) -> dict:
    tc = canonical.get("tool_choice") or {}
    body: dict = {}
    if raw is not None:
        body["tool_choice"] = raw
    elif tc.get("type") == "any":
        body["tool_choice"] = "required"
    elif tc.get("type") == "tool":
        body["tool_choice"] = {"type": "function", "name": short_name(tc.get("name", ""))}
    elif tc.get("type") in ("auto", "none"):
        body["tool_choice"] = tc["type"]
    if tc.get("disable_parallel_tool_use") and "parallel_tool_calls" not in extra:
        body["parallel_tool_calls"] = False
    return body


def from_canonical(canonical: dict, model: str) -> dict:
    """The canonical request as a Responses request body for an upstream."""
    items, instructions = _input_from_canonical(canonical)
    body: dict = {"model": model}
    if instructions:
        body["instructions"] = instructions
    body["input"] = items
    extra = dict(canonical.get(EXTRA) or {})
    tools = _tools_of(canonical, extra)
    tool_choice_raw = extra.pop("tool_choice", None)
    if tools:
        body["tools"] = tools
        body.update(_tool_choice_of(canonical, tool_choice_raw, extra))
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
            content.append(reasoning_block(item))
        elif t == "message":
            for p in item.get("content") or ():
                if p.get("type") == "output_text":
                    content.append({"type": "text", "text": p.get("text", "")})
                elif p.get("type") == "refusal":
                    content.append({"type": "text", "text": p.get("refusal", "")})
        elif t in ("function_call", "custom_tool_call"):
            tool_called = True
            name = item.get("name", "")
            inp = args_of(item.get("arguments")) if t == "function_call" else {"input": item.get("input", "")}
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


class _ResponsesStream:
    """One Responses event stream being read: the builder and the output item open in it
    (`kind`: text, thinking, tool — a function call —, or custom — a custom tool call)."""

    def __init__(self, request: dict | None):
        self.names = name_map(request)
        self.eb = EventBuilder((request or {}).get("model", ""))
        self.kind = None
        self.item_key = None            # output_index of the open item
        self.args_seen = False
        self.final = None

    def event(self, ev: dict) -> list[dict]:
        t = ev.get("type", "")
        out = []
        if not self.eb.started and t not in ("error", "response.failed"):
            r = ev.get("response") or {}
            self.eb.model = r.get("model") or self.eb.model
            out += self.eb.start(r.get("id"))
        oi = ev.get("output_index")
        if t == "response.output_item.added":
            out += self.item_added(ev.get("item") or {}, oi)
        elif t in ("response.output_text.delta", "response.refusal.delta"):
            if self.kind != "text" or self.item_key != oi:
                out += self.open("text", oi, {"type": "text", "text": ""})
            if ev.get("delta"):
                out.append(self.eb.delta({"type": "text_delta", "text": ev["delta"]}))
        elif t in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            if self.kind != "thinking":
                out += self.open("thinking", oi, {"type": "thinking", "thinking": "", "signature": ""})
            if ev.get("delta"):
                out.append(self.eb.delta({"type": "thinking_delta", "thinking": ev["delta"]}))
        elif t == "response.function_call_arguments.delta" and self.kind == "tool":
            if ev.get("delta"):
                self.args_seen = True
                out.append(self.eb.json_delta(ev["delta"]))
        elif t == "response.custom_tool_call_input.delta" and self.kind == "custom":
            frag = orjson.dumps(ev.get("delta") or "").decode()[1:-1]
            out.append(self.eb.json_delta(('' if self.args_seen else '{"input":"') + frag))
            self.args_seen = True
        elif t == "response.output_item.done":
            out += self.item_done(ev.get("item") or {}, oi)
        elif t in ("response.completed", "response.incomplete"):
            self.final = ev.get("response") or {}
        elif t == "response.failed" or t == "error":
            raise _failure(ev)
        return out

    def open(self, kind: str, key, block: dict) -> list[dict]:
        out = self.close()
        self.kind, self.item_key, self.args_seen = kind, key, False
        if block["type"] == "tool_use":
            return out + self.eb.tool_start(block["id"], block["name"])
        return out + self.eb.open_block(block)

    def close(self, item: dict | None = None) -> list[dict]:
        item = item or {}
        out = []
        if self.kind == "thinking":
            out += self.eb.thinking(signature=item.get("encrypted_content") or SYNTHETIC_SIGNATURE)
        elif self.kind == "tool" and not self.args_seen:
            out.append(self.eb.json_delta(item.get("arguments") or "{}"))
        elif self.kind == "custom":
            if not self.args_seen:
                out.append(self.eb.json_delta('{"input":' + orjson.dumps(item.get("input", "")).decode()[:-1]))
            out.append(self.eb.json_delta('"}'))
        if self.kind is not None:
            out += self.eb.close()
        self.kind, self.item_key = None, None
        return out

    def item_added(self, item: dict, oi) -> list[dict]:
        it = item.get("type")
        if it == "reasoning":
            return self.open("thinking", oi, {"type": "thinking", "thinking": "", "signature": ""})
        if it not in ("function_call", "custom_tool_call"):
            return []
        name = item.get("name", "")
        return self.open("tool" if it == "function_call" else "custom", oi,
                         {"type": "tool_use", "id": item.get("call_id") or item.get("id") or new_id("call_"),
                          "name": self.names.get(name, name)})

    def item_done(self, item: dict, oi) -> list[dict]:
        out = []
        if item.get("type") == "message" and self.kind != "text":
            # a message item whose text never streamed: take it from the done item
            text = "".join(p.get("text", "") for p in item.get("content") or () if p.get("type") == "output_text")
            if text:
                out += self.open("text", oi, {"type": "text", "text": ""})
                out.append(self.eb.delta({"type": "text_delta", "text": text}))
        if self.kind is not None:
            out += self.close(item)     # a function call's arguments come from the done item if none streamed
        return out


async def events_from_responses(events, request: dict | None = None):
    """Parsed Responses stream events → canonical Anthropic events, as they arrive."""
    stream = _ResponsesStream(request)
    async for ev in events:
        if isinstance(ev, dict):
            for out in stream.event(ev):
                yield out
    if not stream.eb.started:
        raise ProxyError(502, "the upstream closed the Responses stream before response.created")
    for out in stream.close():
        yield out
    if stream.final is None:
        raise ProxyError(502, "the upstream closed the stream before response.completed")
    final = stream.final
    for out in stream.eb.finish(_stop_of(final, stream.eb.tool_called), usage_from_openai(final.get("usage")),
                                whole_usage=True):
        yield out
