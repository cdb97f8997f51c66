"""What both caches share: which answers may be stored, how a stored answer is replayed, and
what a hit saved (recorded after the response, never on the request path)."""
from __future__ import annotations

import asyncio
import uuid

from lynkr.exchange import Exchange, Response

__all__ = ["storable", "replay", "answer_of", "record_saved", "bypassed", "COMPLETE_STOPS"]

COMPLETE_STOPS = {"end_turn", "stop_sequence"}


def answer_of(x: Exchange) -> dict | None:
    """The complete canonical message the client received, if the request succeeded."""
    resp = x.response
    if resp is None or not resp.ok or x.vars.get("client_disconnected"):
        return None
    msg = resp.final or resp.message
    return msg if isinstance(msg, dict) else None


def storable(message: dict | None, *, tool_use: bool) -> str | None:
    """None when `message` is a complete, successful answer worth replaying; else why not."""
    if not message or message.get("type", "message") != "message":
        return "not_a_message"
    stop = message.get("stop_reason")
    content = message.get("content") or []
    has_tool = any(isinstance(b, dict) and b.get("type") in ("tool_use", "server_tool_use") for b in content)
    if has_tool and not tool_use:
        return "tool_use"
    if stop not in COMPLETE_STOPS and not (tool_use and stop == "tool_use"):
        return f"stop_reason:{stop}"
    if not any(isinstance(b, dict) and (b.get("text") or b.get("type") in ("tool_use",)) for b in content):
        return "empty"
    return None


def replay(message: dict, kind: str, headers: dict | None = None) -> Response:
    """A stored answer as a fresh response: a new message id, no input billed. The renderers
    turn it into JSON or a stream in the client's own protocol."""
    usage = dict(message.get("usage") or {})
    out = {**message, "id": "msg_" + uuid.uuid4().hex[:24],
           "usage": {"input_tokens": 0, "output_tokens": int(usage.get("output_tokens") or 0),
                     "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}
    # Thinking signatures are bound to the original request; a replay must not resend them.
    out["content"] = [b for b in out.get("content") or [] if not (isinstance(b, dict) and
                                                                  b.get("type") in ("thinking", "redacted_thinking"))]
    return Response(status=200, message=out, source=f"cache:{kind}",
                    headers={"x-lynkr-cache": kind, **(headers or {})}, usage=out["usage"])


def _message_text(message: dict) -> str:
    parts = []
    for b in message.get("content") or []:
        if isinstance(b, dict):
            if b.get("type") == "text":
                parts.append(b.get("text") or "")
            elif b.get("type") == "tool_use":
                import orjson
                parts.append(b.get("name", "") + orjson.dumps(b.get("input") or {}).decode())
    return "\n".join(parts)


async def record_saved(x: Exchange, stage_id: str | None = None) -> None:
    """Tokens a hit saved: the request's estimated input plus the cached output (cl100k), counted
    in a thread after the response was sent, into the calling stage's run event
    (`x.stage_event` in its `after` hook: tokens_before/after). `stage_id` is not needed."""
    ev = x.stage_event
    resp = x.response
    if ev is None or resp is None or resp.message is None:
        return
    from lynkr.kit.tokens import count_request, count_text

    def count():
        return count_request(x.baseline if x.baseline is not None else x.request) + count_text(_message_text(resp.message))

    saved = await asyncio.get_running_loop().run_in_executor(None, count)
    ev.tokens_before, ev.tokens_after = saved, 0
    ev.detail["saved_tokens"] = saved


_BYPASS_VALUES = {"bypass", "off", "no-cache", "no-store", "skip", "0", "false"}


def bypassed(x: Exchange) -> bool:
    """`x-lynkr-cache: bypass` (or `cache-control: no-cache`) on the request skips both caches."""
    v = (x.headers.get("x-lynkr-cache") or "").strip().lower()
    if v in _BYPASS_VALUES:
        return True
    cc = (x.headers.get("cache-control") or "").lower()
    return "no-cache" in cc or "no-store" in cc
