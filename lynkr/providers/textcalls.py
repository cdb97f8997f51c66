"""The `text_tool_calls` provider option: tool calls a model wrote as text become real tool calls.

    local: {kind: ollama, base_url: http://localhost:11434, text_tool_calls: auto}   # auto | on | off

`auto` is on for the `ollama` kind and the llama.cpp / LM Studio flavours of `openai` (servers
whose models often answer a tool turn in text), off for hosted APIs; `on`/`off` force it for any
provider. It works on the canonical answer (message or events), so every client protocol gets the
recovered calls. The algorithms are lynkr/toolcalls; this module only maps their pieces to
canonical blocks/events and records what was recovered and rejected:
`x.vars["text_tool_calls"]` = {"calls": n, "formats": [...], "rejected": [{reason, name, detail}]},
which provider_call puts in its telemetry detail and /metrics counts per reason. A rejected call
is not sent as a call; a one-line notice in the text says which tool and why.
"""
from __future__ import annotations

from lynkr.exchange import Exchange, Response
from lynkr.toolcalls import Recoverer, Toolset
from lynkr.wire.builder import EventBuilder, new_tool_id
from lynkr.wire.canonical import SYNTHETIC_SIGNATURE

__all__ = ["MODES", "mode_of", "enabled", "recover", "recover_message", "recover_events"]

MODES = ("auto", "on", "off")
LOCAL_FLAVORS = frozenset({"llamacpp", "lmstudio"})


def mode_of(config: dict) -> str | None:
    """The option's value as one of MODES (YAML reads a bare on/off as a boolean); None if invalid."""
    v = config.get("text_tool_calls", "auto")
    if v is True:
        return "on"
    if v is False:
        return "off"
    v = str(v).strip().lower() if v is not None else "auto"
    return v if v in MODES else None


def enabled(config: dict, local: bool) -> bool:
    mode = mode_of(config) or "auto"
    return mode == "on" or (mode == "auto" and local)


def notice(r) -> str:
    what = {"empty_name": "the tool name is empty", "undeclared": f"no tool named `{r.name}` was offered",
            "bad_arguments": f"`{r.name}` arguments are not an object",
            "schema": f"`{r.name}` arguments do not fit its schema ({r.detail})",
            "unclosed": "the call markup never closed", "unparseable": "the call markup could not be read"}
    return f"[tool call not sent: {what.get(r.reason, r.reason)}]"


def _record(x: Exchange) -> dict:
    rec = x.vars.get("text_tool_calls")
    if rec is None:
        rec = x.vars["text_tool_calls"] = {"calls": 0, "formats": [], "rejected": []}
    return rec


def _note(rec: dict, r: Recoverer) -> None:
    rec["calls"] += r.calls
    rec["formats"] += [f for f in r.formats if f not in rec["formats"]]
    rec["rejected"] += [{"reason": j.reason, "name": j.name, "detail": j.detail[:300]} for j in r.rejections]
    r.rejections.clear()
    r.calls = 0
    r.formats.clear()


def recover(x: Exchange, response: Response) -> Response:
    """The response with text tool calls recovered (message or events); anything else untouched."""
    tools = Toolset(x.request.get("tools"))
    if response.message is not None:
        response.message = recover_message(response.message, tools, _record(x))
        response.final = None
    elif response.events is not None:
        response.events = recover_events(response.events, tools, _record(x))
    return response


def recover_message(msg: dict, tools: Toolset, rec: dict) -> dict:
    content: list[dict] = []
    for block in msg.get("content") or ():
        if block.get("type") != "text" or not block.get("text"):
            content.append(block)
            continue
        r = Recoverer(tools)
        pieces = r.feed(block["text"]) + r.finish()
        if not any(p[0] != "text" for p in pieces):
            content.append(block)          # nothing recovered: the block as it came
            continue
        for kind, value in pieces:
            if kind == "thinking":
                content.append({"type": "thinking", "thinking": value, "signature": SYNTHETIC_SIGNATURE})
            elif kind == "call":
                content.append({"type": "tool_use", "id": new_tool_id(), "name": value.name, "input": value.input})
            else:
                text = value if kind == "text" else notice(value)
                if content and content[-1].get("type") == "text":
                    content[-1] = {"type": "text", "text": content[-1]["text"] + ("" if kind == "text" else "\n\n") + text}
                else:
                    content.append({"type": "text", "text": text})
        _note(rec, r)
    out = {**msg, "content": content}
    if any(b.get("type") == "tool_use" for b in content) and msg.get("stop_reason") in ("end_turn", "stop_sequence", None):
        out["stop_reason"] = "tool_use"
    return out


class _Relay:
    """Upstream canonical events re-emitted through an EventBuilder, text going through a Recoverer."""

    def __init__(self, tools: Toolset, rec: dict):
        self.tools, self.rec = tools, rec
        self.eb = EventBuilder("")
        self.r: Recoverer | None = None       # the open upstream text block's recoverer
        self.kind: str | None = None          # type of the open upstream block
        self.wrote_text = False

    def pieces(self, pieces: list[tuple]) -> list[dict]:
        out: list[dict] = []
        for kind, value in pieces:
            if kind == "text":
                out += self.eb.text(value)
                self.wrote_text = True
            elif kind == "thinking":
                out += self.eb.thinking(value)
            elif kind == "call":
                out += self.eb.tool(None, value.name, value.input)
            else:
                out += self.eb.text(("\n\n" if self.wrote_text else "") + notice(value))
                self.wrote_text = True
        return out

    def end_text(self) -> list[dict]:
        if self.r is None:
            return []
        out = self.pieces(self.r.finish())
        _note(self.rec, self.r)
        self.r = None
        return out

    def event(self, ev: dict) -> list[dict]:
        t = ev.get("type")
        if t == "content_block_delta":
            d = ev.get("delta") or {}
            dt = d.get("type")
            if dt == "text_delta" and self.r is not None:
                return self.pieces(self.r.feed(d.get("text") or ""))
            if dt == "thinking_delta":
                return self.eb.thinking(d.get("thinking") or "")
            if dt == "signature_delta":
                return self.eb.thinking("", signature=d.get("signature"))
            if dt == "input_json_delta":
                return self.eb.tool_json(d.get("partial_json") or "")
            return [self.eb.delta(d)] if self.kind not in ("text", "thinking", "tool_use") else []
        if t == "content_block_start":
            block = ev.get("content_block") or {}
            self.kind = block.get("type")
            out = self.end_text()
            if self.kind == "text":
                self.r = Recoverer(self.tools)
                return out + (self.pieces(self.r.feed(block["text"])) if block.get("text") else [])
            if self.kind == "thinking":
                return out + self.eb.thinking(block.get("thinking") or "")
            if self.kind == "tool_use":
                return out + self.eb.tool_start(block.get("id"), block.get("name") or "")
            return out + self.eb.open_block(block)
        if t == "content_block_stop":
            out = self.end_text() if self.kind == "text" else []
            self.kind = None
            return out
        if t == "message_start":
            self.eb.started = True
            return [ev]
        if t == "message_delta":
            d = ev.get("delta") or {}
            usage = ev.get("usage")
            return self.end_text() + self.eb.finish(d.get("stop_reason"), usage, d.get("stop_sequence"),
                                                    whole_usage=isinstance(usage, dict))
        if t == "message_stop":
            return []                          # EventBuilder.finish sent it
        return [ev]                            # ping, error


async def recover_events(events, tools: Toolset, rec: dict):
    relay = _Relay(tools, rec)
    async for ev in events:
        for out in relay.event(ev):
            yield out
