"""AWS Bedrock Converse / ConverseStream, with full tool history and the AWS event stream.

    bedrock:
      kind: bedrock
      region: us-east-1
      api_key: "{{ env.AWS_BEDROCK_API_KEY }}"          # a Bedrock API key (bearer), or SigV4:
      # access_key_id / secret_access_key / session_token

Conversions (protocols.md §6): tool_use/tool_result become toolUse/toolResult (Lynkr's Node.js
version flattened history to strings and lost tool structure); same-role turns are merged and the
conversation starts with a user turn; blank text blocks are dropped; a stub `toolConfig` is sent when
history has tool blocks but the request has no tools; tool names outside `[A-Za-z0-9_-]{1,64}` are
mapped and mapped back; thinking with a real signature goes back as reasoningContent. The stream
is decoded with botocore's EventStreamBuffer; `stopReason` arrives before usage, so the final
message_delta waits for `metadata`.
"""
from __future__ import annotations

import time
from urllib.parse import quote

import orjson

from lynkr.errors import ProxyError
from lynkr.exchange import Exchange, Response
from lynkr.wire.canonical import SYNTHETIC_SIGNATURE
from lynkr.providers.base import Provider, missing_message, provider_options
from lynkr.providers.prepare import ToolNames, clamp_max_tokens, merge_same_role, prune_schema, strip_billing, tool_result_text
from lynkr.providers.resilience import upstream_error
from lynkr.wire.builder import EventBuilder, new_message_id

__all__ = ["BedrockProvider", "to_converse", "message_from_converse"]

_STOP = {"end_turn": "end_turn", "tool_use": "tool_use", "max_tokens": "max_tokens",
         "stop_sequence": "stop_sequence", "guardrail_intervened": "refusal", "content_filtered": "refusal",
         "model_context_window_exceeded": "model_context_window_exceeded"}
_EXC_STATUS = {"throttlingException": 429, "serviceUnavailableException": 503, "validationException": 400,
               "modelStreamErrorException": 502, "internalServerException": 500, "modelTimeoutException": 504,
               "accessDeniedException": 403, "resourceNotFoundException": 404, "modelNotReadyException": 429}


def _image(b: dict) -> dict | None:
    src = b.get("source") or {}
    if src.get("type") != "base64":
        return None
    fmt = (src.get("media_type") or "image/png").split("/")[-1].replace("jpg", "jpeg")
    return {"image": {"format": fmt, "source": {"bytes": src.get("data", "")}}}


def cache_point(block: dict) -> dict | None:
    """Bedrock's marker for a block's `cache_control` (the ttl, when there is one, goes along:
    Converse takes 5m and 1h)."""
    cc = block.get("cache_control")
    if not isinstance(cc, dict):
        return None
    return {"cachePoint": {"type": "default", **({"ttl": cc["ttl"]} if cc.get("ttl") in ("5m", "1h") else {})}}


def _content(blocks: list, names: ToolNames, seen_tools: dict) -> list[dict]:
    out: list[dict] = []
    for b in blocks:
        before = len(out)
        _block(b, out, names, seen_tools)
        point = cache_point(b)
        if point and len(out) > before:
            out.append(point)
    return out


def _block(b: dict, out: list, names: ToolNames, seen_tools: dict) -> None:
    """One canonical block in Converse form, appended to `out` (nothing when it has none)."""
    t = b.get("type")
    if t == "text":
        if (b.get("text") or "").strip():
            out.append({"text": b["text"]})
    elif t == "image":
        img = _image(b)
        if img:
            out.append(img)
    elif t == "tool_use":
        name = names.out(b.get("name", ""))
        seen_tools[name] = True
        out.append({"toolUse": {"toolUseId": b.get("id", ""), "name": name, "input": b.get("input") or {}}})
    elif t == "tool_result":
        parts: list[dict] = []
        c = b.get("content")
        if isinstance(c, list):
            for p in c:
                if p.get("type") == "text":
                    parts.append({"text": p.get("text", "")})
                elif p.get("type") == "image" and _image(p):
                    parts.append(_image(p))
        elif c is not None:
            parts.append({"text": tool_result_text(b)})
        if b.get("is_error") and not any(p.get("text") for p in parts):
            parts = [{"text": "error"}]      # an empty error result is rejected
        if not parts:
            parts = [{"text": ""}]
        out.append({"toolResult": {"toolUseId": b.get("tool_use_id", ""), "content": parts,
                                   "status": "error" if b.get("is_error") else "success"}})
    elif t == "thinking":
        # Only a real signature can go back; a synthetic one (from another provider) would be rejected.
        sig = b.get("signature") or ""
        if sig and b.get("thinking") and sig != SYNTHETIC_SIGNATURE and not sig.startswith("gemini:"):
            out.append({"reasoningContent": {"reasoningText": {"text": b["thinking"], "signature": b["signature"]}}})
    elif t == "redacted_thinking":
        if b.get("data"):
            out.append({"reasoningContent": {"redactedContent": b["data"]}})
    elif t == "document":
        pass   # documents need a name and format Bedrock-side; dropped rather than guessed


