"""What both halves of the Responses codec read the same way: function-call arguments, reasoning
items, and the key that carries Responses-only request fields through the canonical request."""
from __future__ import annotations

import orjson

from lynkr.wire.canonical import SYNTHETIC_SIGNATURE

__all__ = ["EXTRA", "args_of", "reasoning_block"]

EXTRA = "_openai_responses"


def args_of(raw) -> dict:
    """`arguments` as an object; text that is not JSON is kept under `_raw_arguments` so it goes
    back to a Responses upstream as it came."""
    if isinstance(raw, dict):
        return raw
    if not raw or not str(raw).strip():
        return {}
    try:
        v = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"_raw_arguments": raw}
    return v if isinstance(v, dict) else {"value": v}


def reasoning_block(item: dict) -> dict:
    """A reasoning item as a thinking block; the item itself rides along (`_openai_reasoning`) so a
    Responses upstream gets it back byte for byte."""
    summary = "\n".join(s.get("text", "") for s in item.get("summary") or () if isinstance(s, dict))
    if not summary:
        summary = "\n".join(c.get("text", "") for c in item.get("content") or () if isinstance(c, dict))
    return {"type": "thinking", "thinking": summary,
            "signature": item.get("encrypted_content") or SYNTHETIC_SIGNATURE,
            "_openai_reasoning": {k: v for k, v in item.items() if k != "id"}}
