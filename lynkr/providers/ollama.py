"""Ollama's native API: `/api/chat` (NDJSON stream), `/api/embed`, `/api/tags`.

    ollama: {kind: ollama, base_url: http://localhost:11434, num_ctx: 65536, keep_alive: 5m, think: true}

What the native API needs that a naive converter misses (protocols.md §5):
- `options.num_ctx` is always set: Ollama's default (4 K below 24 GiB VRAM) silently truncates
  Claude Code's system prompt and tools;
- `content` is a string, images go in `images[]` as raw base64, tool arguments are objects and
  tool results are `role: tool` messages with `tool_name`;
- tool calls arrive whole and `done_reason` is `stop` even when a tool was called → `tool_use`;
- an error mid-stream is a final `{"error": …}` line under a 200.
"""
from __future__ import annotations

import time

import orjson

from lynkr.errors import ProxyError
from lynkr.exchange import Exchange, Response
from lynkr.wire.canonical import SYNTHETIC_SIGNATURE
from lynkr.providers.base import Provider, provider_options
from lynkr.providers.prepare import block_text, prune_schema, strip_billing, system_text, tool_result_text
from lynkr.wire.builder import EventBuilder, new_message_id, new_tool_id

__all__ = ["OllamaProvider", "to_ollama"]

_STOP = {"stop": "end_turn", "length": "max_tokens", "load": "end_turn", "unload": "end_turn"}
_DROP = frozenset({"$schema", "additionalProperties", "format", "default", "const", "examples", "$id", "title"})


def to_ollama(request: dict, model: str, *, num_ctx: int | None, keep_alive=None, max_output: int | None = None,
              think=None) -> dict:
    msgs: list[dict] = []
    sys_text = system_text(strip_billing(request.get("system")))
    if sys_text:
        msgs.append({"role": "system", "content": sys_text})
    names: dict[str, str] = {}          # tool_use id -> name, for tool results' `tool_name`
    for m in request.get("messages") or []:
        content = m.get("content") or []
        if m.get("role") == "system":     # Claude Code sends mid-conversation system turns
            text = "\n\n".join(block_text(b) for b in content if block_text(b))
            if text:
                msgs.append({"role": "system", "content": text})
            continue
        if m.get("role") == "assistant":
            out: dict = {"role": "assistant", "content": ""}
            texts, thinking, calls = [], [], []
            for b in content:
                t = b.get("type")
                if t == "text":
                    texts.append(b.get("text", ""))
                elif t == "thinking":
                    thinking.append(b.get("thinking", ""))
                elif t == "tool_use":
                    names[b.get("id", "")] = b.get("name", "")
                    calls.append({"id": b.get("id"), "function": {"index": len(calls), "name": b.get("name"),
                                                                  "arguments": b.get("input") or {}}})
            out["content"] = "".join(texts)
            if thinking:
                out["thinking"] = "".join(thinking)
            if calls:
                out["tool_calls"] = calls
            msgs.append(out)
            continue
        # user turn: tool results first (as `tool` messages), then the text and images
        texts, images = [], []
        for b in content:
            t = b.get("type")
            if t == "tool_result":
                tid = b.get("tool_use_id", "")
                text = tool_result_text(b)
                if b.get("is_error"):
                    text = "Error: " + text
                msgs.append({"role": "tool", "content": text, "tool_name": names.get(tid, ""), "tool_call_id": tid})
            elif t == "image" and (b.get("source") or {}).get("type") == "base64":
                images.append(b["source"].get("data", ""))
            else:
                s = block_text(b)
                if s:
                    texts.append(s)
        if texts or images:
            um: dict = {"role": "user", "content": "\n\n".join(texts)}
            if images:
                um["images"] = images
            msgs.append(um)
    body: dict = {"model": model, "messages": msgs, "stream": bool(request.get("stream"))}
    tools = request.get("tools") or []
    fn_tools = [t for t in tools if t.get("input_schema") is not None or t.get("type") in (None, "custom")]
    if fn_tools and (request.get("tool_choice") or {}).get("type") != "none":
        body["tools"] = [{"type": "function", "function": {
            "name": t["name"], "description": t.get("description", ""),
            "parameters": prune_schema(t.get("input_schema") or {"type": "object", "properties": {}}, drop=_DROP)}}
            for t in fn_tools]
    opts: dict = {}
    if num_ctx:
        opts["num_ctx"] = int(num_ctx)
    if request.get("max_tokens"):
        mt = int(request["max_tokens"])
        opts["num_predict"] = min(mt, max_output) if max_output else mt
    for k in ("temperature", "top_p", "top_k"):
        if request.get(k) is not None:
            opts[k] = request[k]
    if request.get("stop_sequences"):
        opts["stop"] = list(request["stop_sequences"])
    if opts:
        body["options"] = opts
    # Claude Code asks for thinking on every request, and Ollama answers 400 "does not support
    # thinking" for most models, so `think` is sent only when the provider entry says so.
    th = request.get("thinking")
    if think is not None and isinstance(th, dict) and th.get("type") in ("enabled", "adaptive"):
        body["think"] = think
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    return body


