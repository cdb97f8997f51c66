"""The client half of Chat Completions (`POST /v1/chat/completions`: Cursor, Cline, Continue):
a chat request → the canonical (Anthropic) request, and a canonical message or event stream →
a chat completion or `data:` chunks ending in `[DONE]`."""
from __future__ import annotations

import orjson
from aiohttp import web

from lynkr.errors import ProxyError
from lynkr.exchange import Exchange
from lynkr.wire.canonical import image_block_from_url, new_id, now, stop_to_finish, usage_to_openai
from lynkr.wire.events import KeepAlive
from lynkr.wire.openai_chat.common import EXTRA, bad, parse_args, reasoning_blocks
from lynkr.wire.openai_errors import error_type, json_error
from lynkr.wire.render import ping_interval, respond
from lynkr.wire.sse import sse_data

__all__ = ["CLIENT", "to_canonical", "render", "error_response", "error_body", "message_to_completion"]

CLIENT = "openai_chat"

# Chat request fields the conversion maps; everything else is kept under EXTRA.
_MAPPED = {"model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_tokens",
           "max_completion_tokens", "temperature", "top_p", "stop", "stream", "functions", "function_call"}


# ---- client request → canonical --------------------------------------------------------

def _part_to_block(p, where: str, j: int) -> dict:
    if isinstance(p, str):
        return {"type": "text", "text": p}
    if not isinstance(p, dict):
        raise bad(f"{where}.content[{j}]: must be an object")
    t = p.get("type")
    if t in ("text", "input_text", "output_text"):
        return {"type": "text", "text": p.get("text") or ""}
    if t in ("image_url", "input_image"):
        iu = p.get("image_url")
        url = iu.get("url") if isinstance(iu, dict) else iu
        if not isinstance(url, str):
            raise bad(f"{where}.content[{j}].image_url: needs a url")
        return image_block_from_url(url)
    if t == "refusal":
        return {"type": "text", "text": p.get("refusal") or ""}
    if t == "file" and isinstance(p.get("file"), dict) and str(p["file"].get("file_data", "")).startswith("data:"):
        head, _, data = p["file"]["file_data"].partition(",")
        return {"type": "document", "source": {"type": "base64", "media_type": head[5:].split(";")[0], "data": data}}
    return {"type": "text", "text": orjson.dumps(p).decode()}   # unknown part: keep it visible


def _parts_to_blocks(content, where: str) -> list:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise bad(f"{where}.content: must be a string or a list of content parts")
    return [_part_to_block(p, where, j) for j, p in enumerate(content)]


def _tool_from_openai(t: dict, j: int) -> dict | None:
    if not isinstance(t, dict):
        raise bad(f"tools[{j}]: must be an object")
    if t.get("type") in (None, "function"):
        f = t.get("function") if isinstance(t.get("function"), dict) else t   # nested (chat) or flat (Cursor)
        name = f.get("name")
        if not isinstance(name, str) or not name:
            raise bad(f"tools[{j}].function.name: required")
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


def _assistant_blocks(m: dict, where: str) -> list:
    blocks = reasoning_blocks(m) + _parts_to_blocks(m.get("content"), where)
    calls = m.get("tool_calls") or []
    if m.get("function_call"):
        calls = list(calls) + [{"id": new_id("call_"), "function": m["function_call"]}]
    for k, tc in enumerate(calls):
        if not isinstance(tc, dict):
            raise bad(f"{where}.tool_calls[{k}]: must be an object")
        f = tc.get("function") or tc.get("custom") or {}
        args = f.get("arguments", f.get("input"))
        inp = ({"input": args} if tc.get("type") == "custom"
               else parse_args(args, f"{where}.tool_calls[{k}].function"))
        blocks.append({"type": "tool_use", "id": tc.get("id") or new_id("call_"),
                       "name": f.get("name") or "", "input": inp})
    return blocks