def to_converse(request: dict, model_limit: int | None = None, claude: bool = True) -> tuple[dict, ToolNames]:
    names = ToolNames()
    seen_tools: dict = {}
    system = []
    for b in strip_billing(request.get("system")):
        if b.get("type") == "text" and (b.get("text") or "").strip():
            system.append({"text": b["text"]})
            if cache_point(b):
                system.append(cache_point(b))
    msgs = []
    for m in request.get("messages") or []:
        role = "assistant" if m.get("role") == "assistant" else "user"
        content = _content(m.get("content") or [], names, seen_tools)
        if content:
            msgs.append({"role": role, "content": content})
    msgs = merge_same_role(msgs)
    if msgs and msgs[0]["role"] != "user":
        msgs.insert(0, {"role": "user", "content": [{"text": "(continue)"}]})
    # Reasoning/tool-use order inside a turn matters to Bedrock: reasoning first, tool results first.
    for m in msgs:
        key = (lambda c: 0 if "reasoningContent" in c else 1) if m["role"] == "assistant" else \
              (lambda c: 0 if "toolResult" in c else 1)
        m["content"] = sorted(m["content"], key=key)
    body: dict = {"messages": msgs}
    if system:
        body["system"] = system
    inf: dict = {}
    mt = clamp_max_tokens(request.get("max_tokens"), model_limit)
    if mt:
        inf["maxTokens"] = int(mt)
    if request.get("temperature") is not None:
        inf["temperature"] = request["temperature"]
    if request.get("top_p") is not None:
        inf["topP"] = request["top_p"]
    if request.get("stop_sequences"):
        inf["stopSequences"] = list(request["stop_sequences"])
    if inf:
        body["inferenceConfig"] = inf
    tools = []
    for t in request.get("tools") or []:
        if t.get("type") not in (None, "custom") and t.get("input_schema") is None:
            continue     # server tools (web_search_…) have no Converse equivalent
        tools.append({"toolSpec": {"name": names.out(t["name"]), "description": t.get("description") or t["name"],
                                   "inputSchema": {"json": prune_schema(t.get("input_schema") or {"type": "object"},
                                                                        drop=frozenset({"$schema"}))}}})
        if cache_point(t):
            tools.append(cache_point(t))
    declared = {t["toolSpec"]["name"] for t in tools if "toolSpec" in t}
    # History with tool blocks but no tools → "The toolConfig field must be defined…"; declare stubs.
    for name in seen_tools:
        if name not in declared:
            tools.append({"toolSpec": {"name": name, "description": "(tool used earlier in this conversation)",
                                       "inputSchema": {"json": {"type": "object", "properties": {}}}}})
    if tools:
        tc: dict = {"tools": tools}
        choice = request.get("tool_choice") or {}
        ct = choice.get("type")
        if ct == "any":
            tc["toolChoice"] = {"any": {}}
        elif ct == "tool" and choice.get("name"):
            tc["toolChoice"] = {"tool": {"name": names.out(choice["name"])}}
        elif ct == "auto":
            tc["toolChoice"] = {"auto": {}}
        body["toolConfig"] = tc            # `none` has no Converse form: tools stay, choice is left out
    # Model-specific fields: only Claude on Bedrock reads `thinking` and `top_k` (Nova, Llama and
    # others reject unknown fields), and Claude needs budget_tokens below maxTokens.
    extra: dict = {}
    th = request.get("thinking")
    if claude and isinstance(th, dict) and th.get("type") == "enabled" and th.get("budget_tokens"):
        if not mt or int(th["budget_tokens"]) < int(mt):
            extra["thinking"] = {"type": "enabled", "budget_tokens": int(th["budget_tokens"])}
    if claude and request.get("top_k") is not None:
        extra["top_k"] = request["top_k"]
    if extra:
        body["additionalModelRequestFields"] = extra
    return body, names


