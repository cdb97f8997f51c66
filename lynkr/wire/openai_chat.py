"""OpenAI Chat Completions (`POST /v1/chat/completions`): Cursor, Cline, Continue — and the
OpenAI-compatible upstream family (the providers call the `from_canonical` / `message_from_openai`
/ `events_from_openai` half).

Client side: `to_canonical` turns a chat request into the canonical (Anthropic) shape; `render`
writes a canonical message or event stream back as a chat completion or `data:` chunks ending in
`[DONE]`. Upstream side: `from_canonical` builds a chat request, `message_from_openai` and
`events_from_openai` read the answer back, streaming text as it arrives and tool-call arguments
as `input_json_delta` (parallel calls: the first streams, the rest are buffered and flushed whole,
because Anthropic streams allow one open block at a time).
"""
from __future__ import annotations

import orjson
from aiohttp import web

from lynkr.errors import ProxyError
from lynkr.exchange import Exchange
from lynkr.wire.canonical import (SYNTHETIC_SIGNATURE, finish_to_stop, image_block_from_url, image_url_of, name_map,
                        new_id, now, short_name, stop_to_finish, strip_billing, text_of, usage_from_openai,
                        usage_to_openai)
from lynkr.wire.events import KeepAlive
from lynkr.wire.render import ping_interval, respond
from lynkr.wire.sse import sse_data

__all__ = ["CLIENT", "to_canonical", "from_canonical", "message_from_openai", "events_from_openai",
           "render", "error_response", "error_body", "message_to_completion"]

CLIENT = "openai_chat"
EXTRA = "_openai_chat"          # chat fields with no Anthropic equivalent, restored for OpenAI upstreams

# Chat request fields the conversion maps; everything else is kept under EXTRA.
_MAPPED = {"model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_tokens",
           "max_completion_tokens", "temperature", "top_p", "stop", "stream", "functions", "function_call"}


# ---- client request → canonical --------------------------------------------------------

def _bad(msg: str) -> ProxyError:
    return ProxyError(400, msg, code="invalid_request_error")


def _parts_to_blocks(content, where: str) -> list:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _bad(f"{where}.content: must be a string or a list of content parts")
    out = []
    for j, p in enumerate(content):
        if isinstance(p, str):
            out.append({"type": "text", "text": p})
            continue
        if not isinstance(p, dict):
            raise _bad(f"{where}.content[{j}]: must be an object")
        t = p.get("type")
        if t in ("text", "input_text", "output_text"):
            out.append({"type": "text", "text": p.get("text") or ""})
        elif t in ("image_url", "input_image"):
            iu = p.get("image_url")
            url = iu.get("url") if isinstance(iu, dict) else iu
            if not isinstance(url, str):
                raise _bad(f"{where}.content[{j}].image_url: needs a url")
            out.append(image_block_from_url(url))
        elif t == "refusal":
            out.append({"type": "text", "text": p.get("refusal") or ""})
        elif t == "file" and isinstance(p.get("file"), dict) and str(p["file"].get("file_data", "")).startswith("data:"):
            head, _, data = p["file"]["file_data"].partition(",")
            out.append({"type": "document", "source": {"type": "base64", "media_type": head[5:].split(";")[0], "data": data}})
        else:
            out.append({"type": "text", "text": orjson.dumps(p).decode()})   # unknown part: keep it visible
    return out


def _reasoning_blocks(m: dict) -> list:
    details = m.get("reasoning_details")
    if isinstance(details, list) and details:
        out = []
        for d in details:
            if not isinstance(d, dict):
                continue
            if d.get("type") == "reasoning.encrypted" and d.get("data"):
                out.append({"type": "redacted_thinking", "data": d["data"]})
            elif d.get("type") in ("reasoning.text", "reasoning.summary"):
                out.append({"type": "thinking", "thinking": d.get("text") or d.get("summary") or "",
                            "signature": d.get("signature") or SYNTHETIC_SIGNATURE})
        if out:
            return out
    r = m.get("reasoning_content")
    if not isinstance(r, str):
        r = m.get("reasoning") if isinstance(m.get("reasoning"), str) else None
    return [{"type": "thinking", "thinking": r, "signature": SYNTHETIC_SIGNATURE}] if r else []


