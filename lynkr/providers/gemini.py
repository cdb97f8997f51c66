"""Gemini (`generateContent` / `streamGenerateContent`) and Vertex AI's Gemini endpoints.

    gemini: {kind: gemini, api_key: "{{ env.GEMINI_API_KEY }}"}       # base_url defaults to …/v1beta
    vertex: {kind: vertex, project: my-proj, location: us-central1, api_key: "{{ env.VERTEX_ACCESS_TOKEN }}"}

Thought signatures: Gemini 3 rejects a replayed function call without the `thoughtSignature` it
came with, byte-for-byte. Three ways back, in order:
1. the `signature` of a thinking block placed right before the part it belongs to, prefixed
   `gemini:` — for clients that keep thinking blocks (every other adapter drops the prefix);
2. a bounded in-process memory keyed by the tool_use id — Claude Code drops thinking blocks from
   its history (seen with the real CLI in tests/test_providers_claude_code.py) but keeps tool ids;
3. for Gemini 3, Google's documented `skip_thought_signature_validator` when neither has it
   (after a restart, or history written by another model).
Schemas are pruned to the OpenAPI subset Gemini accepts.
"""
from __future__ import annotations

import re
import time

import orjson

from lynkr.errors import ProxyError
from lynkr.exchange import Exchange, Response
from lynkr.kit.cache import Bounded
from lynkr.wire.canonical import SYNTHETIC_SIGNATURE
from lynkr.wire.sse import iter_sse
from lynkr.providers.base import Provider, provider_options
from lynkr.providers.prepare import ToolNames, clamp_max_tokens, merge_same_role, prune_schema, strip_billing, tool_result_text
from lynkr.wire.builder import EventBuilder, new_message_id, new_tool_id

__all__ = ["GeminiProvider", "VertexProvider", "to_gemini", "message_from_gemini", "SIG_PREFIX"]

SIG_PREFIX = "gemini:"
# Google's documented stand-in for a signature that was lost (history from another model, or a
# restart); Gemini 3 accepts it instead of failing the turn with a 400.
SKIP_SIGNATURE = "skip_thought_signature_validator"
_sig_memory: Bounded[str, str] = Bounded(max_entries=50_000, lru=True)   # tool_use id -> thoughtSignature


def _remember(tool_id: str, sig: str) -> None:
    _sig_memory.put(tool_id, sig)
_STOP = {"STOP": "end_turn", "MAX_TOKENS": "max_tokens", "SAFETY": "refusal", "RECITATION": "refusal",
         "PROHIBITED_CONTENT": "refusal", "BLOCKLIST": "refusal", "SPII": "refusal"}
_KEEP = frozenset({"type", "format", "description", "nullable", "enum", "items", "properties", "required", "anyOf",
                   "minimum", "maximum", "minItems", "maxItems", "minLength", "maxLength", "pattern", "title",
                   "propertyOrdering"})


