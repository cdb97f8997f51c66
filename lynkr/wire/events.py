"""Canonical stream events (Anthropic-shaped) ⇄ complete messages."""
from __future__ import annotations

import asyncio
import time

import orjson

__all__ = ["MessageAccumulator", "message_to_events", "collect", "KeepAlive", "PING_INTERVAL"]

PING_INTERVAL = 10.0


class KeepAlive:
    """Writes `payload` whenever nothing was written for `interval` seconds (long thinking, slow
    local models), so idle timers in clients and middleboxes stay quiet.

    A side task, not a wrapper around the event iterator: the per-event cost is one clock read
    (`touch`), where racing each event against a timer costs a task per event (~100 µs).
    Each write is one whole event, so a ping never lands inside another event. `armed` stays
    false until the protocol allows a ping (Anthropic: after message_start)."""

    def __init__(self, write, payload: bytes, interval: float | None = None, armed: bool = True):
        self.write = write
        self.payload = payload
        self.interval = PING_INTERVAL if interval is None else interval
        self.armed = armed
        self.last = time.monotonic()
        self._task: asyncio.Task | None = None

    def touch(self) -> None:
        self.last = time.monotonic()

    async def _run(self) -> None:
        try:
            while True:
                wait = self.last + self.interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                if self.armed:
                    await self.write(self.payload)
                self.last = time.monotonic()
        except (ConnectionError, RuntimeError):
            pass                         # the client went away; the main loop will notice

    async def __aenter__(self) -> "KeepAlive":
        if self.interval and self.interval > 0:
            self._task = asyncio.ensure_future(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


# delta type -> (block field it extends, the delta's field holding the piece)
_DELTA_FIELDS = {"text_delta": ("text", "text"), "input_json_delta": ("input", "partial_json"),
                 "thinking_delta": ("thinking", "thinking"), "signature_delta": ("signature", "signature")}


class MessageAccumulator:
    """Builds the complete message from canonical events as they pass by.

    Deltas are collected in lists and joined when their block closes: appending to a growing
    string would copy the whole answer on every delta (quadratic on long answers)."""

    def __init__(self):
        self.message: dict | None = None
        self.usage: dict = {}
        self.stopped = False              # message_stop came
        self._blocks: dict[int, dict] = {}
        self._parts: dict[tuple[int, str], list[str]] = {}

    def _close(self, idx) -> None:
        block = self._blocks.get(idx)
        if block is None:
            return
        for field in ("text", "thinking", "signature", "input"):
            parts = self._parts.pop((idx, field), None)
            if parts is None:
                continue
            if field == "input":
                raw = "".join(parts)
                try:
                    block["input"] = orjson.loads(raw) if raw.strip() else (block.get("input") or {})
                except orjson.JSONDecodeError:
                    block["input"] = {}
            else:
                block[field] = block.get(field, "") + "".join(parts)

    def feed(self, ev: dict) -> None:
        t = ev.get("type")
        if t == "content_block_delta":
            idx = ev.get("index")
            if idx not in self._blocks:
                return
            d = ev.get("delta") or {}
            dt = d.get("type")
            if dt == "text_delta":
                key, value = "text", d.get("text", "")
            elif dt == "input_json_delta":
                key, value = "input", d.get("partial_json", "")
            elif dt == "thinking_delta":
                key, value = "thinking", d.get("thinking", "")
            elif dt == "signature_delta":
                key, value = "signature", d.get("signature", "")
            else:
                return
            parts = self._parts.get((idx, key))
            if parts is None:
                parts = self._parts[(idx, key)] = []
            parts.append(value)
        elif t == "message_start":
            self.message = dict(ev.get("message") or {})
            self.message["content"] = []
            self.usage = dict(self.message.get("usage") or {})
        elif t == "content_block_start":
            block = dict(ev.get("content_block") or {})
            idx = ev.get("index", len(self._blocks))
            self._blocks[idx] = block
        elif t == "content_block_stop":
            self._close(ev.get("index"))
        elif t == "message_delta":
            if self.message is None:
                self.message = {"type": "message", "role": "assistant", "content": []}
            self.message.update({k: v for k, v in (ev.get("delta") or {}).items()})
            self.usage.update(ev.get("usage") or {})
        elif t == "message_stop":
            self.stopped = True
            if self.message is not None:
                for idx in list(self._blocks):
                    self._close(idx)
                self.message["content"] = [self._blocks[i] for i in sorted(self._blocks)]
                self.message["usage"] = self.usage

    def feed_all(self, events) -> None:
        """feed() for each of a list (a network read's events), with the usual one, the next delta
        of the block the previous delta extended, handled inline."""
        blocks, parts, feed = self._blocks, self._parts, self.feed
        last_type = last_index = last_field = last = None
        for ev in events:
            if ev.get("type") == "content_block_delta":
                d = ev.get("delta")
                if type(d) is dict:
                    dt, idx = d.get("type"), ev.get("index")
                    if dt == last_type and idx == last_index:
                        last.append(d.get(last_field, ""))
                        continue
                    key = _DELTA_FIELDS.get(dt)
                    if key is not None and idx in blocks:
                        last = parts.get((idx, key[0]))
                        if last is None:
                            last = parts[(idx, key[0])] = []
                        last.append(d.get(key[1], ""))
                        last_type, last_index, last_field = dt, idx, key[1]
                        continue
            last_type = None        # any other event may close the block: look its parts up again
            feed(ev)

    @property
    def complete(self) -> bool:
        return self.message is not None and "stop_reason" in self.message and self.message.get("stop_reason") is not None


async def collect(events) -> dict:
    acc = MessageAccumulator()
    async for ev in events:
        acc.feed(ev)
    return acc.message


def message_to_events(message: dict):
    """A complete message as a well-formed event stream (cache replays, non-streaming upstreams)."""
    async def gen():
        head = {k: v for k, v in message.items() if k not in ("content", "stop_reason", "stop_sequence", "usage")}
        usage = dict(message.get("usage") or {})
        start_usage = {"input_tokens": usage.get("input_tokens", 0), "output_tokens": 0}
        for k in ("cache_creation_input_tokens", "cache_read_input_tokens"):
            if k in usage:
                start_usage[k] = usage[k]
        yield {"type": "message_start", "message": {**head, "content": [], "stop_reason": None,
                                                    "stop_sequence": None, "usage": start_usage}}
        for i, block in enumerate(message.get("content") or []):
            bt = block.get("type")
            if bt == "text":
                yield {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}
                if block.get("text"):
                    yield {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": block["text"]}}
            elif bt in ("tool_use", "server_tool_use"):
                yield {"type": "content_block_start", "index": i,
                       "content_block": {**{k: v for k, v in block.items() if k != "input"}, "input": {}}}
                yield {"type": "content_block_delta", "index": i,
                       "delta": {"type": "input_json_delta", "partial_json": orjson.dumps(block.get("input") or {}).decode()}}
            elif bt == "thinking":
                yield {"type": "content_block_start", "index": i, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}
                if block.get("thinking"):
                    yield {"type": "content_block_delta", "index": i, "delta": {"type": "thinking_delta", "thinking": block["thinking"]}}
                if block.get("signature"):
                    yield {"type": "content_block_delta", "index": i, "delta": {"type": "signature_delta", "signature": block["signature"]}}
            else:
                yield {"type": "content_block_start", "index": i, "content_block": block}
            yield {"type": "content_block_stop", "index": i}
        yield {"type": "message_delta", "delta": {"stop_reason": message.get("stop_reason") or "end_turn",
                                                   "stop_sequence": message.get("stop_sequence")},
               "usage": {"output_tokens": usage.get("output_tokens", 0)}}
        yield {"type": "message_stop"}
    return gen()