_USAGE_KNOWN = frozenset({"inputTokens", "outputTokens", "totalTokens", "cacheReadInputTokens",
                          "cacheWriteInputTokens", "cacheDetails"})


def _usage(u: dict | None) -> dict:
    """Converse usage → Anthropic's. For Claude, `inputTokens` excludes cache reads and writes
    (Anthropic's convention); `cacheDetails` splits the writes by ttl."""
    u = u or {}
    out = {"input_tokens": int(u.get("inputTokens") or 0), "output_tokens": int(u.get("outputTokens") or 0)}
    if u.get("cacheReadInputTokens"):
        out["cache_read_input_tokens"] = int(u["cacheReadInputTokens"])
    write = int(u.get("cacheWriteInputTokens") or 0)
    if write:
        out["cache_creation_input_tokens"] = write
        one_hour = sum(int(d.get("inputTokens") or 0) for d in u.get("cacheDetails") or ()
                       if isinstance(d, dict) and d.get("ttl") == "1h")
        out["cache_creation"] = {"ephemeral_5m_input_tokens": max(0, write - one_hour),
                                 "ephemeral_1h_input_tokens": one_hour}
    unknown = {k: v for k, v in u.items() if k not in _USAGE_KNOWN and "cache" in k.lower()}
    if unknown:
        out["unmapped"] = unknown
    return out


