"""What both halves of the Chat Completions codec read the same way: reasoning fields, tool-call
arguments, and the key that carries chat-only request fields through the canonical request."""
from __future__ import annotations

import orjson

from lynkr.errors import ProxyError
from lynkr.wire.canonical import SYNTHETIC_SIGNATURE

__all__ = ["EXTRA", "bad", "reasoning_blocks", "parse_args"]

EXTRA = "_openai_chat"          # chat fields with no Anthropic equivalent, restored for OpenAI upstreams


def bad(msg: str) -> ProxyError:
    return ProxyError(400, msg, code="invalid_request_error")


def reasoning_blocks(m: dict) -> list:
    """An assistant message's reasoning (`reasoning_details`, `reasoning_content`, `reasoning`) as
    thinking blocks; only OpenRouter's details carry a real signature."""
    details = m.get("reasoning_details")
    if isinstance(details, list) and details:
        out = []
        for d in details:
            if not isinstance(d, dict):
                continue
            if d.get("type") == "reasoning.encrypted" and d.get("data"):
                out.append({"type": "redacted_thinking", "data": d["data"]})
            elif d.get("type") in ("reasoning.text", "reasoning.summary"):
                out.append({"type": "thinking", "thinking": d.get("text") or d.get("summary") or "",
                            "signature": d.get("signature") or SYNTHETIC_SIGNATURE})
        if out:
            return out
    r = m.get("reasoning_content")
    if not isinstance(r, str):
        r = m.get("reasoning") if isinstance(m.get("reasoning"), str) else None
    return [{"type": "thinking", "thinking": r, "signature": SYNTHETIC_SIGNATURE}] if r else []


def parse_args(raw, where: str = "") -> dict:
    """Tool-call arguments as an object; with `where` (a client's request) bad JSON is a 400."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        v = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if where:
            raise bad(f"{where}: arguments are not valid JSON") from None
        return {}
    return v if isinstance(v, dict) else {"value": v}
