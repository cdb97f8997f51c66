"""Errors: configuration errors that name file, YAML path and line; proxy errors that render
in the client's own protocol."""
from __future__ import annotations

from typing import Iterable

__all__ = ["ConfigError", "ProxyError", "did_you_mean", "format_path"]


def format_path(path: Iterable) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top)"


class ConfigError(Exception):
    """A pipeline that cannot be loaded. `str()` reads `file:line: yaml.path: message`."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 path: Iterable = (), hint: str | None = None):
        from lynkr.redact import redact   # schema errors quote values; a key may be one
        self.message = message = redact(message)
        self.file = file
        self.line = line
        self.path = tuple(path)
        self.hint = hint
        self.more: list[ConfigError] = []      # the file's other errors, in line order (validate prints all)
        super().__init__(str(self))

    @classmethod
    def several(cls, errors: list["ConfigError"], cap: int = 20) -> "ConfigError":
        """One error carrying a file's others (sorted by line, at most `cap`), raised as the first."""
        errors = sorted(errors, key=lambda e: (e.line or 0))[:cap]
        first = errors[0]
        first.more = errors[1:]
        return first

    def all(self) -> list["ConfigError"]:
        return [self, *self.more]

    def __str__(self) -> str:
        more = getattr(self, "more", ())
        return self.one() + "".join(f"\n✗ {e.one()}" for e in more)

    def one(self) -> str:
        """This error alone, as `file:line: yaml.path: message (hint)`."""
        where = self.file or "<pipeline>"
        if self.line:
            where += f":{self.line}"
        text = f"{where}: {format_path(self.path)}: {self.message}" if self.path else f"{where}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """The closest valid name, phrased for an error message, or None."""
    from rapidfuzz import fuzz, process

    choices = list(choices)
    if not choices:
        return None
    best = process.extractOne(name, choices, scorer=fuzz.WRatio, score_cutoff=60)
    return f"did you mean '{best[0]}'?" if best else None


# Anthropic error types by status; the OpenAI renderer maps them to its own codes.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "api_error",
    529: "overloaded_error",
}


class ProxyError(Exception):
    """An error the client receives in its own protocol.

    `retryable` feeds `x-should-retry`; `retry_after` (seconds) becomes `retry-after`.
    `provider_message` is the upstream's own wording, relayed verbatim (Claude Code matches
    "prompt is too long").

    `fault` says whose it is: "upstream" (an upstream answered badly or not at all: the only kind
    a circuit breaker counts), "client" (the request: 4xx, never retried elsewhere) or "proxy"
    (our own failure). By default an error naming a provider is the upstream's, another 4xx the
    client's, another 5xx the proxy's.
    """

    def __init__(self, status: int, message: str, *, type: str | None = None,
                 retry_after: float | None = None, retryable: bool | None = None,
                 fallbackable: bool | None = None, provider: str | None = None, code: str | None = None,
                 fault: str | None = None):
        from lynkr.redact import redact   # a provider key an upstream echoes back must not reach the client
        message = redact(message)
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        self.retry_after = retry_after
        self.retryable = retryable if retryable is not None else status in (408, 429, 500, 502, 503, 504, 529)
        self.fallbackable = fallbackable if fallbackable is not None else (self.retryable or status == 404)
        self.provider = provider
        self.code = code
        self.fault = fault or ("upstream" if provider else "client" if status < 500 else "proxy")

    def __repr__(self) -> str:
        return f"ProxyError({self.status}, {self.message!r}, type={self.type!r})"
