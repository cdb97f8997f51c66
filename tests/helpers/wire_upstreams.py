"""Scripted upstreams for the wire tests, speaking each provider's real wire format including
the odd parts: an OpenAI chat server with SSE comment lines, tool-call fragments by index (the
first carrying id+name, later ones only arguments), a choiceless usage chunk after the finish
chunk, `[DONE]`, and optionally interleaved parallel calls and Ollama-style `finish_reason:
"stop"` after a tool call.

A *script step* is what the model does in one turn, in the shape of
`../shared/fixtures/claude-code/*/upstream_script.json`:
`{"type": "tool", "name": ..., "input": {...}}`, `{"type": "text", "text": ...}`, or a list of
those (several tool calls in one turn).
"""
from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import orjson
from aiohttp import web

from tests.helpers.anthropic_upstream import AnthropicUpstream

_ids = itertools.count(1)


def load_script(path: Path, replace: dict[str, str] | None = None) -> list:
    text = Path(path).read_text()
    for a, b in (replace or {}).items():
        text = text.replace(a, b)
    return json.loads(text)


def step_to_message(step, model: str = "claude-test") -> dict:
    """A script step as a complete Anthropic message."""
    steps = step if isinstance(step, list) else [step]
    content = []
    for s in steps:
        if s["type"] == "text":
            content.append({"type": "text", "text": s["text"]})
        elif s["type"] == "thinking":
            content.append({"type": "thinking", "thinking": s["thinking"], "signature": s.get("signature", "sig-" + str(next(_ids)))})
        else:
            content.append({"type": "tool_use", "id": f"toolu_{next(_ids):06d}", "name": s["name"], "input": s["input"]})
    tool = any(b["type"] == "tool_use" for b in content)
    return {"id": f"msg_{next(_ids):06d}", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 100, "output_tokens": 20}}


def is_agent_turn(body: dict, tool_name: str) -> bool:
    """Real agents also send side requests (titles, summaries); the script serves only the turns
    that offer the agent's tools."""
    for t in body.get("tools") or ():
        name = t.get("name") or (t.get("function") or {}).get("name")
        if name == tool_name:
            return True
    return False


class ScriptedAnthropic(AnthropicUpstream):
    """AnthropicUpstream replaying script steps for agent turns, short text for side requests."""

    def __init__(self, steps: list, agent_tool: str = "Bash"):
        self.steps = list(steps)
        self.turn = 0
        self.agent_tool = agent_tool

        def script(body):
            if not is_agent_turn(body, agent_tool) or self.turn >= len(self.steps):
                msg = step_to_message({"type": "text", "text": "ok"})
            else:
                msg = step_to_message(self.steps[self.turn])
                self.turn += 1
            self.last_message = msg
            return msg
        super().__init__(script)

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/v1/messages/count_tokens", self.count)
        return app

    async def count(self, request):
        return web.json_response({"input_tokens": 42})


class OpenAIUpstream:
    """A scripted OpenAI chat-completions server (`/v1/chat/completions`). Records requests."""

    def __init__(self, steps: list | None = None, *, agent_tool: str | None = None, interleave: bool = False,
                 finish_on_tools: str = "tool_calls", chunk: int = 7, reasoning: str | None = None):
        self.steps = list(steps or [{"type": "text", "text": "Hello from the OpenAI upstream."}])
        self.turn = 0
        self.agent_tool = agent_tool
        self.interleave = interleave
        self.finish_on_tools = finish_on_tools
        self.chunk = chunk
        self.reasoning = reasoning
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.fail_next: list[tuple[int, dict]] = []
        self.url = ""

    def _step(self, body: dict):
        if self.agent_tool and not is_agent_turn(body, self.agent_tool):
            return [{"type": "text", "text": "ok"}]
        if self.turn >= len(self.steps):
            return [{"type": "text", "text": "done"}]
        step = self.steps[self.turn]
        self.turn += 1
        return step if isinstance(step, list) else [step]

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if self.fail_next:
            status, err = self.fail_next.pop(0)
            return web.Response(status=status, body=orjson.dumps(err), content_type="application/json")
        steps = self._step(body)
        cid = f"chatcmpl-{next(_ids)}"
        model = body.get("model", "gpt-test")
        text = "".join(s["text"] for s in steps if s["type"] == "text")
        calls = [{"id": f"call_{next(_ids)}", "name": s["name"], "arguments": orjson.dumps(s["input"]).decode()}
                 for s in steps if s["type"] == "tool"]
        usage = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
                 "prompt_tokens_details": {"cached_tokens": 20}}
        if not body.get("stream"):
            msg = {"role": "assistant", "content": text or None}
            if self.reasoning:
                msg["reasoning_content"] = self.reasoning
            if calls:
                msg["tool_calls"] = [{"id": c["id"], "type": "function",
                                      "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]
            finish = self.finish_on_tools if calls else "stop"
            return web.json_response({"id": cid, "object": "chat.completion", "created": 1730000000, "model": model,
                                      "choices": [{"index": 0, "message": msg, "finish_reason": finish}], "usage": usage})
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)

        async def chunk(delta=None, finish=None, extra=None):
            c = {"id": cid, "object": "chat.completion.chunk", "created": 1730000000, "model": model,
                 "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
            if extra is not None:
                c = {**c, **extra}
            await resp.write(b"data: " + orjson.dumps(c) + b"\n\n")
            await asyncio.sleep(0)
        await resp.write(b": OPENROUTER PROCESSING\n\n")
        await chunk({"role": "assistant", "content": ""})
        if self.reasoning:
            for j in range(0, len(self.reasoning), self.chunk):
                await chunk({"reasoning_content": self.reasoning[j:j + self.chunk]})
        n = self.chunk
        for j in range(0, len(text), n):
            await chunk({"content": text[j:j + n]})
        frags = []
        for k, c in enumerate(calls):
            a = c["arguments"]
            frags.append([(k, {"index": k, "id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": ""}})]
                         + [(k, {"index": k, "function": {"arguments": a[j:j + n]}}) for j in range(0, len(a), n)])
        if self.interleave:
            order = [f for group in itertools.zip_longest(*frags) for f in group if f is not None]
        else:
            order = [f for group in frags for f in group]
        for _, tc in order:
            await chunk({"tool_calls": [tc]})
        await chunk({}, self.finish_on_tools if calls else "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            c = {"id": cid, "object": "chat.completion.chunk", "created": 1730000000, "model": model, "choices": [],
                 "usage": usage}
            await resp.write(b"data: " + orjson.dumps(c) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app
