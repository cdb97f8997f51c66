"""Test doubles for every upstream kind. Each one VALIDATES the request it receives against the
provider's real rules (required fields, role order, tool shapes, tool call ↔ result pairing,
auth headers) and answers in the provider's real wire format, streaming or not, including the odd
parts: Ollama's `done_reason: stop` after a tool call, OpenAI's comment lines / choiceless usage
chunk / `[DONE]`, Bedrock's binary AWS event-stream frames (CRC-checked, usage after messageStop),
Gemini's `thoughtSignature` on function calls.

A request that breaks a rule gets the provider's own 400 and is recorded in `problems`, so a test
asserts `double.problems == []`. `faults` is a queue of failures served before the script:
{"status": 500} / {"status": 429, "retry_after": 1} / {"hang": 5} / {"reset": True} /
{"garbage": True} / {"die_after": 3} (stream a few chunks, then drop the connection) /
{"stall_after": 3} (stream a few chunks, then go silent with the connection open).

Prompt caching: give a double `cache=PromptCache.explicit()` (Anthropic, Bedrock, an OpenAI
double with `markers=True` standing for OpenRouter serving Claude) or `PromptCache.automatic()`
(OpenAI) and its usage reports what that provider's cache would have read and written
(lynkr/providers/cache_model.py has the documented rules); `usages` keeps every usage it
reported. The Anthropic and Bedrock doubles reject what the real APIs reject about markers (more
than 4, a ttl other than 5m/1h, a 1-hour one after a 5-minute one; `reject_ttl=True` for hosts that
take no ttl at all); an OpenAI double without `markers=True` rejects `cache_control` in content parts.
"""
from __future__ import annotations

import asyncio
import binascii
import itertools
import re
import struct
import time
from dataclasses import dataclass, field

import orjson
from aiohttp import web

_ids = itertools.count(1)
NAME_64 = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass
class Answer:
    text: str | None = "Hello from the double."
    tools: list = field(default_factory=list)          # [(name, input dict)]
    thinking: str | None = None


def script_from_fixture(steps: list[dict]):
    """Claude Code fixture `upstream_script.json` → one Answer per turn."""
    out = []
    for s in steps:
        out.append(Answer(text=None, tools=[(s["name"], s["input"])]) if s["type"] == "tool" else Answer(text=s["text"]))
    return out


# ---- AWS event stream, built by hand per the spec (botocore only decodes) -------------------------

def _header(name: str, value: str) -> bytes:
    n = name.encode()
    v = value.encode()
    return struct.pack("!B", len(n)) + n + struct.pack("!BH", 7, len(v)) + v


def aws_frame(headers: dict[str, str], payload: bytes) -> bytes:
    hb = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(hb) + len(payload) + 4
    prelude = struct.pack("!II", total, len(hb))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + hb + payload
    return body + struct.pack("!I", binascii.crc32(body) & 0xFFFFFFFF)