def _usage(d: dict) -> dict:
    return {"input_tokens": int(d.get("prompt_eval_count") or 0), "output_tokens": int(d.get("eval_count") or 0)}


def message_from_ollama(d: dict, model: str) -> dict:
    msg = d.get("message") or {}
    content: list[dict] = []
    if msg.get("thinking"):
        content.append({"type": "thinking", "thinking": msg["thinking"], "signature": SYNTHETIC_SIGNATURE})
    if msg.get("content"):
        content.append({"type": "text", "text": msg["content"]})
    calls = msg.get("tool_calls") or []
    for c in calls:
        fn = c.get("function") or {}
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = orjson.loads(args) if args.strip() else {}
            except orjson.JSONDecodeError:
                args = {}
        content.append({"type": "tool_use", "id": c.get("id") or new_tool_id(), "name": fn.get("name", ""),
                        "input": args or {}})
    stop = "tool_use" if calls else _STOP.get(d.get("done_reason") or "stop", "end_turn")
    return {"id": new_message_id(), "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop, "stop_sequence": None, "usage": _usage(d)}


async def ndjson_lines(content):
    buf = b""
    async for chunk in content.iter_any():
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield line
    if buf.strip():
        yield buf


class OllamaProvider(Provider):
    kind = "ollama"
    summary = "Ollama's native API (/api/chat), local or behind a proxy."
    options_schema = provider_options(
        num_ctx={"type": "integer", "minimum": 1, "default": 65536, "description": "the context window asked for"},
        keep_alive={"type": ["string", "integer"], "description": "how long the model stays loaded (5m, -1)"},
        think={"type": ["boolean", "string"], "description": "thinking: true, low, medium or high; unset = the model's default"},
    )

    def __init__(self, name: str, config: dict):
        super().__init__(name, config)
        self.num_ctx = config.get("num_ctx", 65536)
        self.keep_alive = config.get("keep_alive") or None
        self.think = config.get("think")          # true | "low" | "medium" | "high"; unset = model default

    def local_models(self) -> bool:
        return True

    def _headers(self) -> dict:
        h = {"content-type": "application/json"}
        if self.api_key:       # Ollama behind an authenticating proxy, or ollama.com
            h["authorization"] = f"Bearer {self.api_key}"
        return h

    async def send(self, x: Exchange, model: str) -> Response:
        body = to_ollama(x.request, model, num_ctx=self.num_ctx, keep_alive=self.keep_alive,
                         max_output=self.model_limit(model), think=self.think)
        x.upstream_request = body
        resp = await self.post(self.base_url + "/api/chat", body, self._headers(), x=x)
        first = time.perf_counter()
        if body["stream"]:
            return Response(events=self._events(resp, model), first_byte_at=first)
        data = await self.read_json(resp)
        if data.get("error"):
            raise ProxyError(502, str(data["error"]), provider=self.name, retryable=True)
        msg = message_from_ollama(data, model)
        return Response(message=msg, usage=msg["usage"], first_byte_at=first, upstream_done_at=time.perf_counter())

    async def _events(self, resp, model: str):
        eb = EventBuilder(model)
        try:
            async for line in ndjson_lines(resp.content):
                d = orjson.loads(line)
                if d.get("error"):
                    raise ProxyError(502, str(d["error"]), provider=self.name)
                if not eb.started:
                    for ev in eb.start():
                        yield ev
                msg = d.get("message") or {}
                if msg.get("thinking"):
                    for ev in eb.thinking(msg["thinking"]):
                        yield ev
                if msg.get("content"):
                    for ev in eb.text(msg["content"]):
                        yield ev
                for c in msg.get("tool_calls") or []:
                    fn = c.get("function") or {}
                    for ev in eb.tool(c.get("id"), fn.get("name", ""), fn.get("arguments")):
                        yield ev
                if d.get("done"):
                    for ev in eb.finish(_STOP.get(d.get("done_reason") or "stop", "end_turn"), _usage(d)):
                        yield ev
                    return
            raise ProxyError(502, f"provider '{self.name}' ended the stream without `done`", provider=self.name)
        finally:
            resp.release()

    # -- not on the chat path: embeddings for caches and routers, model lists for /v1/models -----
    async def embed(self, texts: list[str], model: str) -> list[list[float]]:
        resp = await self.post(self.base_url + "/api/embed", {"model": model, "input": texts}, self._headers())
        return (await self.read_json(resp)).get("embeddings") or []

    async def tags(self) -> list[str]:
        try:
            resp = await self.session.get(self.base_url + "/api/tags", headers=self._headers())
        except Exception as e:
            from lynkr.providers.resilience import as_proxy_error
            raise as_proxy_error(e, self.name) from None
        data = await self.read_json(resp)
        return [m.get("name") for m in data.get("models") or [] if m.get("name")]
