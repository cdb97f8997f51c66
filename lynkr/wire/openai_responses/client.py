"""The client half of Responses (`POST /v1/responses`, what Codex CLI speaks): a Responses request
→ the canonical (Anthropic) request, and a canonical message or event stream → a response object
or Responses events.

Input items map onto canonical turns: developer/system messages → system, `function_call` and
`custom_tool_call` → `tool_use`, their outputs → `tool_result`, `reasoning` → a thinking block.
Custom (freeform grammar) tools become one-string-parameter functions (`{"input": "..."}`) and are
turned back into `custom_tool_call` items.

Streaming follows the order Codex and the SDK require: `response.created`, then per item
`output_item.added` before any delta, the deltas, `…done` events, `output_item.done` with the
complete item, and `response.completed` with integer usage — no `[DONE]`.
"""
from __future__ import annotations

import orjson
from aiohttp import web

from lynkr.errors import ProxyError
from lynkr.exchange import Exchange
from lynkr.wire.canonical import SYNTHETIC_SIGNATURE, image_block_from_url, new_id, now, usage_to_responses
from lynkr.wire.events import KeepAlive
from lynkr.wire.openai_errors import error_type, json_error
from lynkr.wire.openai_responses.common import EXTRA, args_of, reasoning_block
from lynkr.wire.render import ping_interval, respond
from lynkr.wire.sse import sse_event

__all__ = ["CLIENT", "to_canonical", "render", "error_response", "error_body", "message_to_response"]

CLIENT = "openai_responses"
_MAPPED = {"model", "input", "instructions", "tools", "tool_choice", "max_output_tokens", "temperature", "top_p",
           "stream"}
_CUSTOM_SCHEMA = {"type": "object", "properties": {"input": {"type": "string", "description": "the raw tool input"}},
                  "required": ["input"]}
_CALLS = ("function_call", "custom_tool_call", "local_shell_call")
_OUTPUTS = ("function_call_output", "custom_tool_call_output", "local_shell_call_output")


def _bad(msg: str, code: str | None = None, param: str | None = None) -> ProxyError:
    e = ProxyError(400, msg, code=code)
    e.param = param
    return e


# ---- client request → canonical --------------------------------------------------------

def _part(p, where: str, j: int) -> dict | None:
    if not isinstance(p, dict):
        raise _bad(f"{where}.content[{j}]: must be an object", param=where)
    t = p.get("type")
    if t in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
        return {"type": "text", "text": p.get("text") or ""}
    if t == "input_image":
        url = p.get("image_url")
        if isinstance(url, dict):
            url = url.get("url")
        return image_block_from_url(url) if isinstance(url, str) else None
    if t == "input_file" and str(p.get("file_data", "")).startswith("data:"):
        head, _, data = p["file_data"].partition(",")
        return {"type": "document", "source": {"type": "base64", "media_type": head[5:].split(";")[0], "data": data}}
    if t == "refusal":
        return {"type": "text", "text": p.get("refusal") or ""}
    return {"type": "text", "text": orjson.dumps(p).decode()}


def _parts(content, where: str) -> list:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _bad(f"{where}.content: must be a string or a list of content parts", param=where)
    return [b for b in (_part(p, where, j) for j, p in enumerate(content)) if b is not None]