def aws_event(event_type: str, payload: dict) -> bytes:
    return aws_frame({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
                     orjson.dumps({**payload, "p": "abcdefgh"}))


def aws_exception(exc_type: str, message: str) -> bytes:
    return aws_frame({":exception-type": exc_type, ":content-type": "application/json", ":message-type": "exception"},
                     orjson.dumps({"message": message}))


# ---- the common double -------------------------------------------------------------------------------

class Double:
    kind = ""

    def __init__(self, script=None, *, cache=None, reject_ttl: bool = False):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.paths: list[str] = []
        self.problems: list[str] = []
        self.faults: list[dict] = []
        self.script = script if script is not None else [Answer()]
        self._turn = 0
        self.url = ""
        self.cache = cache                  # a lynkr.providers.cache_model.PromptCache, or None
        self.reject_ttl = reject_ttl
        self.usages: list[dict] = []

    async def cached(self, blocks_of, body: dict, model: str) -> dict | None:
        """The cache model's usage for this request (None without a cache model). Counted in a
        thread: tokenising a 60 KB prompt must not stall the event loop the proxy under test shares."""
        if self.cache is None:
            return None
        now = time.monotonic()
        u = await asyncio.to_thread(lambda: self.cache.use(blocks_of(body), now, seed=str(model)))
        self.usages.append(u)
        return u

    def answer(self, body) -> Answer:
        if callable(self.script):
            return self.script(body)
        a = self.script[min(self._turn, len(self.script) - 1)]
        self._turn += 1
        return a

    # subclasses: validate(body, request) -> list[str]; error(status, message) -> web.Response;
    # respond(request, body, answer, stream, die_after) -> web.StreamResponse; is_stream(request, body)
    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.problems.append("body is not JSON")
            return self.error(400, "body is not JSON")
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        self.paths.append(str(request.rel_url))
        problems = self.validate(body, request)
        if problems:
            self.problems.extend(problems)
            return self.error(400, "; ".join(problems))
        stream = self.is_stream(request, body)
        fault = self.faults.pop(0) if self.faults else {}
        if fault.get("exception"):          # served inside the stream by respond()
            self.faults.insert(0, fault)
            fault = {}
        if fault.get("hang"):
            for _ in range(int(fault["hang"] / 0.05)):       # until the proxy hangs up, at most `hang` s
                if request.transport is None or request.transport.is_closing():
                    return web.Response(status=499)
                await asyncio.sleep(0.05)
        if fault.get("status"):
            resp = self.error(fault["status"], fault.get("message") or f"simulated {fault['status']}")
            if fault.get("retry_after") is not None:
                resp.headers["retry-after"] = str(fault["retry_after"])
            return resp
        if fault.get("garbage"):
            return web.Response(body=b"<html>502 Bad Gateway</html>{{{", content_type="application/json")
        if fault.get("reset"):
            resp = web.StreamResponse(headers={"content-type": "application/json"})
            resp.content_length = 10_000
            await resp.prepare(request)
            await resp.write(b'{"partial": ')
            request.transport.abort()
            return resp
        self._stall_after = fault.get("stall_after")
        return await self.respond(request, body, self.answer(body), stream, fault.get("die_after"))

    def is_stream(self, request, body) -> bool:
        return bool(body.get("stream"))

    async def start_stream(self, request, content_type: str) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": content_type})
        await resp.prepare(request)
        return resp

    async def write_chunks(self, request, resp, chunks: list[bytes], die_after: int | None):
        stall = getattr(self, "_stall_after", None)
        for i, c in enumerate(chunks):
            if die_after is not None and i >= die_after:
                request.transport.abort()
                return resp
            if stall is not None and i >= stall:
                # Quiet with the connection open, until the proxy gives up and hangs up.
                for _ in range(200):
                    if request.transport is None or request.transport.is_closing():
                        break
                    await asyncio.sleep(0.05)
                return resp
            await resp.write(c)
            await asyncio.sleep(0)
        await resp.write_eof()
        return resp

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        self.routes(app)
        return app


# ---- Ollama /api/chat ----------------------------------------------------------------------------------

class OllamaDouble(Double):
    kind = "ollama"

    def routes(self, app):
        app.router.add_post("/api/chat", self.handle)
        app.router.add_post("/api/embed", self.embed)
        app.router.add_get("/api/tags", self.tags)

    async def embed(self, request):
        body = await request.json()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response({"model": body["model"], "embeddings": [[0.1, 0.2, 0.3] for _ in inputs]})

    async def tags(self, request):
        return web.json_response({"models": [{"name": "qwen2.5-coder:7b", "model": "qwen2.5-coder:7b"}]})

    def error(self, status, message):
        return web.json_response({"error": message}, status=status)

    def validate(self, body, request):
        p = []
        if not isinstance(body.get("model"), str) or not body["model"]:
            p.append("model is required")
        if not (body.get("options") or {}).get("num_ctx"):
            p.append("options.num_ctx not set (the default context silently truncates)")
        calls: set = set()
        for i, m in enumerate(body.get("messages") or []):
            if m.get("role") not in ("system", "user", "assistant", "tool"):
                p.append(f"messages[{i}].role {m.get('role')!r}")
            if not isinstance(m.get("content", ""), str):
                p.append(f"messages[{i}].content must be a string")
            for tc in m.get("tool_calls") or []:
                if not isinstance((tc.get("function") or {}).get("arguments"), dict):
                    p.append(f"messages[{i}] tool call arguments must be an object")
                calls.add(tc.get("id"))
            if m.get("role") == "tool":
                if not m.get("tool_name"):
                    p.append(f"messages[{i}] tool result without tool_name")
                if m.get("tool_call_id") not in calls:
                    p.append(f"messages[{i}] tool result {m.get('tool_call_id')} has no earlier call")
        for t in body.get("tools") or []:
            if t.get("type") != "function" or not (t.get("function") or {}).get("name"):
                p.append("tools must be {type: function, function: {name, parameters}}")
        return p

    async def respond(self, request, body, a: Answer, stream, die_after):
        model = body["model"]
        calls = [{"id": f"call_{next(_ids)}", "function": {"index": i, "name": n, "arguments": args}}
                 for i, (n, args) in enumerate(a.tools)]
        done = {"model": model, "created_at": "2025-07-07T20:22:19.19Z", "done": True, "done_reason": "stop",
                "total_duration": 182242375, "prompt_eval_count": 169, "eval_count": 15}
        if not stream:
            msg = {"role": "assistant", "content": a.text or ""}
            if a.thinking:
                msg["thinking"] = a.thinking
            if calls:
                msg["tool_calls"] = calls
            return web.json_response({**done, "message": msg})
        lines = []
        if a.thinking:
            lines.append({"model": model, "message": {"role": "assistant", "content": "", "thinking": a.thinking}, "done": False})
        for w in re.findall(r"\S+\s*", a.text or ""):
            lines.append({"model": model, "message": {"role": "assistant", "content": w}, "done": False})
        if calls:
            lines.append({"model": model, "message": {"role": "assistant", "content": "", "tool_calls": calls}, "done": False})
        lines.append({**done, "message": {"role": "assistant", "content": ""}})
        resp = await self.start_stream(request, "application/x-ndjson")
        return await self.write_chunks(request, resp, [orjson.dumps(x) + b"\n" for x in lines], die_after)


# ---- OpenAI chat completions (and Azure) --------------------------------------------------------------

class OpenAIDouble(Double):
    kind = "openai"

    def __init__(self, script=None, *, azure: bool = False, require_reasoning_back: bool = False,
                 cache=None, markers: bool = False, reject_ttl: bool = False):
        super().__init__(script, cache=cache, reject_ttl=reject_ttl)
        self.azure = azure
        self.require_reasoning_back = require_reasoning_back
        self.markers = markers
        self.extra_usage: dict = {}        # fields merged into every usage it reports

    def routes(self, app):
        app.router.add_post("/v1/chat/completions", self.handle)
        app.router.add_post("/openai/deployments/{dep}/chat/completions", self.handle)

    def error(self, status, message):
        return web.json_response({"error": {"message": message, "type": "invalid_request_error" if status < 500 else "server_error",
                                            "code": None}}, status=status)

    def validate(self, body, request):
        p = []
        if self.azure:
            if not request.query.get("api-version"):
                p.append("api-version query parameter missing")
            if not request.headers.get("api-key"):
                p.append("api-key header missing")
            if "/deployments/" not in request.path:
                p.append("not a deployment path")
        elif not request.headers.get("authorization", "").startswith("Bearer "):
            p.append("Authorization: Bearer missing")
        else:
            if not body.get("model"):
                p.append("model is required")
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return p + ["messages must be a non-empty list"]
        open_calls: list = []
        for i, m in enumerate(msgs):
            role = m.get("role")
            if role not in ("system", "developer", "user", "assistant", "tool"):
                p.append(f"messages[{i}].role {role!r}")
            if role == "tool":
                if m.get("tool_call_id") not in open_calls:
                    p.append(f"messages[{i}]: tool message {m.get('tool_call_id')} does not answer the preceding tool_calls")
                else:
                    open_calls.remove(m["tool_call_id"])
                continue
            if open_calls:
                p.append(f"messages[{i}]: tool_calls {open_calls} were not all answered before the next message")
                open_calls = []
            if role == "assistant":
                for tc in m.get("tool_calls") or []:
                    if not isinstance((tc.get("function") or {}).get("arguments"), str):
                        p.append(f"messages[{i}]: tool call arguments must be a JSON string")
                    open_calls.append(tc.get("id"))
                if self.require_reasoning_back and m.get("tool_calls") and "reasoning_content" not in m:
                    p.append("The reasoning_content in the thinking mode must be passed back to the API.")
            for extra in ("reasoning_content",):
                if extra in m and not self.require_reasoning_back and role == "assistant":
                    p.append(f"messages[{i}]: unrecognized field {extra}")
        for t in body.get("tools") or []:
            name = (t.get("function") or {}).get("name", "")
            if t.get("type") != "function" or not NAME_64.match(name):
                p.append(f"invalid tool name {name!r}: must match ^[a-zA-Z0-9_-]{{1,64}}$")
        for b in msgs:
            if b.get("role") == "system" and "x-anthropic-billing-header" in str(b.get("content")):
                p.append("billing header block reached a non-Anthropic upstream")
        marks = [part["cache_control"] for m in msgs if isinstance(m.get("content"), list)
                 for part in m["content"] if isinstance(part, dict) and "cache_control" in part]
        if marks and not self.markers:
            p.append("messages: content part field cache_control is not recognized")
        p += marker_problems(marks, self.reject_ttl)
        return p

    async def respond(self, request, body, a: Answer, stream, die_after):
        from lynkr.providers.cache_model import chat_blocks
        model = body.get("model") or request.match_info.get("dep", "")
        cid = f"chatcmpl-{next(_ids)}"
        calls = [{"id": f"call_{next(_ids)}", "type": "function",
                  "function": {"name": n, "arguments": orjson.dumps(args).decode()}} for n, args in a.tools]
        usage = {"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132,
                 "prompt_tokens_details": {"cached_tokens": 20}}
        u = await self.cached(chat_blocks, body, model)
        if u is not None:
            details = {"cached_tokens": u["read"]}
            if self.markers:
                details["cache_write_tokens"] = u["write_5m"] + u["write_1h"]
            usage = {"prompt_tokens": u["total"], "completion_tokens": 12, "total_tokens": u["total"] + 12,
                     "prompt_tokens_details": details}
        usage = {**usage, **self.extra_usage}
        if not stream:
            msg = {"role": "assistant", "content": a.text}
            if a.thinking:
                msg["reasoning_content"] = a.thinking
            if calls:
                msg["tool_calls"] = calls
            return web.json_response({"id": cid, "object": "chat.completion", "created": 1, "model": model,
                                      "choices": [{"index": 0, "message": msg,
                                                   "finish_reason": "tool_calls" if calls else "stop"}],
                                      "usage": usage})

        def chunk(delta, finish=None, **kw):
            return {"id": cid, "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **kw}
        out = [b": OPENROUTER PROCESSING\n\n"]
        events = [chunk({"role": "assistant", "content": ""})]
        if a.thinking:
            events += [chunk({"reasoning_content": a.thinking[i:i + 10]}) for i in range(0, len(a.thinking), 10)]
        for w in re.findall(r"\S+\s*", a.text or ""):
            events.append(chunk({"content": w}))
        for j, c in enumerate(calls):
            args = c["function"]["arguments"]
            events.append(chunk({"tool_calls": [{"index": j, "id": c["id"], "type": "function",
                                                 "function": {"name": c["function"]["name"], "arguments": ""}}]}))
            events += [chunk({"tool_calls": [{"index": j, "function": {"arguments": args[k:k + 7]}}]})
                       for k in range(0, len(args), 7)]
        events.append(chunk({}, "tool_calls" if calls else "stop"))
        events.append({"id": cid, "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [],
                       "usage": usage})
        out += [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
        resp = await self.start_stream(request, "text/event-stream")
        return await self.write_chunks(request, resp, out, die_after)


# ---- Bedrock Converse / ConverseStream ------------------------------------------------------------------

class BedrockDouble(Double):
    kind = "bedrock"

    def routes(self, app):
        app.router.add_post("/model/{model}/converse", self.handle)
        app.router.add_post("/model/{model}/converse-stream", self.handle)

    def is_stream(self, request, body):
        return request.path.endswith("/converse-stream")

    def error(self, status, message):
        etype = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
                 429: "ThrottlingException", 500: "InternalServerException", 503: "ServiceUnavailableException"}.get(
            status, "InternalServerException")
        return web.json_response({"message": message}, status=status,
                                 headers={"x-amzn-ErrorType": f"{etype}:http://internal.amazon.com/coral/com.amazon.bedrock/"})

    def validate(self, body, request):
        p = []
        auth = request.headers.get("authorization", "")
        if not (auth.startswith("Bearer ") or auth.startswith("AWS4-HMAC-SHA256 ")):
            p.append("no Bearer token or SigV4 signature")
        if auth.startswith("AWS4-HMAC-SHA256") and not request.headers.get("x-amz-date"):
            p.append("SigV4 without x-amz-date")
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return p + ["messages: required"]
        if msgs[0].get("role") != "user":
            p.append("A conversation must start with a user message.")
        tool_blocks = False
        prev_uses: list = []
        for i, m in enumerate(msgs):
            if i and m.get("role") == msgs[i - 1].get("role"):
                p.append("A conversation must alternate between user and assistant roles.")
            content = m.get("content") or []
            if not content:
                p.append(f"messages.{i}.content is empty")
            uses, results = [], []
            for j, c in enumerate(content):
                if len(c) != 1:
                    p.append(f"messages.{i}.content.{j} must set exactly one member")
                if "text" in c and not c["text"].strip():
                    p.append(f"The text field in the ContentBlock object at messages.{i}.content.{j} is blank.")
                if "toolUse" in c:
                    tool_blocks = True
                    tu = c["toolUse"]
                    if not NAME_64.match(tu.get("name", "")) or not isinstance(tu.get("input"), dict):
                        p.append(f"messages.{i}.content.{j}.toolUse invalid")
                    uses.append(tu.get("toolUseId"))
                if "toolResult" in c:
                    tool_blocks = True
                    tr = c["toolResult"]
                    results.append(tr.get("toolUseId"))
                    if tr.get("status") not in ("success", "error") or not isinstance(tr.get("content"), list):
                        p.append(f"messages.{i}.content.{j}.toolResult invalid")
                for k in c:
                    if k not in ("text", "image", "document", "toolUse", "toolResult", "reasoningContent", "cachePoint"):
                        p.append(f"messages.{i}.content.{j}: unknown member {k}")
            if m.get("role") == "user" and prev_uses and sorted(results) != sorted(prev_uses):
                p.append(f"messages.{i}: the number of toolResult blocks does not match the previous toolUse blocks")
            prev_uses = uses if m.get("role") == "assistant" else []
        if tool_blocks and not (body.get("toolConfig") or {}).get("tools"):
            p.append("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
        for t in (body.get("toolConfig") or {}).get("tools") or []:
            spec = t.get("toolSpec")
            if spec and (not NAME_64.match(spec.get("name", "")) or "json" not in (spec.get("inputSchema") or {})):
                p.append(f"toolSpec {spec.get('name')!r} invalid")
        if "none" in ((body.get("toolConfig") or {}).get("toolChoice") or {}):
            p.append("toolChoice none is not supported")
        for s in body.get("system") or []:
            if "x-anthropic-billing-header" in s.get("text", ""):
                p.append("billing header block reached a non-Anthropic upstream")
        points = [c["cachePoint"] for c in ((body.get("toolConfig") or {}).get("tools") or []) + (body.get("system") or [])
                  + [c for m in body.get("messages") or [] for c in m.get("content") or []] if "cachePoint" in c]
        for cp in points:
            if not isinstance(cp, dict) or cp.get("type") != "default" or set(cp) - {"type", "ttl"}:
                p.append(f"cachePoint {cp!r} is not valid")
        p += marker_problems(points, self.reject_ttl)
        return p

    async def respond(self, request, body, a: Answer, stream, die_after):
        from lynkr.providers.cache_model import converse_blocks
        uses = [{"toolUseId": f"tooluse_{next(_ids)}", "name": n, "input": args} for n, args in a.tools]
        usage = {"inputTokens": 412, "outputTokens": 57, "totalTokens": 469, "cacheReadInputTokens": 100}
        u = await self.cached(converse_blocks, body, request.match_info.get("model", ""))
        if u is not None:
            usage = {"inputTokens": u["input"], "outputTokens": 57, "totalTokens": u["total"] + 57,
                     "cacheReadInputTokens": u["read"], "cacheWriteInputTokens": u["write_5m"] + u["write_1h"],
                     "cacheDetails": [{"ttl": t, "inputTokens": u[f"write_{t}"]} for t in ("5m", "1h") if u[f"write_{t}"]]}
        stop = "tool_use" if uses else "end_turn"
        if not stream:
            content = []
            if a.thinking:
                content.append({"reasoningContent": {"reasoningText": {"text": a.thinking, "signature": "sig-bedrock"}}})
            if a.text:
                content.append({"text": a.text})
            content += [{"toolUse": u} for u in uses]
            return web.json_response({"output": {"message": {"role": "assistant", "content": content}},
                                      "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 12}})
        frames = [aws_event("messageStart", {"role": "assistant"})]
        idx = 0
        if a.thinking:
            frames.append(aws_event("contentBlockDelta", {"contentBlockIndex": idx, "delta": {"reasoningContent": {"text": a.thinking}}}))
            frames.append(aws_event("contentBlockDelta", {"contentBlockIndex": idx, "delta": {"reasoningContent": {"signature": "sig-bedrock"}}}))
            frames.append(aws_event("contentBlockStop", {"contentBlockIndex": idx}))
            idx += 1
        if a.text:
            for w in re.findall(r"\S+\s*", a.text):
                frames.append(aws_event("contentBlockDelta", {"contentBlockIndex": idx, "delta": {"text": w}}))
            frames.append(aws_event("contentBlockStop", {"contentBlockIndex": idx}))
            idx += 1
        for u in uses:
            frames.append(aws_event("contentBlockStart", {"contentBlockIndex": idx, "start": {"toolUse": {"toolUseId": u["toolUseId"], "name": u["name"]}}}))
            js = orjson.dumps(u["input"]).decode()
            for k in range(0, len(js), 9):
                frames.append(aws_event("contentBlockDelta", {"contentBlockIndex": idx, "delta": {"toolUse": {"input": js[k:k + 9]}}}))
            frames.append(aws_event("contentBlockStop", {"contentBlockIndex": idx}))
            idx += 1
        frames.append(aws_event("messageStop", {"stopReason": stop}))
        frames.append(aws_event("metadata", {"usage": usage, "metrics": {"latencyMs": 12}}))
        if self.faults and self.faults[0].get("exception"):
            f = self.faults.pop(0)
            frames = frames[:2] + [aws_exception(f["exception"], f.get("message", "Rate exceeded"))]
        # Split frames across network writes at odd places, as a real connection does.
        blob = b"".join(frames)
        chunks = [blob[i:i + 37] for i in range(0, len(blob), 37)]
        resp = await self.start_stream(request, "application/vnd.amazon.eventstream")
        return await self.write_chunks(request, resp, chunks, die_after)


# ---- Gemini generateContent / streamGenerateContent ----------------------------------------------------

class GeminiDouble(Double):
    kind = "gemini"

    def __init__(self, script=None, *, vertex: bool = False):
        super().__init__(script)
        self.vertex = vertex
        self.signatures: dict[str, str] = {}      # function name + args → signature we issued

    def routes(self, app):
        app.router.add_post(r"/v1beta/models/{model_action:[^/]+}", self.handle)
        app.router.add_post(r"/v1/projects/{project}/locations/{loc}/publishers/google/models/{model_action:[^/]+}", self.handle)

    def is_stream(self, request, body):
        return request.match_info["model_action"].endswith(":streamGenerateContent")

    def error(self, status, message):
        st = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
              503: "UNAVAILABLE"}.get(status, "UNKNOWN")
        return web.json_response({"error": {"code": status, "message": message, "status": st}}, status=status)

    def validate(self, body, request):
        p = []
        if self.vertex:
            if not request.headers.get("authorization", "").startswith("Bearer "):
                p.append("Vertex needs Authorization: Bearer")
        elif not request.headers.get("x-goog-api-key"):
            p.append("x-goog-api-key missing")
        if self.is_stream(request, body) and request.query.get("alt") != "sse":
            p.append("streamGenerateContent without alt=sse")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return p + ["contents is required"]
        called: list = []
        for i, c in enumerate(contents):
            if c.get("role") not in ("user", "model"):
                p.append(f"contents[{i}].role {c.get('role')!r}")
            if not c.get("parts"):
                p.append(f"contents[{i}].parts is empty")
            for part in c.get("parts") or []:
                if "functionCall" in part:
                    fc = part["functionCall"]
                    called.append(fc.get("name"))
                    key = fc.get("name", "") + orjson.dumps(fc.get("args") or {}, option=orjson.OPT_SORT_KEYS).decode()
                    if key in self.signatures and part.get("thoughtSignature") != self.signatures[key]:
                        p.append(f"Function call `{fc.get('name')}` in the {i}. content block is missing a `thought_signature`.")
                if "functionResponse" in part and part["functionResponse"].get("name") not in called:
                    p.append(f"contents[{i}] functionResponse {part['functionResponse'].get('name')!r} has no functionCall")
                if "functionResponse" in part and not isinstance(part["functionResponse"].get("response"), dict):
                    p.append("functionResponse.response must be an object")
        for t in body.get("tools") or []:
            for d in t.get("functionDeclarations") or []:
                if not NAME_64.match(d.get("name", "")):
                    p.append(f"invalid function name {d.get('name')!r}")
                if "additionalProperties" in orjson.dumps(d.get("parameters") or {}).decode() or \
                        "$schema" in orjson.dumps(d.get("parameters") or {}).decode():
                    p.append("Invalid JSON payload received. Unknown name \"additionalProperties\"")
        for s in (body.get("systemInstruction") or {}).get("parts") or []:
            if "x-anthropic-billing-header" in s.get("text", ""):
                p.append("billing header block reached a non-Anthropic upstream")
        return p

    async def respond(self, request, body, a: Answer, stream, die_after):
        parts = []
        if a.thinking:
            parts.append({"text": a.thinking, "thought": True})
        if a.text:
            parts.append({"text": a.text})
        for n, args in a.tools:
            sig = f"c2lnLXtnZW1pbmk+/{next(_ids)}=="
            self.signatures[n + orjson.dumps(args, option=orjson.OPT_SORT_KEYS).decode()] = sig
            parts.append({"functionCall": {"name": n, "args": args}, "thoughtSignature": sig})
        usage = {"promptTokenCount": 300, "candidatesTokenCount": 20, "thoughtsTokenCount": 5, "totalTokenCount": 325}
        if not stream:
            return web.json_response({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP",
                                                      "index": 0}], "usageMetadata": usage, "modelVersion": "gemini-x",
                                      "responseId": f"r{next(_ids)}"})
        # Text arrives a few words per chunk, as Gemini streams it.
        split = []
        for part in parts:
            if "text" in part and not part.get("thought"):
                split += [{"text": w} for w in re.findall(r"\S+\s*", part["text"])]
            else:
                split.append(part)
        parts = split
        chunks = []
        for j, part in enumerate(parts):
            last = j == len(parts) - 1
            d = {"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}],
                 "usageMetadata": {"promptTokenCount": 300}, "modelVersion": "gemini-x"}
            if last:
                d["candidates"][0]["finishReason"] = "STOP"
                d["usageMetadata"] = usage
            chunks.append(b"data: " + orjson.dumps(d) + b"\r\n\r\n")
        resp = await self.start_stream(request, "text/event-stream")
        return await self.write_chunks(request, resp, chunks, die_after)


# ---- Anthropic Messages (for fault tests and as a fallback target) ---------------------------------------

class AnthropicDouble(Double):
    kind = "anthropic"

    def routes(self, app):
        app.router.add_post("/v1/messages", self.handle)

    def error(self, status, message):
        from lynkr.errors import ERROR_TYPES
        return web.json_response({"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"),
                                                             "message": message}}, status=status)

    def validate(self, body, request):
        p = []
        for k in ("model", "max_tokens", "messages"):
            if k not in body:
                p.append(f"{k}: Field required")
        if not request.headers.get("anthropic-version"):
            p.append("anthropic-version header required")
        pending: list = []
        for i, m in enumerate(body.get("messages") or []):
            content = m.get("content") if isinstance(m.get("content"), list) else []
            if m.get("role") == "user" and pending:
                ids = [b.get("tool_use_id") for b in content if b.get("type") == "tool_result"]
                if sorted(ids) != sorted(pending):
                    p.append(f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after")
            pending = [b.get("id") for b in content if b.get("type") == "tool_use"] if m.get("role") == "assistant" else []
            for b in content:
                if b.get("type") == "thinking" and (not b.get("signature") or b["signature"].startswith("gemini:")):
                    p.append(f"messages.{i}: Invalid `signature` in `thinking` block")
                if "cache_control" in b and (b.get("type") in ("thinking", "redacted_thinking")
                                             or (b.get("type") == "text" and not b.get("text"))):
                    p.append(f"messages.{i}: cache_control cannot be set on this block")
        system = body.get("system") if isinstance(body.get("system"), list) else []
        marks = [b["cache_control"] for b in (body.get("tools") or []) + system
                 + [c for m in body.get("messages") or [] if isinstance(m.get("content"), list) for c in m["content"]]
                 if isinstance(b, dict) and "cache_control" in b]
        p += marker_problems(marks, self.reject_ttl)
        p += ["cache_control.type: Input should be 'ephemeral'" for cc in marks
              if isinstance(cc, dict) and cc.get("type") != "ephemeral"]
        return p

    async def respond(self, request, body, a: Answer, stream, die_after):
        from lynkr.providers.cache_model import anthropic_blocks
        from tests.helpers.anthropic_upstream import sse
        content = ([{"type": "text", "text": a.text}] if a.text else []) + [
            {"type": "tool_use", "id": f"toolu_{next(_ids):06d}", "name": n, "input": args} for n, args in a.tools]
        usage = {"input_tokens": 10, "output_tokens": 5}
        u = await self.cached(anthropic_blocks, body, body.get("model"))
        if u is not None:
            usage = {"input_tokens": u["input"], "output_tokens": 5, "cache_read_input_tokens": u["read"],
                     "cache_creation_input_tokens": u["write_5m"] + u["write_1h"],
                     "cache_creation": {"ephemeral_5m_input_tokens": u["write_5m"],
                                        "ephemeral_1h_input_tokens": u["write_1h"]}}
        msg = {"id": f"msg_{next(_ids):06d}", "type": "message", "role": "assistant", "model": body.get("model"),
               "content": content, "stop_reason": "tool_use" if a.tools else "end_turn", "stop_sequence": None,
               "usage": usage}
        if not stream:
            return web.json_response(msg)
        resp = await self.start_stream(request, "text/event-stream")
        return await self.write_chunks(request, resp, sse(msg), die_after)


def marker_problems(marks: list, reject_ttl: bool) -> list[str]:
    """What Anthropic (and Bedrock, for cachePoint) reject about a request's cache markers."""
    p = []
    if len(marks) > 4:
        p.append(f"A maximum of 4 blocks with cache_control may be provided. Found {len(marks)}.")
    seen_5m = False
    for cc in marks:
        if not isinstance(cc, dict):
            p.append("cache_control: Input should be an object")
            continue
        if "ttl" in cc and reject_ttl:
            p.append("cache_control.ttl: Extra inputs are not permitted")
        elif "ttl" in cc and cc["ttl"] not in ("5m", "1h"):
            p.append(f"cache_control.ttl: Input should be '5m' or '1h' (got {cc['ttl']!r})")
        if cc.get("ttl") == "1h" and seen_5m:
            p.append("a ttl='1h' cache_control block must not come after a ttl='5m' one")
        seen_5m = seen_5m or cc.get("ttl") != "1h"
    return p


DOUBLES = {"ollama": OllamaDouble, "openai": OpenAIDouble, "bedrock": BedrockDouble, "gemini": GeminiDouble,
           "anthropic": AnthropicDouble}


def provider_yaml(kind: str, url: str, name: str | None = None, extra: str = "") -> str:
    """A `providers:` entry pointing at a double."""
    name = name or kind
    if kind == "ollama":
        body = f"{{kind: ollama, base_url: '{url}'{extra}}}"
    elif kind == "openai":
        body = f"{{kind: openai, base_url: '{url}/v1', api_key: sk-test{extra}}}"
    elif kind == "azure_openai":
        body = f"{{kind: azure_openai, base_url: '{url}', api_key: az-test, api_version: '2024-10-21'{extra}}}"
    elif kind == "bedrock":
        body = f"{{kind: bedrock, base_url: '{url}', region: us-east-1, api_key: bedrock-test{extra}}}"
    elif kind == "gemini":
        body = f"{{kind: gemini, base_url: '{url}/v1beta', api_key: g-test{extra}}}"
    elif kind == "vertex":
        body = f"{{kind: vertex, base_url: '{url}/v1', project: p1, location: us-central1, api_key: ya29.test{extra}}}"
    else:
        body = f"{{kind: anthropic, base_url: '{url}', api_key: sk-ant-test{extra}}}"
    return f"  {name}: {body}\n"