def gemini_schema(schema):
    """JSON Schema → the OpenAPI subset Gemini's `parameters` accepts (`["string","null"]` types
    become `nullable`; keywords outside the subset are dropped)."""
    s = prune_schema(schema, keep=_KEEP)

    def fix(node):
        if isinstance(node, list):
            return [fix(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for k, v in node.items():
            if k == "properties" and isinstance(v, dict):
                out[k] = {n: fix(p) for n, p in v.items()}
            elif k in ("items", "anyOf"):
                out[k] = fix(v)
            else:
                out[k] = v
        t = out.get("type")
        if isinstance(t, list):
            rest = [x for x in t if x != "null"]
            out["type"] = rest[0] if rest else "string"
            if "null" in t:
                out["nullable"] = True
        if out.get("format") not in (None, "enum", "date-time", "int32", "int64", "float", "double"):
            out.pop("format")
        if isinstance(out.get("required"), list) and isinstance(out.get("properties"), dict):
            out["required"] = [r for r in out["required"] if r in out["properties"]]
        return out
    return fix(s)


_THINKERS = re.compile(r"gemini-(2\.5|[3-9])")


_NEEDS_SIGNATURE = re.compile(r"gemini-([3-9])")


def to_gemini(request: dict, model_limit: int | None = None, thinking: bool = False,
              strict_signatures: bool = False) -> tuple[dict, ToolNames]:
    names = ToolNames()
    id_names: dict[str, str] = {}
    contents: list[dict] = []
    for m in request.get("messages") or []:
        role = "model" if m.get("role") == "assistant" else "user"
        parts: list[dict] = []
        pending_sig = None
        for b in m.get("content") or []:
            t = b.get("type")
            if t == "thinking":
                sig = b.get("signature") or ""
                if not sig.startswith(SIG_PREFIX):
                    continue            # another provider's reasoning: Gemini can't verify it
                if b.get("thinking"):
                    parts.append({"text": b["thinking"], "thought": True, "thoughtSignature": sig[len(SIG_PREFIX):]})
                else:
                    pending_sig = sig[len(SIG_PREFIX):]
                continue
            part = None
            if t == "text" and b.get("text"):
                part = {"text": b["text"]}
            elif t == "image" and (b.get("source") or {}).get("type") == "base64":
                part = {"inlineData": {"mimeType": b["source"].get("media_type", "image/png"),
                                       "data": b["source"].get("data", "")}}
            elif t == "tool_use":
                name = names.out(b.get("name", ""))
                id_names[b.get("id", "")] = name
                part = {"functionCall": {"name": name, "args": b.get("input") or {}}}
                if pending_sig is None:
                    pending_sig = _sig_memory.get(b.get("id", "")) or (SKIP_SIGNATURE if strict_signatures else None)
            elif t == "tool_result":
                text = tool_result_text(b)
                key = "error" if b.get("is_error") else "content"
                part = {"functionResponse": {"name": id_names.get(b.get("tool_use_id", ""), "tool"),
                                             "response": {key: text}}}
            if part is None:
                continue
            if pending_sig is not None:
                part["thoughtSignature"] = pending_sig
                pending_sig = None
            parts.append(part)
        if parts:
            contents.append({"role": role, "content": parts})
    contents = [{"role": c["role"], "parts": c["content"]}
                for c in merge_same_role(contents)]
    body: dict = {"contents": contents}
    sys_parts = [{"text": b["text"]} for b in strip_billing(request.get("system"))
                 if b.get("type") == "text" and b.get("text")]
    if sys_parts:
        body["systemInstruction"] = {"parts": sys_parts}
    decls = [{"name": names.out(t["name"]), "description": t.get("description", ""),
              "parameters": gemini_schema(t.get("input_schema") or {"type": "object", "properties": {}})}
             for t in request.get("tools") or [] if t.get("input_schema") is not None or t.get("type") in (None, "custom")]
    if decls:
        body["tools"] = [{"functionDeclarations": decls}]
        choice = request.get("tool_choice") or {}
        mode = {"auto": "AUTO", "any": "ANY", "none": "NONE", "tool": "ANY"}.get(choice.get("type"))
        if mode:
            fc: dict = {"mode": mode}
            if choice.get("type") == "tool" and choice.get("name"):
                fc["allowedFunctionNames"] = [names.out(choice["name"])]
            body["toolConfig"] = {"functionCallingConfig": fc}
    gen: dict = {}
    mt = clamp_max_tokens(request.get("max_tokens"), model_limit)
    if mt:
        gen["maxOutputTokens"] = int(mt)
    for src, dst in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK")):
        if request.get(src) is not None:
            gen[dst] = request[src]
    if request.get("stop_sequences"):
        gen["stopSequences"] = list(request["stop_sequences"])[:5]
    th = request.get("thinking")
    if thinking and isinstance(th, dict) and th.get("type") in ("enabled", "adaptive"):
        # Claude Code asks for 31999 tokens; Gemini's thinking models cap the budget at 24576
        # (Flash) to 32768 (Pro), and non-thinking models reject thinkingConfig altogether.
        budget = th.get("budget_tokens")
        gen["thinkingConfig"] = {"includeThoughts": True,
                                 "thinkingBudget": min(int(budget), 24576) if budget else -1}
    if gen:
        body["generationConfig"] = gen
    return body, names


def _usage(u: dict | None) -> dict:
    u = u or {}
    cached = int(u.get("cachedContentTokenCount") or 0)
    out = {"input_tokens": max(0, int(u.get("promptTokenCount") or 0) - cached),
           "output_tokens": int(u.get("candidatesTokenCount") or 0) + int(u.get("thoughtsTokenCount") or 0)}
    if cached:
        out["cache_read_input_tokens"] = cached
    return out


def _parts(data: dict) -> tuple[list, str | None]:
    cands = data.get("candidates") or []
    if not cands:
        return [], None
    c = cands[0]
    return ((c.get("content") or {}).get("parts") or []), c.get("finishReason")


def _blocks(parts: list, names: ToolNames) -> list[dict]:
    """Gemini parts → canonical blocks (a signature on a non-thought part rides on an empty
    thinking block just before it)."""
    out = []
    for p in parts:
        sig = p.get("thoughtSignature")
        if p.get("thought"):
            out.append({"type": "thinking", "thinking": p.get("text", ""),
                        "signature": SIG_PREFIX + sig if sig else SYNTHETIC_SIGNATURE})
            continue
        if sig:
            out.append({"type": "thinking", "thinking": "", "signature": SIG_PREFIX + sig})
        if "functionCall" in p:
            fc = p["functionCall"]
            tid = new_tool_id()
            if sig:
                _remember(tid, sig)
            out.append({"type": "tool_use", "id": tid, "name": names.back_to(fc.get("name", "")),
                        "input": fc.get("args") or {}})
        elif p.get("text"):
            out.append({"type": "text", "text": p["text"]})
    return out


def message_from_gemini(data: dict, model: str, names: ToolNames) -> dict:
    parts, finish = _parts(data)
    content = _blocks(parts, names)
    called = any(b["type"] == "tool_use" for b in content)
    stop = "tool_use" if called else _STOP.get(finish or "STOP", "end_turn")
    return {"id": data.get("responseId") and "msg_" + str(data["responseId"]) or new_message_id(), "type": "message",
            "role": "assistant", "model": model, "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": _usage(data.get("usageMetadata"))}


class GeminiProvider(Provider):
    kind = "gemini"
    summary = "Gemini (generateContent / streamGenerateContent) with an API key."
    options_schema = provider_options(
        thinking={"type": ["boolean", "null"], "description": "ask for thinking; default: for the models that think"},
    )
    family = "gemini"
    default_model = "gemini-2.0-flash"
    home = "googleapis.com"
    required = ("api_key",)
    default_base = "https://generativelanguage.googleapis.com/v1beta"

    def __init__(self, name: str, config: dict):
        super().__init__(name, config)
        self.base_url = self.base_url or self.default_base

    def url(self, model: str, stream: bool) -> str:
        return f"{self.base_url}/models/{model}:{'streamGenerateContent' if stream else 'generateContent'}"

    def headers(self) -> dict:
        h = {"content-type": "application/json"}
        if self.api_key:
            h["x-goog-api-key"] = self.api_key
        return h

    async def send(self, x: Exchange, model: str) -> Response:
        thinking = self.config.get("thinking")
        if thinking is None:
            thinking = bool(_THINKERS.search(model))
        body, names = to_gemini(x.request, self.model_limit(model), thinking=bool(thinking),
                                strict_signatures=bool(_NEEDS_SIGNATURE.search(model)))
        x.upstream_request = body
        stream = bool(x.request.get("stream"))
        resp = await self.post(self.url(model, stream), body, self.headers(), params={"alt": "sse"} if stream else None, x=x)
        first = time.perf_counter()
        if stream:
            return Response(events=self._events(resp, model, names), first_byte_at=first)
        data = await self.read_json(resp)
        msg = message_from_gemini(data, model, names)
        return Response(message=msg, usage=msg["usage"], first_byte_at=first, upstream_done_at=time.perf_counter())

    async def _events(self, resp, model: str, names: ToolNames):
        eb = EventBuilder(model)
        finish = None
        usage: dict = {}
        try:
            async for _event, data in iter_sse(resp.content):
                if not data:
                    continue
                d = orjson.loads(data)
                if isinstance(d, dict) and d.get("error"):
                    err = d["error"]
                    raise ProxyError(int(err.get("code") or 502) if str(err.get("code", "")).isdigit() else 502,
                                     err.get("message") or "Gemini stream error", provider=self.name)
                if not eb.started:
                    for ev in eb.start():
                        yield ev
                parts, fr = _parts(d)
                finish = fr or finish
                if d.get("usageMetadata"):
                    usage = _usage(d["usageMetadata"])
                for b in _blocks(parts, names):
                    if b["type"] == "thinking":
                        real = b["signature"] if b["signature"].startswith(SIG_PREFIX) else None
                        evs = eb.thinking(b["thinking"], real)
                        if not b["thinking"]:
                            evs += eb.close()    # an empty carrier block must not merge into the next thought
                    elif b["type"] == "text":
                        evs = eb.text(b["text"])
                    else:
                        evs = eb.tool(b["id"], b["name"], b["input"])
                    for ev in evs:
                        yield ev
            if not eb.started:
                raise ProxyError(502, f"provider '{self.name}' sent an empty stream", provider=self.name)
            if finish is None:
                raise ProxyError(502, f"provider '{self.name}' ended the stream without a finishReason",
                                 provider=self.name)
            for ev in eb.finish(_STOP.get(finish, "end_turn"), usage):
                yield ev
        finally:
            resp.release()


class VertexProvider(GeminiProvider):
    """Vertex AI: the same body, under a project and location, with an OAuth access token
    (`auth: bearer`, the default) or an express-mode API key (`auth: api-key`)."""

    kind = "vertex"
    summary = "Vertex AI's Gemini endpoints: a project and location, an OAuth token or an express-mode key."
    options_schema = provider_options(
        thinking=GeminiProvider.options_schema["properties"]["thinking"],
        project={"type": "string", "description": "the Google Cloud project"},
        location={"type": "string", "default": "us-central1", "description": "the region, or global"},
        auth={"enum": ["bearer", "api-key"], "default": "bearer",
              "description": "bearer (an OAuth access token in api_key) or api-key (express mode)"},
    )
    required = ("project", "api_key")

    def __init__(self, name: str, config: dict):
        super().__init__(name, config)
        self.location = config.get("location") or "us-central1"
        if not config.get("base_url"):
            host = "aiplatform.googleapis.com" if self.location == "global" else \
                f"{self.location}-aiplatform.googleapis.com"
            self.base_url = f"https://{host}/v1"
        self.auth = config.get("auth") or "bearer"

    def url(self, model: str, stream: bool) -> str:
        return (f"{self.base_url}/projects/{self.config.get('project')}/locations/{self.location}/publishers/google/"
                f"models/{model}:{'streamGenerateContent' if stream else 'generateContent'}")

    def headers(self) -> dict:
        h = {"content-type": "application/json"}
        if self.api_key:
            if self.auth == "bearer":
                h["authorization"] = f"Bearer {self.api_key}"
            else:
                h["x-goog-api-key"] = self.api_key
        return h