def _parse_args(raw, where: str = "") -> dict:
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        v = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if where:
            raise _bad(f"{where}: arguments are not valid JSON") from None
        return {}
    return v if isinstance(v, dict) else {"value": v}


def _tool_from_openai(t: dict, j: int) -> dict | None:
    if not isinstance(t, dict):
        raise _bad(f"tools[{j}]: must be an object")
    if t.get("type") in (None, "function"):
        f = t.get("function") if isinstance(t.get("function"), dict) else t   # nested (chat) or flat (Cursor)
        name = f.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"tools[{j}].function.name: required")
        out = {"name": name, "input_schema": f.get("parameters") or {"type": "object", "properties": {}}}
        if f.get("description"):
            out["description"] = f["description"]
        return out
    if t.get("type") == "custom":
        c = t.get("custom") if isinstance(t.get("custom"), dict) else t
        out = {"name": c.get("name"), "input_schema": {"type": "object", "properties": {"input": {"type": "string"}},
                                                       "required": ["input"]}}
        if c.get("description"):
            out["description"] = c["description"]
        return out
    return None


def _tool_choice(tc, parallel) -> dict | None:
    out = None
    if tc == "auto":
        out = {"type": "auto"}
    elif tc == "required":
        out = {"type": "any"}
    elif tc == "none":
        out = {"type": "none"}
    elif isinstance(tc, dict):
        name = (tc.get("function") or {}).get("name") or tc.get("name")
        if name:
            out = {"type": "tool", "name": name}
    if parallel is False:
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True} if (out or {}).get("type") != "none" else out
    return out


