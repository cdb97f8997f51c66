"""The `demo` provider: a stand-in model that needs no key and no network, so Lynkr can be tried
(and its tool loop driven by the real Claude Code and Codex CLIs) before any provider is set up.

    providers:
      demo: {kind: demo}                       # optional: default_model, reply

It answers every client protocol, streaming and not (the proxy renders its canonical answers
like any provider's), by rules a reader can predict:

- the last turn is a tool result → text saying what the tool returned (its first lines);
- tools are offered and the user's words ask for something a shell can do (a command in
  backticks, or words like list, run, show, read, find, check, fix) → one call to the shell
  tool the client offered (`Bash`, `exec_command`, `shell`, …) running that command (`ls` by
  default), its arguments filled from the tool's own JSON Schema;
- anything else → a short text answer (`reply` replaces it).

With `script: FILE` it replays a recorded session instead (examples/replay-claude-code/): the
agent's turns — requests that offer tools — get the file's steps in order, the step chosen by how
many times the model has spoken in the conversation, so no state is kept between requests. A step
is `{"type": "text", "text": …}`, `{"type": "tool", "name": …, "input": {…}}` or a list of those
(the shape of ../shared/fixtures/*/*/upstream_script.json).

What it cannot do — read images or documents, call a tool the request forces but did not offer —
is a 400 in the client's own protocol, never a 5xx.
"""
from __future__ import annotations

import re
import time
import uuid

import orjson

from lynkr.errors import ProxyError
from lynkr.exchange import Exchange, Response
from lynkr.providers.base import Provider, provider_options
from lynkr.providers.prepare import tool_result_text
from lynkr.wire.events import message_to_events

__all__ = ["DemoProvider", "demo_answer", "DEFAULT_MODEL"]

DEFAULT_MODEL = "lynkr-demo"
DEFAULT_REPLY = ("Hello from Lynkr's demo provider: no model is behind this answer. Ask me to list or run "
                 "something and I will call your shell tool; set a real provider in a pipeline to get real answers.")
# Shell-like tools of the clients, best first: Claude Code, Codex (unified exec, older shell), Cline/Continue.
_SHELL_TOOLS = ("Bash", "exec_command", "shell", "local_shell", "run_terminal_cmd", "execute_command", "run_command")
_ASKS = re.compile(r"\b(ls|list|run|show|read|cat|look|check|find|grep|search|fix|edit|files?|folder|directory|"
                   r"execute|test|build)\b", re.I)
_BACKTICKED = re.compile(r"`([^`\n]{1,200})`")


class DemoProvider(Provider):
    kind = "demo"
    required = ()
    family = None             # serves any model name: the client's own name goes through
    default_model = DEFAULT_MODEL

    summary = "A built-in stand-in model for trying Lynkr: no key, no network; drives a client's tool loop."
    options_schema = provider_options(
        reply={"type": "string", "description": "the answer's text when no tool is called"},
        script={"type": "string", "description": "a recorded session's steps (JSON) replayed on agent turns"},
    )

    def __init__(self, name: str, config: dict):
        super().__init__(name, config)
        self.script = _load_script(config.get("script")) if config.get("script") else None

    @classmethod
    def check(cls, name: str, config: dict) -> list[tuple[str, str]]:
        script = config.get("script")
        if script:
            try:
                _load_script(script)
            except (OSError, ValueError) as e:
                return [("script", f"provider '{name}' (demo): script {script}: {e}")]
        return []

    async def send(self, x: Exchange, model: str) -> Response:
        body = {**x.request, "model": model}
        x.upstream_request = body
        message = (_scripted(self.script, body, model) if self.script else None) or \
            demo_answer(body, model, reply=self.config.get("reply") or DEFAULT_REPLY)
        now = time.perf_counter()
        if body.get("stream"):
            return Response(events=message_to_events(message), first_byte_at=now)
        return Response(message=message, usage=message["usage"], first_byte_at=now, upstream_done_at=now)


def demo_answer(request: dict, model: str, *, reply: str = DEFAULT_REPLY) -> dict:
    """The demo's complete canonical (Anthropic-shaped) answer to a canonical request."""
    messages = request.get("messages") or []
    _refuse_what_it_cannot_do(request, messages)
    # Claude Code 2.1 puts its environment notes in a trailing `system` turn: the user's turn is before it.
    last = next((m for m in reversed(messages) if m.get("role") != "system"), {"role": "user", "content": []})
    blocks = [b for b in last.get("content") or () if isinstance(b, dict)]
    results = [b for b in blocks if b.get("type") == "tool_result"] if last.get("role") == "user" else []
    if results:
        content = [{"type": "text", "text": _summarise(results, messages)}]
    else:
        tool = _tool_to_call(request, _user_words(messages))
        content = [tool] if tool else [{"type": "text", "text": reply}]
    return _message(content, messages, model)


def _load_script(path: str) -> list:
    steps = orjson.loads(open(path, "rb").read())
    if not isinstance(steps, list) or not all(isinstance(s, (dict, list)) for s in steps):
        raise ValueError("a script is a JSON list of steps")
    return steps