class _Turns:
    """Input items → canonical messages (and system blocks before the first turn)."""

    def __init__(self, system: list):
        self.system = system
        self.msgs: list = []
        self.seen_turn = False

    def push(self, role: str, blocks: list, merge: bool = True) -> None:
        if merge and self.msgs and self.msgs[-1]["role"] == role and role != "system":
            self.msgs[-1]["content"].extend(blocks)
        else:
            self.msgs.append({"role": role, "content": list(blocks)})

    def read(self, items: list) -> list:
        for i, item in enumerate(items):
            where = f"input[{i}]"
            if not isinstance(item, dict):
                raise _bad(f"{where}: must be an object", param=where)
            t = item.get("type") or ("message" if "role" in item else None)
            if t == "message":
                self.message(item, i, where)
                continue
            if t == "item_reference":
                raise _bad(f"{where}: item_reference needs stored responses, which this proxy does not keep", param=where)
            self.seen_turn = True
            if t in _CALLS:
                self.call(item, t)
            elif t in _OUTPUTS:
                self.output(item, where)
            elif t == "reasoning":
                self.push("assistant", [reasoning_block(item)])
            else:
                # web_search_call, compaction, …: opaque to other upstreams, kept for a Responses upstream.
                self.push("assistant" if t and t.endswith("_call") else "user", [{"type": "_openai_item", "item": item}])
        return self.msgs

    def message(self, item: dict, i: int, where: str) -> None:
        role = item.get("role")
        blocks = _parts(item.get("content"), where)
        if role in ("developer", "system"):
            marked = [{**b, "_item": i, "_role": role} for b in blocks]
            if not self.seen_turn:
                self.system.extend(marked)
            else:
                self.push("system", marked, merge=False)
        elif role == "user":
            self.seen_turn = True
            self.push("user", blocks, merge=False)     # one turn per message, so the round trip keeps them apart
        elif role == "assistant":
            self.seen_turn = True
            self.push("assistant", blocks)
        else:
            raise _bad(f"{where}.role: must be user, assistant, developer or system (got {role!r})", param=where)

    def call(self, item: dict, t: str) -> None:
        call_id = item.get("call_id") or item.get("id") or new_id("call_")
        if t == "function_call":
            inp = args_of(item.get("arguments"))
        elif t == "custom_tool_call":
            inp = {"input": item.get("input") or ""}
        else:
            inp = item.get("action") or {}
        block = {"type": "tool_use", "id": call_id,
                 "name": item.get("name") or ("local_shell" if t == "local_shell_call" else ""), "input": inp}
        if item.get("namespace"):
            block["_namespace"] = item["namespace"]
        self.push("assistant", [block])

    def output(self, item: dict, where: str) -> None:
        out = item.get("output")
        content = out if isinstance(out, str) else _parts(out, where) if isinstance(out, list) else orjson.dumps(out).decode()
        block = {"type": "tool_result", "tool_use_id": item.get("call_id") or "", "content": content}
        if self.msgs and self.msgs[-1]["role"] == "user" and all(b.get("type") == "tool_result" for b in self.msgs[-1]["content"]):
            self.msgs[-1]["content"].append(block)
        else:
            self.msgs.append({"role": "user", "content": [block]})


def _tool_def(t, j: int, extra_lists: dict) -> dict | None:
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
            extra_lists["strict_tools"].append(f["name"])
        return tool
    if ty == "custom":
        tool = {"name": t.get("name"), "input_schema": _CUSTOM_SCHEMA}
        if t.get("description"):
            tool["description"] = t["description"]
        extra_lists["custom_tools"].append(t)
        return tool
    extra_lists["other_tools"].append(t)   # namespace, web_search, local_shell, …: only a Responses upstream takes them
    return None


def _tools(body: dict, canonical: dict, extra: dict) -> None:
    tools_in = body.get("tools")
    if tools_in is None:
        return
    if not isinstance(tools_in, list):
        raise _bad("tools: must be a list", param="tools")
    lists: dict = {"custom_tools": [], "other_tools": [], "strict_tools": []}
    tools = [d for d in (_tool_def(t, j, lists) for j, t in enumerate(tools_in)) if d is not None]
    if tools:
        canonical["tools"] = tools
    extra.pop("tools", None)
    extra["tools_order"] = [t.get("name") or t.get("type") for t in tools_in if isinstance(t, dict)]
    extra.update({k: v for k, v in lists.items() if v})


def _tool_choice(body: dict, canonical: dict) -> None:
    tc = body.get("tool_choice")
    if not canonical.get("tools") or tc is None:
        return
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


def _input_of(body) -> list:
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
    return inp


def to_canonical(body) -> dict:
    inp = _input_of(body)
    system: list = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        system.append({"type": "text", "text": instructions})
    canonical: dict = {"model": body.get("model") or "", "messages": _Turns(system).read(inp)}
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
    _tools(body, canonical, extra)
    _tool_choice(body, canonical)
    extra["tool_choice"] = body.get("tool_choice")
    if mt is None:
        extra["_default_max"] = True
    canonical[EXTRA] = extra
    return canonical


# ---- canonical answer → Codex / Responses client ----------------------------------------

def error_body(err: ProxyError) -> dict:
    code = err.code if err.code and err.code != err.type else (
        {429: "rate_limit_exceeded", 401: "invalid_api_key", 529: "server_is_overloaded", 503: "server_is_overloaded"}.get(err.status))
    return {"error": {"message": err.message, "type": error_type(err.type),
                      "param": getattr(err, "param", None), "code": code}}


def error_response(err: ProxyError, headers: dict | None = None) -> web.Response:
    return json_error(err, error_body(err), headers)


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
