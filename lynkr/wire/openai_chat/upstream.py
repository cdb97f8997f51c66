"""The upstream half of Chat Completions, for the OpenAI-compatible providers: the canonical
request → a chat request body, and the upstream's completion or chunk stream → canonical.

Streams are translated on the shared EventBuilder (lynkr/wire/builder.py): text and reasoning
flow through as they arrive, tool-call arguments as `input_json_delta`. Parallel calls: the first
streams, a call that starts while another is open is buffered and flushed whole, because an
Anthropic stream has one open block at a time.
"""
from __future__ import annotations

import orjson

from lynkr.errors import ProxyError
from lynkr.wire.builder import EventBuilder
from lynkr.wire.canonical import (SYNTHETIC_SIGNATURE, finish_to_stop, image_url_of, name_map, new_id, short_name,
                                  strip_billing, text_of, usage_from_openai)
from lynkr.wire.openai_chat.common import EXTRA, parse_args, reasoning_blocks

__all__ = ["from_canonical", "message_from_openai", "events_from_openai"]


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


def _assistant_message(content: list) -> dict:
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
    return msg


def _user_messages(content: list) -> list:
    """tool_results first, as role:tool messages; the rest of the turn as one user message."""
    out, rest, moved = [], [], []
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


def _cache_mark(blocks) -> dict | None:
    """The last `cache_control` among a canonical turn's blocks."""
    marks = [b["cache_control"] for b in blocks or () if isinstance(b, dict) and isinstance(b.get("cache_control"), dict)]
    return marks[-1] if marks else None


def _marked(message: dict, cc: dict) -> dict:
    """A chat message with a cache marker on its last content part (OpenRouter's syntax)."""
    content = message.get("content")
    if isinstance(content, str) and content:
        return {**message, "content": [{"type": "text", "text": content, "cache_control": cc}]}
    if isinstance(content, list) and content and isinstance(content[-1], dict):
        return {**message, "content": content[:-1] + [{**content[-1], "cache_control": cc}]}
    return message      # an assistant turn of tool calls only has no part to carry it


def _messages_from_canonical(canonical: dict, markers: bool = False) -> list:
    out = []
    system = strip_billing(canonical.get("system") or [])
    if isinstance(canonical.get("system"), str):
        system = [{"type": "text", "text": canonical["system"]}]
    if system:
        out.append({"role": "system", "content": "\n\n".join(b.get("text", "") for b in system if isinstance(b, dict))})
        if markers and _cache_mark(system):
            out[-1] = _marked(out[-1], _cache_mark(system))
    for m in canonical.get("messages") or ():
        role = m.get("role")
        content = m.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        content = content or []
        if role == "system":
            turn = [{"role": "system", "content": text_of(content)}]
        elif role == "assistant":
            turn = [_assistant_message(content)]
        else:
            turn = _user_messages(content)
        if markers and turn and _cache_mark(content):
            turn[-1] = _marked(turn[-1], _cache_mark(content))
        out.extend(turn)
    return out


def _tools_of(canonical: dict, strict: set) -> dict:
    tools = [t for t in canonical.get("tools") or () if isinstance(t, dict) and t.get("type") in (None, "custom")]
    if not tools:
        return {}
    body: dict = {"tools": [{"type": "function", "function": {
        "name": short_name(t["name"]), **({"description": t["description"]} if t.get("description") else {}),
        "parameters": _schema(t.get("input_schema")),
        **({"strict": True} if t["name"] in strict else {})}} for t in tools]}
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
    return body


def from_canonical(canonical: dict, model: str, *, cache_markers: bool = False) -> dict:
    """The canonical request as an OpenAI chat request body for an upstream. With `cache_markers`
    (OpenRouter serving Claude or Gemini), a marked system prompt or turn carries its
    `cache_control` on the last content part of the chat message it became."""
    body: dict = {"model": model, "messages": _messages_from_canonical(canonical, cache_markers)}
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
    body.update(_tools_of(canonical, set(extra.pop("strict_tools", None) or ())))
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
    content = reasoning_blocks(msg)
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
                        "name": names.get(name, name), "input": parse_args(f.get("arguments"))})
    return {"id": resp.get("id") or new_id("msg_"), "type": "message", "role": "assistant",
            "model": resp.get("model") or (request or {}).get("model", ""), "content": content,
            "stop_reason": finish_to_stop(finish, bool(calls)), "stop_sequence": None,
            "usage": usage_from_openai(resp.get("usage"))}


class _Tool:
    __slots__ = ("id", "name", "text")

    def __init__(self, id, name):
        self.id, self.name, self.text = id, name, ""


def _complete_json(s: str) -> bool:
    try:
        orjson.loads(s)
        return True
    except orjson.JSONDecodeError:
        return False


def _chunk_error(error) -> ProxyError:
    err = error if isinstance(error, dict) else {"message": str(error)}
    code = err.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else 502
    return ProxyError(status, err.get("message") or "upstream error", code=str(code) if code else None)