def to_canonical(body) -> dict:
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    if "messages" not in body and "input" in body:
        # Cursor's agent mode sends Responses-shaped bodies to /chat/completions.
        from lynkr.wire import openai_responses
        return openai_responses.to_canonical(body)
    messages = body.get("messages")
    if messages is None:
        raise _bad("messages: field required (a list of {role, content})")
    if not isinstance(messages, list):
        raise _bad("messages: must be a list")
    if "model" in body and not isinstance(body["model"], str):
        raise _bad("model: must be a string")

    system: list = []
    out: list = []
    seen_other = False
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _bad(f"{where}: must be an object")
        role = m.get("role")
        if role in ("system", "developer"):
            blocks = _parts_to_blocks(m.get("content"), where)
            if not seen_other:
                system.extend(blocks)
            else:
                out.append({"role": "system", "content": blocks})
            continue
        seen_other = True
        if role == "user":
            out.append({"role": "user", "content": _parts_to_blocks(m.get("content"), where)})
        elif role == "assistant":
            blocks = _reasoning_blocks(m) + _parts_to_blocks(m.get("content"), where)
            calls = m.get("tool_calls") or []
            if m.get("function_call"):
                calls = list(calls) + [{"id": new_id("call_"), "function": m["function_call"]}]
            for k, tc in enumerate(calls):
                if not isinstance(tc, dict):
                    raise _bad(f"{where}.tool_calls[{k}]: must be an object")
                f = tc.get("function") or tc.get("custom") or {}
                args = f.get("arguments", f.get("input"))
                inp = ({"input": args} if tc.get("type") == "custom"
                       else _parse_args(args, f"{where}.tool_calls[{k}].function"))
                blocks.append({"type": "tool_use", "id": tc.get("id") or new_id("call_"),
                               "name": f.get("name") or "", "input": inp})
            out.append({"role": "assistant", "content": blocks})
        elif role in ("tool", "function"):
            c = m.get("content")
            result = {"type": "tool_result", "tool_use_id": m.get("tool_call_id") or m.get("name") or "",
                      "content": c if isinstance(c, str) else _parts_to_blocks(c, where)}
            prev = out[-1] if out else None
            # Consecutive tool messages answer one assistant turn: one user turn of tool_results.
            if prev is not None and prev["role"] == "user" and prev.get("_tool_results"):
                prev["content"].append(result)
            else:
                out.append({"role": "user", "content": [result], "_tool_results": True})
        else:
            raise _bad(f"{where}.role: must be system, developer, user, assistant or tool (got {role!r})")
    for m in out:
        m.pop("_tool_results", None)

    canonical: dict = {"model": body.get("model") or "", "messages": out}
    if system:
        canonical["system"] = system
    mt = body.get("max_completion_tokens") or body.get("max_tokens")
    extra_flags: dict = {}
    if mt is not None:
        if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
            raise _bad("max_tokens: must be a positive integer")
        canonical["max_tokens"] = mt
    else:
        canonical["max_tokens"] = 8192      # Anthropic requires it; OpenAI clients often omit it
        extra_flags = {"_default_max": True}
    for k in ("temperature", "top_p"):
        if body.get(k) is not None:
            canonical[k] = body[k]
    stop = body.get("stop")
    if stop:
        canonical["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("stream") is not None:
        canonical["stream"] = bool(body["stream"])
    tools_in = body.get("tools")
    if tools_in is None and isinstance(body.get("functions"), list):
        tools_in = [{"type": "function", "function": f} for f in body["functions"]]
    if tools_in is not None:
        if not isinstance(tools_in, list):
            raise _bad("tools: must be a list")
        tools = [t for t in (_tool_from_openai(t, j) for j, t in enumerate(tools_in)) if t]
        if tools:
            canonical["tools"] = tools
        strict = [(t.get("function") or t).get("name") for t in tools_in
                  if isinstance(t, dict) and (t.get("function") or t).get("strict")]
        if strict:
            extra_flags["strict_tools"] = strict
    tc = _tool_choice(body.get("tool_choice", body.get("function_call")), body.get("parallel_tool_calls"))
    if tc and canonical.get("tools"):
        canonical["tool_choice"] = tc
    extra = {k: v for k, v in body.items() if k not in _MAPPED}
    if "max_completion_tokens" in body:
        extra["max_completion_tokens"] = body["max_completion_tokens"]
    if body.get("parallel_tool_calls") is not None:
        extra["parallel_tool_calls"] = body["parallel_tool_calls"]
    extra.update(extra_flags)
    if extra:
        canonical[EXTRA] = extra
    return canonical


# ---- canonical → upstream chat request -------------------------------------------------

def _result_text_and_images(content) -> tuple[str, list]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts, images = [], []
    for b in content:
        if not isinstance(b, dict):
            continue
        if b.get("type") == "image":
            images.append(b)
        elif b.get("type") == "text":
            texts.append(b.get("text", ""))
        else:
            texts.append(orjson.dumps(b).decode())
    return "\n".join(texts), images


def _blocks_to_parts(blocks: list) -> str | list:
    parts = []
    for b in blocks:
        t = b.get("type")
        if t == "text":
            parts.append({"type": "text", "text": b.get("text", "")})
        elif t == "image":
            url = image_url_of(b)
            if url:
                parts.append({"type": "image_url", "image_url": {"url": url}})
        elif t == "document":
            src = b.get("source") or {}
            if src.get("type") == "base64":
                parts.append({"type": "file", "file": {"filename": b.get("title") or "document",
                                                       "file_data": f"data:{src.get('media_type')};base64,{src.get('data')}"}})
            elif src.get("type") == "text":
                parts.append({"type": "text", "text": src.get("data", "")})
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts) if len(parts) != 1 else parts[0]["text"]
    return parts


def _schema(s: dict | None) -> dict:
    s = s or {"type": "object", "properties": {}}
    return {k: v for k, v in s.items() if k != "$schema"} if "$schema" in s else s


def _thinking_fields(blocks: list) -> dict:
    out: dict = {}
    texts = [b.get("thinking", "") for b in blocks if b.get("type") == "thinking"]
    if texts:
        out["reasoning_content"] = "\n".join(texts)
    # Signed thinking survives a trip through an OpenAI-shaped upstream (OpenRouter's format).
    details = []
    for b in blocks:
        if b.get("type") == "thinking" and b.get("signature") and b.get("signature") != SYNTHETIC_SIGNATURE:
            details.append({"type": "reasoning.text", "text": b.get("thinking", ""), "signature": b["signature"],
                            "format": "anthropic-claude-v1"})
        elif b.get("type") == "redacted_thinking":
            details.append({"type": "reasoning.encrypted", "data": b.get("data", ""), "format": "anthropic-claude-v1"})
    if details:
        out["reasoning_details"] = details
    return out


