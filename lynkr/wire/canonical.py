"""What the OpenAI-shaped protocols share when they meet the canonical (Anthropic) form:
usage and stop-reason tables, images, tool names, and the proxy-private request keys.

Private keys: a canonical request built from an OpenAI client keeps the fields Anthropic has
no place for under a key that starts with `_` (`_openai_chat`, `_openai_responses`), so an
OpenAI upstream gets them back. `for_anthropic_upstream` removes them (and thinking blocks we
synthesised) before a body goes to a real Anthropic-compatible upstream.
"""
from __future__ import annotations

import hashlib
import re
import time
import uuid

from lynkr.kit.cache import remembered

__all__ = [
    "SYNTHETIC_SIGNATURE", "BILLING_PREFIX", "usage_from_openai", "usage_to_openai", "usage_to_responses",
    "finish_to_stop", "stop_to_finish", "image_block_from_url", "image_url_of", "short_name", "name_map",
    "strip_billing", "for_anthropic_upstream", "new_id", "now", "text_of", "check_model_name", "MAX_MODEL_NAME",
]

# Thinking blocks made from an OpenAI-compatible upstream's reasoning carry this signature:
# Claude Code wants a non-empty one, and a real Claude upstream must never see it.
SYNTHETIC_SIGNATURE = "lynkr-synthetic-signature"
BILLING_PREFIX = "x-anthropic-billing-header:"


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def now() -> int:
    return int(time.time())


def text_of(content) -> str:
    """The text of a string or of a block/part list (text, input_text, output_text parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    out = []
    for b in content:
        if isinstance(b, dict) and isinstance(b.get("text"), str):
            out.append(b["text"])
        elif isinstance(b, str):
            out.append(b)
    return "".join(out) if len(out) <= 1 else "\n".join(out)


# ---- usage ------------------------------------------------------------------------------

_OPENAI_USAGE_KNOWN = frozenset({"prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens",
                                 "prompt_tokens_details", "input_tokens_details", "completion_tokens_details",
                                 "output_tokens_details", "prompt_cache_hit_tokens", "prompt_cache_miss_tokens"})
_DETAILS_KNOWN = frozenset({"cached_tokens", "cache_write_tokens", "audio_tokens", "text_tokens", "image_tokens"})


def usage_from_openai(u: dict | None) -> dict:
    """OpenAI chat or Responses usage → Anthropic usage. OpenAI's prompt/input count includes
    cached tokens; Anthropic's input_tokens excludes them. Cache reads are
    `prompt_tokens_details.cached_tokens` (OpenAI, OpenRouter, Moonshot, xAI) or DeepSeek's
    `prompt_cache_hit_tokens`; writes are OpenRouter's `cache_write_tokens`. Cache fields this
    does not know are kept raw under `unmapped` (telemetry records them)."""
    if not u:
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = u.get("prompt_tokens", u.get("input_tokens")) or 0
    details = u.get("prompt_tokens_details") or u.get("input_tokens_details") or {}
    if not isinstance(details, dict):
        details = {}
    cached = details.get("cached_tokens") or u.get("prompt_cache_hit_tokens") or 0
    write = details.get("cache_write_tokens") or 0
    out = {"input_tokens": max(0, int(prompt) - int(cached) - int(write)),
           "output_tokens": int(u.get("completion_tokens", u.get("output_tokens")) or 0)}
    if cached:
        out["cache_read_input_tokens"] = int(cached)
    if write:
        out["cache_creation_input_tokens"] = int(write)
    unknown = {k: v for k, v in u.items() if k not in _OPENAI_USAGE_KNOWN and "cach" in k.lower()}
    unknown.update({f"details.{k}": v for k, v in details.items() if k not in _DETAILS_KNOWN and "cach" in k.lower()})
    if unknown:
        out["unmapped"] = unknown
    return out


def _prompt_total(u: dict) -> tuple[int, int]:
    cached = int(u.get("cache_read_input_tokens") or 0)
    prompt = int(u.get("input_tokens") or 0) + cached + int(u.get("cache_creation_input_tokens") or 0)
    return prompt, cached


def usage_to_openai(u: dict | None) -> dict:
    u = u or {}
    prompt, cached = _prompt_total(u)
    out_t = int(u.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": out_t, "total_tokens": prompt + out_t,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": int((u.get("output_tokens_details") or {}).get("thinking_tokens") or 0)}}


def usage_to_responses(u: dict | None) -> dict:
    """Codex requires the three integer totals when usage is present."""
    u = u or {}
    prompt, cached = _prompt_total(u)
    out_t = int(u.get("output_tokens") or 0)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": out_t,
            "output_tokens_details": {"reasoning_tokens": int((u.get("output_tokens_details") or {}).get("thinking_tokens") or 0)},
            "total_tokens": prompt + out_t}


# ---- stop reasons -----------------------------------------------------------------------

_FINISH_TO_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                   "function_call": "tool_use", "content_filter": "refusal"}
_STOP_TO_FINISH = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                   "stop_sequence": "stop", "refusal": "content_filter", "pause_turn": "stop",
                   "model_context_window_exceeded": "length"}


def finish_to_stop(finish: str | None, tool_called: bool) -> str:
    # Whatever the upstream said, a turn that called a tool ends in tool_use (Ollama says "stop").
    if tool_called:
        return "tool_use"
    return _FINISH_TO_STOP.get(finish or "stop", "end_turn")


def stop_to_finish(stop: str | None, tool_called: bool = False) -> str:
    if tool_called:
        return "tool_calls"
    return _STOP_TO_FINISH.get(stop or "end_turn", "stop")


# ---- images -----------------------------------------------------------------------------

def image_block_from_url(url: str, **extra) -> dict:
    """An OpenAI image URL (data: URI or https) → an Anthropic image block."""
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        media = head[5:].split(";")[0] or "image/png"
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}, **extra}
    return {"type": "image", "source": {"type": "url", "url": url}, **extra}


def image_url_of(block: dict) -> str | None:
    src = block.get("source") or {}
    if src.get("type") == "base64":
        return f"data:{src.get('media_type', 'image/png')};base64,{src.get('data', '')}"
    if src.get("type") == "url":
        return src.get("url")
    return None


# ---- tool names -------------------------------------------------------------------------

_NAME_OK = re.compile(r"[A-Za-z0-9_-]{1,64}")


@remembered(max_entries=4096)
def short_name(name: str, limit: int = 64) -> str:
    """OpenAI limits function names to 64 [A-Za-z0-9_-] characters; MCP tool names can be longer.
    Deterministic, so the reverse map can be rebuilt from the request's tools."""
    if len(name) <= limit and _NAME_OK.fullmatch(name):
        return name
    clean = "".join(c if (c.isascii() and (c.isalnum() or c in "_-")) else "_" for c in name)
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return clean[: limit - 9] + "_" + digest


