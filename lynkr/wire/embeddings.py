"""OpenAI embeddings (`POST /v1/embeddings`), for Cursor's and Continue's codebase search.

Served locally by fastembed (lynkr.kit.embed, all-MiniLM-L6-v2 by default, the model the semantic
cache uses) in a thread pool, or forwarded to an OpenAI-compatible provider marked for it:

    providers:
      openai: {kind: openai, base_url: https://api.openai.com/v1, api_key: …, embeddings: true}
"""
from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from lynkr.errors import ProxyError

__all__ = ["parse", "handle", "local_embed"]

MAX_INPUTS = 2048


def parse(body) -> list[str]:
    if not isinstance(body, dict):
        raise ProxyError(400, "request body must be a JSON object")
    inp = body.get("input")
    if inp is None:
        raise ProxyError(400, "input: field required (a string or a list of strings)")
    if isinstance(inp, str):
        inp = [inp]
    if not isinstance(inp, list) or not inp:
        raise ProxyError(400, "input: must be a non-empty string or list of strings")
    if len(inp) > MAX_INPUTS:
        raise ProxyError(400, f"input: at most {MAX_INPUTS} items per request (got {len(inp)})")
    if not all(isinstance(t, str) for t in inp):
        raise ProxyError(400, "input: token-id arrays are not supported by the local embedder; send strings")
    return inp


def local_embed(texts: list[str]) -> list[list[float]]:
    from lynkr.kit.embed import get_embedder
    return get_embedder().embed(texts).tolist()


def _provider(request: web.Request):
    p = request.app["engine"].current
    for prov in (getattr(p, "providers", None) or {}).values():
        if (getattr(prov, "config", None) or {}).get("embeddings"):
            return prov
    return None


async def handle(request: web.Request, body) -> web.Response:
    texts = parse(body)
    prov = _provider(request)
    if prov is not None:
        headers = {"content-type": "application/json"}
        if prov.api_key:
            headers["authorization"] = f"Bearer {prov.api_key}"
        try:
            async with prov.session.post(prov.base_url + "/embeddings", data=orjson.dumps(body), headers=headers) as r:
                raw = await r.read()
                return web.Response(status=r.status, body=raw, content_type="application/json")
        except OSError as e:
            raise ProxyError(502, f"cannot reach embeddings provider '{prov.name}': {e}") from None
    try:
        vecs = await asyncio.get_running_loop().run_in_executor(None, local_embed, texts)
    except Exception as e:   # the model failed to load: say so, in OpenAI's shape
        raise ProxyError(503, f"the local embedding model is unavailable: {e}", retryable=False) from None
    from lynkr.kit.tokens import count_text
    tokens = await asyncio.get_running_loop().run_in_executor(None, lambda: sum(count_text(t) for t in texts))
    if body.get("encoding_format") == "base64":     # the openai SDK's default: float32 little-endian
        import base64

        import numpy as np
        vecs = [base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vecs]
    out = {"object": "list", "model": body.get("model") or "all-MiniLM-L6-v2",
           "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vecs)],
           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return web.Response(body=orjson.dumps(out), content_type="application/json")