def _messages_from_canonical(canonical: dict) -> list:
    out = []
    system = strip_billing(canonical.get("system") or [])
    if isinstance(canonical.get("system"), str):
        system = [{"type": "text", "text": canonical["system"]}]
    if system:
        out.append({"role": "system", "content": "\n\n".join(b.get("text", "") for b in system if isinstance(b, dict))})
    for m in canonical.get("messages") or ():
        role = m.get("role")
        content = m.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        content = content or []
        if role == "system":
            out.append({"role": "system", "content": text_of(content)})
        elif role == "assistant":
            msg: dict = {"role": "assistant"}
            msg.update(_thinking_fields(content))
            text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
            calls = [{"id": b.get("id"), "type": "function",
                      "function": {"name": short_name(b.get("name", "")),
                                   "arguments": orjson.dumps(b.get("input") or {}).decode()}}
                     for b in content if b.get("type") == "tool_use"]
            msg["content"] = text if (text or not calls) else None
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
        else:
            # tool_results first, as role:tool messages; the rest of the turn as one user message.
            rest, moved = [], []
            for b in content:
                if b.get("type") == "tool_result":
                    text, images = _result_text_and_images(b.get("content"))
                    if b.get("is_error") and not text.startswith("Error"):
                        text = "Error: " + text
                    out.append({"role": "tool", "tool_call_id": b.get("tool_use_id"), "content": text})
                    moved.extend(images)        # tool messages are text-only in chat
                else:
                    rest.append(b)
            rest = moved + rest
            if rest:
                out.append({"role": "user", "content": _blocks_to_parts(rest)})
    return out


def from_canonical(canonical: dict, model: str) -> dict:
    """The canonical request as an OpenAI chat request body for an upstream."""
    body: dict = {"model": model, "messages": _messages_from_canonical(canonical)}
    extra = dict(canonical.get(EXTRA) or {})
    if canonical.get("max_tokens") is not None and not (extra.pop("_default_max", False) and canonical["max_tokens"] == 8192):
        key = "max_completion_tokens" if "max_completion_tokens" in extra else "max_tokens"
        body[key] = canonical["max_tokens"]
        extra.pop("max_completion_tokens", None)
    for k in ("temperature", "top_p"):
        if canonical.get(k) is not None:
            body[k] = canonical[k]
    if canonical.get("stop_sequences"):
        body["stop"] = canonical["stop_sequences"]
    strict = set(extra.pop("strict_tools", None) or ())
    tools = [t for t in canonical.get("tools") or () if isinstance(t, dict) and t.get("type") in (None, "custom")]
    if tools:
        body["tools"] = [{"type": "function", "function": {
            "name": short_name(t["name"]), **({"description": t["description"]} if t.get("description") else {}),
            "parameters": _schema(t.get("input_schema")),
            **({"strict": True} if t["name"] in strict else {})}} for t in tools]
        tc = canonical.get("tool_choice") or {}
        ty = tc.get("type")
        if ty == "any":
            body["tool_choice"] = "required"
        elif ty == "tool":
            body["tool_choice"] = {"type": "function", "function": {"name": short_name(tc.get("name", ""))}}
        elif ty in ("auto", "none"):
            body["tool_choice"] = ty
        if tc.get("disable_parallel_tool_use"):
            body["parallel_tool_calls"] = False
    if canonical.get("stream"):
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    for k, v in extra.items():
        if k == "stream_options" and body.get("stream"):
            body["stream_options"] = {**v, "include_usage": True} if isinstance(v, dict) else body["stream_options"]
        elif k not in body and not k.startswith("_") and (k != "parallel_tool_calls" or "tools" in body):
            body[k] = v
    return body


# ---- upstream answer → canonical --------------------------------------------------------

