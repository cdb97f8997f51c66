"""The error envelope both OpenAI protocols share: `{"error": {message, type, param, code}}` with
the status, `retry-after` and `x-should-retry` headers OpenAI's SDKs act on."""
from __future__ import annotations

import orjson
from aiohttp import web

from lynkr.errors import ProxyError

__all__ = ["error_type", "json_error"]

_ERROR_TYPES = {"overloaded_error": "server_error", "api_error": "server_error", "request_too_large": "invalid_request_error",
                "timeout_error": "server_error", "not_found_error": "invalid_request_error"}


def error_type(anthropic_type: str) -> str:
    return _ERROR_TYPES.get(anthropic_type, anthropic_type)


def json_error(err: ProxyError, body: dict, headers: dict | None = None) -> web.Response:
    h = dict(headers or {})
    if err.retry_after is not None:
        h["retry-after"] = str(max(0, int(round(err.retry_after))))
    h["x-should-retry"] = "true" if err.retryable else "false"
    return web.Response(status=err.status, body=orjson.dumps(body), content_type="application/json", headers=h)
