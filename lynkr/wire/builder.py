"""Canonical (Anthropic-shaped) stream events built from another protocol's incremental output.

Every translator of an upstream stream — OpenAI Chat and Responses here, Bedrock, Gemini and
Ollama in lynkr/providers/ — writes its events through one EventBuilder, which keeps the rules
clients enforce: one message_start first, blocks opened and closed one at a time in index order,
every thinking block signed, tool input as JSON (`{}` when empty), stop_reason `tool_use` whenever
a tool was called, cumulative usage in message_delta.
"""
from __future__ import annotations

import uuid

import orjson

from lynkr.wire.canonical import SYNTHETIC_SIGNATURE

__all__ = ["EventBuilder", "new_message_id", "new_tool_id"]


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def new_tool_id() -> str:
    return "toolu_" + uuid.uuid4().hex[:24]


class EventBuilder:
    def __init__(self, model: str, input_tokens: int = 0):
        self.model = model
        self.input_tokens = input_tokens
        self.index = -1
        self.open: str | None = None          # type of the block currently open
        self.tool_called = False
        self.started = False
        self.signed = False                   # the open thinking block got a signature

    def start(self, message_id: str | None = None) -> list[dict]:
        self.started = True
        return [{"type": "message_start", "message": {
            "id": message_id or new_message_id(), "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0}}}]

    def close(self) -> list[dict]:
        """Close the open block, if any (a thinking block without a signature gets the marker)."""
        if self.open is None:
            return []
        out = []
        if self.open == "thinking" and not self.signed:
            # Clients expect every thinking block signed; this marker tells the Anthropic adapter
            # (and the wire module) to drop the block rather than send it to a real Claude.
            out.append(self.delta({"type": "signature_delta", "signature": SYNTHETIC_SIGNATURE}))
        self.open = None
        out.append({"type": "content_block_stop", "index": self.index})
        return out

    def open_block(self, block: dict) -> list[dict]:
        """Close what is open and start `block` (a text block may start empty)."""
        out = self.close()
        self.index += 1
        self.open = block["type"]
        self.signed = False
        out.append({"type": "content_block_start", "index": self.index, "content_block": block})
        return out

    def delta(self, delta: dict) -> dict:
        return {"type": "content_block_delta", "index": self.index, "delta": delta}

    def text(self, text: str) -> list[dict]:
        if not text:
            return []
        out = [] if self.open == "text" else self.open_block({"type": "text", "text": ""})
        out.append(self.delta({"type": "text_delta", "text": text}))
        return out

    def thinking(self, text: str = "", signature: str | None = None) -> list[dict]:
        out = [] if self.open == "thinking" else self.open_block({"type": "thinking", "thinking": "", "signature": ""})
        if text:
            out.append(self.delta({"type": "thinking_delta", "thinking": text}))
        if signature:
            self.signed = True
            out.append(self.delta({"type": "signature_delta", "signature": signature}))
        return out

    def tool_start(self, tool_id: str | None, name: str) -> list[dict]:
        self.tool_called = True
        return self.open_block({"type": "tool_use", "id": tool_id or new_tool_id(), "name": name, "input": {}})

    def tool_json(self, partial: str) -> list[dict]:
        if not partial:
            return []
        return [self.json_delta(partial)]

    def json_delta(self, partial: str) -> dict:
        return self.delta({"type": "input_json_delta", "partial_json": partial})

    def tool(self, tool_id: str | None, name: str, tool_input) -> list[dict]:
        """A complete tool call (Ollama, Gemini send them whole)."""
        if isinstance(tool_input, str):
            try:
                tool_input = orjson.loads(tool_input) if tool_input.strip() else {}
            except orjson.JSONDecodeError:
                tool_input = {}
        out = self.tool_start(tool_id, name)
        out += self.tool_json(orjson.dumps(tool_input or {}).decode())
        out += self.close()
        return out

    def finish(self, stop_reason: str, usage: dict | None = None, stop_sequence: str | None = None,
               *, whole_usage: bool = False) -> list[dict]:
        """Close, then message_delta and message_stop. `whole_usage`: `usage` is already a complete
        Anthropic usage object and goes out as it is."""
        out = self.close()
        if self.tool_called and stop_reason in ("end_turn", "stop_sequence", None):
            stop_reason = "tool_use"
        u = usage if whole_usage else {"output_tokens": 0, **(usage or {})}
        out.append({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": u})
        out.append({"type": "message_stop"})
        return out