def message_from_openai(resp: dict, request: dict | None = None) -> dict:
    """A chat completion → a complete canonical message."""
    names = name_map(request)
    choices = resp.get("choices") or []
    msg = (choices[0].get("message") if choices else None) or {}
    finish = choices[0].get("finish_reason") if choices else None
    content = _reasoning_blocks(msg)
    text = msg.get("content")
    if isinstance(text, list):
        text = text_of(text)
    if text:
        content.append({"type": "text", "text": text})
    if msg.get("refusal") and not text:
        content.append({"type": "text", "text": msg["refusal"]})
    calls = msg.get("tool_calls") or []
    for tc in calls:
        f = tc.get("function") or {}
        name = f.get("name") or ""
        content.append({"type": "tool_use", "id": tc.get("id") or new_id("toolu_"),
                        "name": names.get(name, name), "input": _parse_args(f.get("arguments"))})
    return {"id": resp.get("id") or new_id("msg_"), "type": "message", "role": "assistant",
            "model": resp.get("model") or (request or {}).get("model", ""), "content": content,
            "stop_reason": finish_to_stop(finish, bool(calls)), "stop_sequence": None,
            "usage": usage_from_openai(resp.get("usage"))}


class _Tool:
    __slots__ = ("id", "name", "text")

    def __init__(self, id, name):
        self.id, self.name, self.text = id, name, ""