def _add_tool_result(out: list, m: dict, where: str) -> None:
    c = m.get("content")
    result = {"type": "tool_result", "tool_use_id": m.get("tool_call_id") or m.get("name") or "",
              "content": c if isinstance(c, str) else _parts_to_blocks(c, where)}
    prev = out[-1] if out else None
    # Consecutive tool messages answer one assistant turn: one user turn of tool_results.
    if prev is not None and prev["role"] == "user" and prev.get("_tool_results"):
        prev["content"].append(result)
    else:
        out.append({"role": "user", "content": [result], "_tool_results": True})


def _turns(messages: list) -> tuple[list, list]:
    """(system blocks, canonical messages). System messages before the first turn are the system
    prompt; later ones stay turns of their own."""
    system: list = []
    out: list = []
    seen_other = False
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(f"{where}: must be an object")
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
            out.append({"role": "assistant", "content": _assistant_blocks(m, where)})
        elif role in ("tool", "function"):
            _add_tool_result(out, m, where)
        else:
            raise bad(f"{where}.role: must be system, developer, user, assistant or tool (got {role!r})")
    for m in out:
        m.pop("_tool_results", None)
    return system, out


def _sampling(body: dict, canonical: dict) -> dict:
    """max_tokens, temperature, top_p, stop, stream; the flags that tell the upstream half which
    of them were filled in here."""
    mt = body.get("max_completion_tokens") or body.get("max_tokens")
    flags: dict = {}
    if mt is not None:
        if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
            raise bad("max_tokens: must be a positive integer")
        canonical["max_tokens"] = mt
    else:
        canonical["max_tokens"] = 8192      # Anthropic requires it; OpenAI clients often omit it
        flags = {"_default_max": True}
    for k in ("temperature", "top_p"):
        if body.get(k) is not None:
            canonical[k] = body[k]
    stop = body.get("stop")
    if stop:
        canonical["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("stream") is not None:
        canonical["stream"] = bool(body["stream"])
    return flags


def _tools(body: dict, canonical: dict, flags: dict) -> None:
    tools_in = body.get("tools")
    if tools_in is None and isinstance(body.get("functions"), list):
        tools_in = [{"type": "function", "function": f} for f in body["functions"]]
    if tools_in is not None:
        if not isinstance(tools_in, list):
            raise bad("tools: must be a list")
        tools = [t for t in (_tool_from_openai(t, j) for j, t in enumerate(tools_in)) if t]
        if tools:
            canonical["tools"] = tools
        strict = [(t.get("function") or t).get("name") for t in tools_in
                  if isinstance(t, dict) and (t.get("function") or t).get("strict")]
        if strict:
            flags["strict_tools"] = strict
    tc = _tool_choice(body.get("tool_choice", body.get("function_call")), body.get("parallel_tool_calls"))
    if tc and canonical.get("tools"):
        canonical["tool_choice"] = tc


def to_canonical(body) -> dict:
    if not isinstance(body, dict):
        raise bad("request body must be a JSON object")
    if "messages" not in body and "input" in body:
        # Cursor's agent mode sends Responses-shaped bodies to /chat/completions.
        from lynkr.wire import openai_responses
        return openai_responses.to_canonical(body)
    messages = body.get("messages")
    if messages is None:
        raise bad("messages: field required (a list of {role, content})")
    if not isinstance(messages, list):
        raise bad("messages: must be a list")
    if "model" in body and not isinstance(body["model"], str):
        raise bad("model: must be a string")
    system, out = _turns(messages)
    canonical: dict = {"model": body.get("model") or "", "messages": out}
    if system:
        canonical["system"] = system
    flags = _sampling(body, canonical)
    _tools(body, canonical, flags)
    extra = {k: v for k, v in body.items() if k not in _MAPPED}
    if "max_completion_tokens" in body:
        extra["max_completion_tokens"] = body["max_completion_tokens"]
    if body.get("parallel_tool_calls") is not None:
        extra["parallel_tool_calls"] = body["parallel_tool_calls"]
    extra.update(flags)
    if extra:
        canonical[EXTRA] = extra
    return canonical


# ---- canonical answer → client --------------------------------------------------------

_ERROR_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded", 413: "request_too_large"}


def error_body(err: ProxyError) -> dict:
    code = err.code if err.code and err.code != err.type else _ERROR_CODES.get(err.status)
    return {"error": {"message": err.message, "type": error_type(err.type), "param": None, "code": code}}


def error_response(err: ProxyError, headers: dict | None = None) -> web.Response:
    return json_error(err, error_body(err), headers)


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


class _ChunkWriter:
    """Canonical events → `chat.completion.chunk` lines: text and reasoning as they come, each
    tool_use block as one tool call (its index counting the calls), the finish reason at the end."""

    def __init__(self, x: Exchange, out: web.StreamResponse, model: str | None):
        opts = x.original.get("stream_options") if isinstance(x.original, dict) else None
        self.include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
        self.out, self.model = out, model
        self.cid, self.created = _chat_id(None), now()
        self.tool_pos = -1
        self.in_tool = False
        self.finish = None
        self.tool_called = False
        self.stopped = False

    def chunk(self, delta: dict, finish_reason=None) -> bytes:
        return sse_data({"id": self.cid, "object": "chat.completion.chunk", "created": self.created,
                         "model": self.model or "",
                         "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]})

    async def feed(self, ev: dict) -> None:
        t = ev.get("type")
        if t == "message_start":
            m = ev.get("message") or {}
            self.cid = _chat_id(m.get("id"))
            self.model = self.model or m.get("model")
            await self.out.write(self.chunk({"role": "assistant", "content": ""}))
        elif t == "content_block_start":
            b = ev.get("content_block") or {}
            self.in_tool = b.get("type") == "tool_use"
            if self.in_tool:
                self.tool_pos += 1
                self.tool_called = True
                await self.out.write(self.chunk({"tool_calls": [{"index": self.tool_pos, "id": b.get("id"), "type": "function",
                                                                 "function": {"name": b.get("name"), "arguments": ""}}]}))
        elif t == "content_block_delta":
            await self.delta(ev.get("delta") or {})
        elif t == "message_delta":
            self.finish = (ev.get("delta") or {}).get("stop_reason") or self.finish
        elif t == "message_stop":
            self.stopped = True
        elif t == "error":
            raise ProxyError(500, ((ev.get("error") or {}).get("message")) or "upstream error")

    async def delta(self, d: dict) -> None:
        dt = d.get("type")
        if dt == "text_delta":
            await self.out.write(self.chunk({"content": d.get("text", "")}))
        elif dt == "input_json_delta" and self.in_tool and d.get("partial_json"):
            await self.out.write(self.chunk({"tool_calls": [{"index": self.tool_pos,
                                                             "function": {"arguments": d["partial_json"]}}]}))
        elif dt == "thinking_delta":
            await self.out.write(self.chunk({"reasoning_content": d.get("thinking", "")}))

    async def end(self, usage: dict) -> None:
        if not self.stopped:
            # A finish_reason and [DONE] would tell the client a cut-off answer was whole.
            raise ProxyError(502, "the upstream stream ended before the message was complete")
        await self.out.write(self.chunk({}, stop_to_finish(self.finish, self.tool_called)))
        if self.include_usage:
            await self.out.write(sse_data({"id": self.cid, "object": "chat.completion.chunk", "created": self.created,
                                           "model": self.model or "", "choices": [], "usage": usage_to_openai(usage)}))
        await self.out.write(b"data: [DONE]\n\n")


async def render(request: web.Request, x: Exchange) -> web.StreamResponse:
    model = x.original.get("model") if isinstance(x.original, dict) else None

    async def write_stream(out, events, acc):
        w = _ChunkWriter(x, out, model)
        async with KeepAlive(out.write, b": ping\n\n", ping_interval(x)) as ka:
            try:
                async for ev in events:
                    ka.touch()
                    acc.feed(ev)
                    await w.feed(ev)
                await w.end(acc.usage)
            except ProxyError as e:
                await out.write(sse_data(error_body(e)))

    return await respond(request, x, error_response=error_response,
                         to_body=lambda m: message_to_completion(m, model), write_stream=write_stream)