def message_from_converse(data: dict, model: str, names: ToolNames) -> dict:
    content = []
    called = False
    for c in ((data.get("output") or {}).get("message") or {}).get("content") or []:
        if "text" in c:
            content.append({"type": "text", "text": c["text"]})
        elif "toolUse" in c:
            tu = c["toolUse"]
            called = True
            content.append({"type": "tool_use", "id": tu.get("toolUseId"), "name": names.back_to(tu.get("name", "")),
                            "input": tu.get("input") or {}})
        elif "reasoningContent" in c:
            rc = c["reasoningContent"]
            if "reasoningText" in rc:
                content.append({"type": "thinking", "thinking": rc["reasoningText"].get("text", ""),
                                "signature": rc["reasoningText"].get("signature", "")})
            elif "redactedContent" in rc:
                content.append({"type": "redacted_thinking", "data": rc["redactedContent"]})
    stop = _STOP.get(data.get("stopReason") or "", "end_turn")
    if called and stop == "end_turn":
        stop = "tool_use"
    return {"id": new_message_id(), "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop, "stop_sequence": None, "usage": _usage(data.get("usage"))}


class BedrockProvider(Provider):
    kind = "bedrock"
    summary = "AWS Bedrock Converse / ConverseStream (an API key, or SigV4 with access keys)."
    options_schema = provider_options(
        region={"type": "string", "description": "the AWS region (bedrock-runtime.REGION.amazonaws.com)"},
        access_key_id={"type": ["string", "null"], "description": "SigV4 access key id (instead of api_key)"},
        secret_access_key={"type": ["string", "null"], "description": "SigV4 secret access key"},
        session_token={"type": ["string", "null"], "description": "SigV4 session token (temporary credentials)"},
    )
    required = ("region",)

    def __init__(self, name: str, config: dict):
        super().__init__(name, config)
        self.region = config.get("region") or ""
        if not self.base_url:
            self.base_url = f"https://bedrock-runtime.{self.region}.amazonaws.com"

    @classmethod
    def check(cls, name: str, config: dict) -> list[tuple[str, str]]:
        problems = super().check(name, config)
        if not config.get("api_key") and not (config.get("access_key_id") and config.get("secret_access_key")):
            problems.append(("api_key", missing_message(name, config, "api_key") +
                             " (or access_key_id and secret_access_key for SigV4)"))
        return problems

    def _signed_headers(self, url: str, data: bytes, stream: bool) -> dict:
        h = {"content-type": "application/json",
             "accept": "application/vnd.amazon.eventstream" if stream else "application/json"}
        if self.api_key:
            h["authorization"] = f"Bearer {self.api_key}"
            return h
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        creds = Credentials(self.config["access_key_id"], self.config["secret_access_key"],
                            self.config.get("session_token") or None)
        req = AWSRequest(method="POST", url=url, data=data, headers=h)
        SigV4Auth(creds, "bedrock", self.region).add_auth(req)
        return dict(req.headers.items())

    def upstream_body(self, x: Exchange, model: str) -> dict:
        return self._converse(x, model)[0]

    def _converse(self, x: Exchange, model: str) -> tuple[dict, ToolNames]:
        return to_converse(x.request, self.model_limit(model), claude="anthropic" in model or "claude" in model)

    async def send(self, x: Exchange, model: str) -> Response:
        body, names = self._converse(x, model)
        x.upstream_request = body
        stream = bool(x.request.get("stream"))
        # Model ids and ARNs go in the path percent-encoded (`/` must not survive, `:` may).
        url = f"{self.base_url}/model/{quote(model, safe=':')}/{'converse-stream' if stream else 'converse'}"
        data = orjson.dumps(body)
        resp = await self.post(url, data, self._signed_headers(url, data, stream), x=x)
        first = time.perf_counter()
        if stream:
            return Response(events=self._events(resp, model, names), first_byte_at=first)
        msg = message_from_converse(await self.read_json(resp), model, names)
        return Response(message=msg, usage=msg["usage"], first_byte_at=first, upstream_done_at=time.perf_counter())

    async def _events(self, resp, model: str, names: ToolNames):
        from botocore.eventstream import EventStreamBuffer

        buf = EventStreamBuffer()
        eb = EventBuilder(model)
        cur = None              # Bedrock's contentBlockIndex of the open block
        stop = None
        done = False
        try:
            async for chunk in resp.content.iter_any():
                buf.add_data(chunk)
                for msg in buf:
                    h = msg.headers
                    mtype = h.get(":message-type")
                    if mtype in ("exception", "error"):
                        exc = h.get(":exception-type") or h.get(":error-code") or "error"
                        try:
                            text = orjson.loads(msg.payload).get("message") or exc
                        except Exception:
                            text = msg.payload.decode("utf-8", "replace") or exc
                        raise upstream_error(self.name, _EXC_STATUS.get(exc, 502), text, code=exc)
                    et = h.get(":event-type")
                    p = orjson.loads(msg.payload) if msg.payload else {}
                    if not eb.started:
                        for ev in eb.start():
                            yield ev
                    idx = p.get("contentBlockIndex")
                    if et in ("contentBlockStart", "contentBlockDelta") and idx != cur and eb.open:
                        for ev in eb.close():
                            yield ev
                    if et == "contentBlockStart":
                        cur = idx
                        tu = (p.get("start") or {}).get("toolUse")
                        if tu:
                            for ev in eb.tool_start(tu.get("toolUseId"), names.back_to(tu.get("name", ""))):
                                yield ev
                    elif et == "contentBlockDelta":
                        cur = idx
                        d = p.get("delta") or {}
                        if "text" in d:
                            evs = eb.text(d["text"])
                        elif "toolUse" in d:
                            evs = eb.tool_json((d["toolUse"] or {}).get("input", ""))
                        elif "reasoningContent" in d:
                            rc = d["reasoningContent"]
                            evs = eb.thinking(rc.get("text", ""), rc.get("signature"))
                        else:
                            evs = []
                        for ev in evs:
                            yield ev
                    elif et == "contentBlockStop":
                        for ev in eb.close():
                            yield ev
                        cur = None
                    elif et == "messageStop":
                        stop = p.get("stopReason")
                    elif et == "metadata":
                        for ev in eb.finish(_STOP.get(stop or "", "end_turn"), _usage(p.get("usage"))):
                            yield ev
                        done = True
            if not done:
                if stop is None:
                    raise ProxyError(502, f"provider '{self.name}' ended the stream early", provider=self.name)
                for ev in eb.finish(_STOP.get(stop, "end_turn"), {}):
                    yield ev
        finally:
            resp.release()