async def events_from_openai(chunks, request: dict | None = None):
    """Parsed chat-completion chunks → canonical Anthropic events, as they arrive.

    One block is open at a time: text and reasoning flow through; the first tool call streams as
    `input_json_delta`; a parallel call that starts while another is open is buffered and
    flushed whole once the open one closes. `stop_reason` is `tool_use` whenever a tool was called.
    An `error` chunk (OpenRouter after a 200) raises ProxyError, which renderers send in the
    client's mid-stream error shape.
    """
    names = name_map(request)
    started = False
    index = -1                      # index of the open block
    kind = None                     # "text" | "thinking" | "tool" | None
    live: _Tool | None = None
    live_oi = None
    done_ois: set = set()
    buffered: dict = {}             # openai index → _Tool, in arrival order
    finish = None
    usage = None
    tool_called = False
    msg_id, model = None, (request or {}).get("model", "")
    signature = None

    def start_msg():
        return {"type": "message_start", "message": {
            "id": msg_id or new_id("msg_"), "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}}

    def close():
        nonlocal kind, live, live_oi, signature
        evs = []
        if kind == "thinking":
            evs.append({"type": "content_block_delta", "index": index,
                        "delta": {"type": "signature_delta", "signature": signature or SYNTHETIC_SIGNATURE}})
            signature = None
        elif kind == "tool" and live is not None:
            if not live.text.strip():
                evs.append({"type": "content_block_delta", "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": "{}"}})
            done_ois.add(live_oi)
            live, live_oi = None, None
        if kind is not None:
            evs.append({"type": "content_block_stop", "index": index})
        kind = None
        return evs

    def open_block(k, block):
        nonlocal index, kind
        index += 1
        kind = k
        return {"type": "content_block_start", "index": index, "content_block": block}

    def tool_events(t: _Tool):
        nonlocal tool_called
        tool_called = True
        name = names.get(t.name, t.name)
        return [open_block("tool", {"type": "tool_use", "id": t.id or new_id("toolu_"), "name": name, "input": {}})]

    def complete_json(s: str) -> bool:
        try:
            orjson.loads(s)
            return True
        except orjson.JSONDecodeError:
            return False

    async for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        if chunk.get("error"):
            err = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
            code = err.get("code")
            status = code if isinstance(code, int) and 400 <= code < 600 else 502
            raise ProxyError(status, err.get("message") or "upstream error", code=str(code) if code else None)
        if not started:
            msg_id = chunk.get("id")
            model = chunk.get("model") or model
            started = True
            yield start_msg()
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content")
            if not isinstance(reasoning, str):
                reasoning = delta.get("reasoning") if isinstance(delta.get("reasoning"), str) else None
            for d in delta.get("reasoning_details") or ():
                if isinstance(d, dict) and d.get("signature"):
                    signature = (signature or "") + d["signature"]
                if isinstance(d, dict) and not reasoning and isinstance(d.get("text"), str):
                    reasoning = d["text"]
            if reasoning:
                if kind != "thinking":
                    for e in close():
                        yield e
                    yield open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                yield {"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": reasoning}}
            text = delta.get("content")
            if isinstance(text, list):
                text = text_of(text)
            if not text and delta.get("refusal"):
                text = delta["refusal"]
            if text:
                if kind != "text":
                    for e in close():
                        yield e
                    yield open_block("text", {"type": "text", "text": ""})
                yield {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}
            for pos, tc in enumerate(delta.get("tool_calls") or ()):
                if not isinstance(tc, dict):
                    continue
                f = tc.get("function") or {}
                oi = tc.get("index")
                if oi is None:     # some servers omit it: a new id starts a new call
                    if tc.get("id") and (live is None or tc["id"] != live.id) and tc["id"] not in {t.id for t in buffered.values()}:
                        oi = max([*done_ois, *buffered, live_oi if live_oi is not None else -1, -1]) + 1
                    else:
                        oi = live_oi if live_oi is not None else pos
                frag = f.get("arguments")
                if isinstance(frag, dict):
                    frag = orjson.dumps(frag).decode()
                frag = frag or ""
                if oi == live_oi and live is not None:
                    t = live
                elif oi in buffered:
                    t = buffered[oi]
                elif oi in done_ois:
                    continue                  # fragments after a call closed would corrupt it
                else:
                    t = _Tool(tc.get("id"), f.get("name") or "")
                    # A new call streams live when nothing else is open (or the open call's JSON is
                    # complete) and its name is known; otherwise it is buffered and flushed whole.
                    if t.name and (live is None or complete_json(live.text)):
                        for e in close():
                            yield e
                        live, live_oi = t, oi
                        for e in tool_events(t):
                            yield e
                    else:
                        buffered[oi] = t
                if f.get("name") and not t.name:
                    t.name = f["name"]
                acc = t.text
                if acc and len(frag) > len(acc) and frag.startswith(acc):
                    frag = frag[len(acc):]     # a server sending cumulative snapshots, not deltas
                elif acc and frag == acc and complete_json(acc):
                    frag = ""
                if frag:
                    t.text += frag
                    if t is live:
                        yield {"type": "content_block_delta", "index": index,
                               "delta": {"type": "input_json_delta", "partial_json": frag}}
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    if not started:
        yield start_msg()
    for e in close():
        yield e
    for oi, t in buffered.items():
        for e in tool_events(t):
            yield e
        yield {"type": "content_block_delta", "index": index,
               "delta": {"type": "input_json_delta", "partial_json": t.text if t.text.strip() else "{}"}}
        yield {"type": "content_block_stop", "index": index}
        kind = None
    u = usage_from_openai(usage)
    yield {"type": "message_delta", "delta": {"stop_reason": finish_to_stop(finish, tool_called), "stop_sequence": None},
           "usage": u}
    yield {"type": "message_stop"}


# ---- canonical answer → client --------------------------------------------------------

_ERROR_TYPES = {"overloaded_error": "server_error", "api_error": "server_error", "request_too_large": "invalid_request_error",
                "timeout_error": "server_error", "not_found_error": "invalid_request_error"}
_ERROR_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded", 413: "request_too_large"}


def error_body(err: ProxyError) -> dict:
    code = err.code if err.code and err.code != err.type else _ERROR_CODES.get(err.status)
    return {"error": {"message": err.message, "type": _ERROR_TYPES.get(err.type, err.type), "param": None, "code": code}}


def error_response(err: ProxyError, headers: dict | None = None) -> web.Response:
    h = dict(headers or {})
    if err.retry_after is not None:
        h["retry-after"] = str(max(0, int(round(err.retry_after))))
    h["x-should-retry"] = "true" if err.retryable else "false"
    return web.Response(status=err.status, body=orjson.dumps(error_body(err)), content_type="application/json", headers=h)