def _scripted(steps: list, request: dict, model: str) -> dict | None:
    """The recorded step for this agent turn, or None (a side request, or past the script's end)."""
    if not request.get("tools"):
        return None
    turn = sum(1 for m in request.get("messages") or () if m.get("role") == "assistant")
    if turn >= len(steps):
        return None
    step = steps[turn]
    content = []
    for s in step if isinstance(step, list) else [step]:
        if s.get("type") == "tool":
            content.append({"type": "tool_use", "id": "toolu_demo_" + uuid.uuid4().hex[:16], "name": s["name"],
                            "input": s.get("input") or {}})
        else:
            content.append({"type": "text", "text": str(s.get("text") or "")})
    return _message(content, request.get("messages") or [], model)


def _message(content: list, messages: list, model: str) -> dict:
    stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
    return {"id": "msg_demo_" + uuid.uuid4().hex[:20], "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": max(1, len(orjson.dumps(messages)) // 4),
                      "output_tokens": max(1, len(orjson.dumps(content)) // 4)}}


def _refuse_what_it_cannot_do(request: dict, messages: list) -> None:
    for i, m in enumerate(messages):
        for b in m.get("content") or ():
            if isinstance(b, dict) and b.get("type") in ("image", "document"):
                raise ProxyError(400, f"messages.{i}: the demo provider reads text only, not {b['type']}s; "
                                      "route this request to a real provider", provider="demo", fallbackable=True)
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool":
        names = {t.get("name") for t in request.get("tools") or () if isinstance(t, dict)}
        if choice.get("name") not in names:
            raise ProxyError(400, f"tool_choice names tool {str(choice.get('name'))[:64]!r}, which the request "
                                  "does not offer", provider="demo", fallbackable=False)


def _user_words(messages: list) -> str:
    """The user's own words since the model last spoke. Clients wrap what they add in tags
    (Claude Code's <system-reminder>, Codex's <environment_context>), in separate blocks or turns."""
    texts = []
    for m in reversed(messages):
        if m.get("role") == "assistant":
            break
        if m.get("role") == "user":
            texts[:0] = [b.get("text") or "" for b in m.get("content") or ()
                         if isinstance(b, dict) and b.get("type") == "text"]
    own = [t for t in texts if not t.lstrip().startswith("<")]
    return "\n".join(own)


def _tool_to_call(request: dict, words: str) -> dict | None:
    tools = [t for t in request.get("tools") or () if isinstance(t, dict) and t.get("name")]
    choice = request.get("tool_choice") if isinstance(request.get("tool_choice"), dict) else {}
    if not tools or choice.get("type") == "none":
        return None
    forced = choice.get("type") in ("any", "tool")
    backticked = _BACKTICKED.search(words)
    if not (forced or backticked or _ASKS.search(words)):
        return None
    if choice.get("type") == "tool":
        tool = next(t for t in tools if t["name"] == choice["name"])
    else:
        tool = next((t for name in _SHELL_TOOLS for t in tools if t["name"] == name), None) or \
            next((t for t in tools if {"command", "cmd"} & set(_props(t))), tools[0])
    command = backticked.group(1).strip() if backticked else "ls"
    return {"type": "tool_use", "id": "toolu_demo_" + uuid.uuid4().hex[:16], "name": tool["name"],
            "input": _arguments(tool, command)}


def _props(tool: dict) -> dict:
    props = (tool.get("input_schema") or {}).get("properties")
    return props if isinstance(props, dict) else {}


def _arguments(tool: dict, command: str) -> dict:
    """Arguments that satisfy the tool's schema: the command where it takes one, a plain value for
    every other required field."""
    schema = tool.get("input_schema") or {}
    props = _props(tool)
    wanted = list(dict.fromkeys([*(schema.get("required") or ()), *({"command", "cmd", "description"} & set(props))]))
    out: dict = {}
    for name in wanted:
        spec = props.get(name) if isinstance(props.get(name), dict) else {}
        typ = spec.get("type")
        typ = typ[0] if isinstance(typ, list) and typ else typ
        if name in ("command", "cmd"):
            out[name] = ["bash", "-lc", command] if typ == "array" else command
        elif "enum" in spec and spec["enum"]:
            out[name] = spec["enum"][0]
        else:
            out[name] = {"string": f"{command} (asked by the Lynkr demo)" if name == "description" else "demo",
                         "integer": 1, "number": 1, "boolean": False, "array": [], "object": {}}.get(typ, "demo")
    return out


def _summarise(results: list, messages: list) -> str:
    names = {b.get("id"): b.get("name") for m in messages if m.get("role") == "assistant"
             for b in m.get("content") or () if isinstance(b, dict) and b.get("type") == "tool_use"}
    parts = []
    for r in results:
        text = tool_result_text(r).strip()
        lines = text.splitlines()
        head = "\n".join(lines[:12]) + ("\n…" if len(lines) > 12 else "")
        name = names.get(r.get("tool_use_id")) or "the tool"
        failed = " (it reported an error)" if r.get("is_error") else ""
        parts.append(f"{name} returned {len(lines)} line{'s' if len(lines) != 1 else ''}{failed}:\n{head}"
                     if text else f"{name} returned nothing{failed}.")
    return "Demo provider: " + "\n\n".join(parts)