class _ChatStream:
    """One chunk stream being read: the builder, the live tool call and the buffered ones."""

    def __init__(self, request: dict | None):
        self.names = name_map(request)
        self.eb = EventBuilder((request or {}).get("model", ""))
        self.live: _Tool | None = None
        self.live_oi = None
        self.done_ois: set = set()
        self.buffered: dict = {}             # openai index → _Tool, in arrival order
        self.finish = None
        self.usage = None
        self.signature = None                # reasoning_details' signature, sent when the thinking block closes

    def chunk(self, chunk: dict) -> list[dict]:
        if chunk.get("error"):
            raise _chunk_error(chunk["error"])
        out = []
        if not self.eb.started:
            self.eb.model = chunk.get("model") or self.eb.model
            out += self.eb.start(chunk.get("id"))
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            out += self.reasoning(delta)
            out += self.text(delta)
            for pos, tc in enumerate(delta.get("tool_calls") or ()):
                if isinstance(tc, dict):
                    out += self.tool_call(pos, tc)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return out

    def close(self) -> list[dict]:
        out = []
        if self.eb.open == "thinking":
            if self.signature:
                out += self.eb.thinking(signature=self.signature)
            self.signature = None
        elif self.eb.open == "tool_use" and self.live is not None:
            if not self.live.text.strip():
                out.append(self.eb.json_delta("{}"))
            self.done_ois.add(self.live_oi)
            self.live, self.live_oi = None, None
        return out + self.eb.close()

    def reasoning(self, delta: dict) -> list[dict]:
        reasoning = delta.get("reasoning_content")
        if not isinstance(reasoning, str):
            reasoning = delta.get("reasoning") if isinstance(delta.get("reasoning"), str) else None
        for d in delta.get("reasoning_details") or ():
            if isinstance(d, dict) and d.get("signature"):
                self.signature = (self.signature or "") + d["signature"]
            if isinstance(d, dict) and not reasoning and isinstance(d.get("text"), str):
                reasoning = d["text"]
        if not reasoning:
            return []
        out = [] if self.eb.open == "thinking" else self.close()
        return out + self.eb.thinking(reasoning)

    def text(self, delta: dict) -> list[dict]:
        text = delta.get("content")
        if isinstance(text, list):
            text = text_of(text)
        if not text and delta.get("refusal"):
            text = delta["refusal"]
        if not text:
            return []
        out = [] if self.eb.open == "text" else self.close()
        return out + self.eb.text(text)

    def _index(self, pos: int, tc: dict):
        oi = tc.get("index")
        if oi is not None:
            return oi
        # Some servers omit it: a new id starts a new call.
        if tc.get("id") and (self.live is None or tc["id"] != self.live.id) and \
                tc["id"] not in {t.id for t in self.buffered.values()}:
            return max([*self.done_ois, *self.buffered, self.live_oi if self.live_oi is not None else -1, -1]) + 1
        return self.live_oi if self.live_oi is not None else pos

    def _call(self, oi, tc: dict, f: dict) -> tuple[_Tool | None, list[dict]]:
        """The call a fragment belongs to (None: one already closed), opening it if it is new."""
        if oi == self.live_oi and self.live is not None:
            return self.live, []
        if oi in self.buffered:
            return self.buffered[oi], []
        if oi in self.done_ois:
            return None, []
        t = _Tool(tc.get("id"), f.get("name") or "")
        # A new call streams live when nothing else is open (or the open call's JSON is complete)
        # and its name is known; otherwise it is buffered and flushed whole.
        if t.name and (self.live is None or _complete_json(self.live.text)):
            out = self.close()
            self.live, self.live_oi = t, oi
            return t, out + self.eb.tool_start(t.id, self.names.get(t.name, t.name))
        self.buffered[oi] = t
        return t, []

    def tool_call(self, pos: int, tc: dict) -> list[dict]:
        f = tc.get("function") or {}
        oi = self._index(pos, tc)
        frag = f.get("arguments")
        if isinstance(frag, dict):
            frag = orjson.dumps(frag).decode()
        frag = frag or ""
        t, out = self._call(oi, tc, f)
        if t is None:
            return out                        # fragments after a call closed would corrupt it
        if f.get("name") and not t.name:
            t.name = f["name"]
        acc = t.text
        if acc and len(frag) > len(acc) and frag.startswith(acc):
            frag = frag[len(acc):]            # a server sending cumulative snapshots, not deltas
        elif acc and frag == acc and _complete_json(acc):
            frag = ""
        if frag:
            t.text += frag
            if t is self.live:
                out += self.eb.tool_json(frag)
        return out

    def end(self) -> list[dict]:
        out = [] if self.eb.started else self.eb.start()
        out += self.close()
        for t in self.buffered.values():
            out += self.eb.tool_start(t.id, self.names.get(t.name, t.name))
            out.append(self.eb.json_delta(t.text if t.text.strip() else "{}"))
            out += self.eb.close()
        stop = finish_to_stop(self.finish, self.eb.tool_called)
        return out + self.eb.finish(stop, usage_from_openai(self.usage), whole_usage=True)


async def events_from_openai(chunks, request: dict | None = None):
    """Parsed chat-completion chunks → canonical Anthropic events, as they arrive.

    An `error` chunk (OpenRouter after a 200) raises ProxyError, which renderers send in the
    client's mid-stream error shape.
    """
    stream = _ChatStream(request)
    async for chunk in chunks:
        if isinstance(chunk, dict):
            for ev in stream.chunk(chunk):
                yield ev
    for ev in stream.end():
        yield ev