def message_to_completion(message: dict, model: str | None = None) -> dict:
    text, reasoning, calls = [], [], []
    for b in message.get("content") or ():
        t = b.get("type")
        if t == "text":
            text.append(b.get("text", ""))
        elif t == "thinking":
            reasoning.append(b.get("thinking", ""))
        elif t == "tool_use":     # server_tool_use ran upstream; the client has nothing to execute
            calls.append({"id": b.get("id"), "type": "function",
                          "function": {"name": b.get("name"), "arguments": orjson.dumps(b.get("input") or {}).decode()}})
    msg: dict = {"role": "assistant", "content": "".join(text) if (text or not calls) else None}
    if reasoning:
        msg["reasoning_content"] = "".join(reasoning)
    if calls:
        msg["tool_calls"] = calls
    msg.setdefault("refusal", None)
    return {"id": _chat_id(message.get("id")), "object": "chat.completion", "created": now(),
            "model": model or message.get("model", ""),
            "choices": [{"index": 0, "message": msg, "logprobs": None,
                         "finish_reason": stop_to_finish(message.get("stop_reason"), bool(calls))}],
            "usage": usage_to_openai(message.get("usage"))}


def _chat_id(mid) -> str:
    mid = mid or new_id("")
    return mid if str(mid).startswith("chatcmpl") else "chatcmpl-" + str(mid)


async def render(request: web.Request, x: Exchange) -> web.StreamResponse:
    model = x.original.get("model") if isinstance(x.original, dict) else None

    async def write_stream(out, events, acc):
        nonlocal model
        opts = x.original.get("stream_options") if isinstance(x.original, dict) else None
        include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
        cid, created = _chat_id(None), now()
        tool_pos = -1
        in_tool = False
        finish = None
        tool_called = False
        stopped = False

        def chunk(delta: dict, finish_reason=None) -> bytes:
            return sse_data({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model or "",
                             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]})
        async with KeepAlive(out.write, b": ping\n\n", ping_interval(x)) as ka:
            try:
                async for ev in events:
                    ka.touch()
                    t = ev.get("type")
                    acc.feed(ev)
                    if t == "message_start":
                        m = ev.get("message") or {}
                        cid = _chat_id(m.get("id"))
                        model = model or m.get("model")
                        await out.write(chunk({"role": "assistant", "content": ""}))
                    elif t == "content_block_start":
                        b = ev.get("content_block") or {}
                        in_tool = b.get("type") == "tool_use"
                        if in_tool:
                            tool_pos += 1
                            tool_called = True
                            await out.write(chunk({"tool_calls": [{"index": tool_pos, "id": b.get("id"), "type": "function",
                                                                   "function": {"name": b.get("name"), "arguments": ""}}]}))
                    elif t == "content_block_delta":
                        d = ev.get("delta") or {}
                        dt = d.get("type")
                        if dt == "text_delta":
                            await out.write(chunk({"content": d.get("text", "")}))
                        elif dt == "input_json_delta" and in_tool and d.get("partial_json"):
                            await out.write(chunk({"tool_calls": [{"index": tool_pos, "function": {"arguments": d["partial_json"]}}]}))
                        elif dt == "thinking_delta":
                            await out.write(chunk({"reasoning_content": d.get("thinking", "")}))
                    elif t == "message_delta":
                        finish = (ev.get("delta") or {}).get("stop_reason") or finish
                    elif t == "message_stop":
                        stopped = True
                    elif t == "error":
                        raise ProxyError(500, ((ev.get("error") or {}).get("message")) or "upstream error")
                if not stopped:
                    # A finish_reason and [DONE] would tell the client a cut-off answer was whole.
                    raise ProxyError(502, "the upstream stream ended before the message was complete")
                await out.write(chunk({}, stop_to_finish(finish, tool_called)))
                if include_usage:
                    await out.write(sse_data({"id": cid, "object": "chat.completion.chunk", "created": created,
                                              "model": model or "", "choices": [], "usage": usage_to_openai(acc.usage)}))
                await out.write(b"data: [DONE]\n\n")
            except ProxyError as e:
                await out.write(sse_data(error_body(e)))

    return await respond(request, x, error_response=error_response,
                         to_body=lambda m: message_to_completion(m, model), write_stream=write_stream)