def name_map(canonical: dict | None) -> dict[str, str]:
    """upstream name → client name, for the tools whose name had to change."""
    out = {}
    for t in (canonical or {}).get("tools") or ():
        n = t.get("name") if isinstance(t, dict) else None
        if n:
            s = short_name(n)
            if s != n:
                out[s] = n
    return out


# ---- requests bound upstream ------------------------------------------------------------

def strip_billing(system: list) -> list:
    """Claude Code's first system block changes every request (`cch=`), which defeats prefix
    caching on every non-Anthropic upstream."""
    return [b for b in system if not (isinstance(b, dict) and str(b.get("text", "")).startswith(BILLING_PREFIX))]


def _clean_blocks(content):
    if not isinstance(content, list):
        return content
    out = []
    for b in content:
        if not isinstance(b, dict):
            out.append(b)
            continue
        if b.get("type") == "thinking" and (b.get("signature") in (SYNTHETIC_SIGNATURE, "", None)
                                            or "_openai_reasoning" in b):
            continue
        if str(b.get("type", "")).startswith("_"):
            continue
        if any(k.startswith("_") for k in b):
            b = {k: v for k, v in b.items() if not k.startswith("_")}
        if b.get("type") == "tool_result" and isinstance(b.get("content"), list):
            b = {**b, "content": _clean_blocks(b["content"])}
        out.append(b)
    return out


def for_anthropic_upstream(body: dict, client: str) -> dict:
    """The canonical request as a real Anthropic-compatible upstream accepts it. A request from
    an Anthropic client passes untouched (same-protocol fidelity); one converted from an OpenAI
    protocol loses the private `_…` keys and thinking we synthesised (an invalid signature is a 400)."""
    if client == "anthropic":
        return body
    out = {k: v for k, v in body.items() if not k.startswith("_")}
    if isinstance(out.get("system"), list):
        out["system"] = _clean_blocks(out["system"])
    msgs = []
    for m in out.get("messages") or ():
        c = m.get("content")
        c2 = _clean_blocks(c)
        msgs.append(m if c2 is c else {**m, "content": c2})
    out["messages"] = msgs
    return out


MAX_MODEL_NAME = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_model_name(model) -> str | None:
    """Why a client's model name cannot be served (it travels on in headers, logs and upstream
    requests), or None. Absent is fine: the pipeline's route names the model then."""
    if model is None:
        return None
    if not isinstance(model, str):
        return "model: must be a string"
    if not model.strip():
        return "model: must not be empty"
    if len(model) > MAX_MODEL_NAME:
        return f"model: {len(model)} characters; a model name has at most {MAX_MODEL_NAME}"
    if _CONTROL.search(model):
        return "model: must not contain control characters"
    return None
