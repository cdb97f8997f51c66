"""Keep credentials out of everything Lynkr writes: logs, telemetry, `explain` output, error bodies.

Two nets, because neither alone is enough:
- the *known* secrets: every value under a secret key (`api_key`, `admin_token`, `api_keys`, …) of
  every pipeline loaded in this process, registered by the config loader;
- *shapes* of well-known provider keys (Anthropic, OpenAI, AWS, Google), for a key that reached us
  some other way (an upstream echoing the header it rejected, a URL with `?key=` in an exception).

`ProxyError` messages pass through `redact` when created, so error bodies, mid-stream error events
and the telemetry `error` column are clean at the source; `install_log_redaction()` cleans log
records, tracebacks included.
"""
from __future__ import annotations

import logging
import re
import threading
from typing import Iterable

__all__ = ["redact", "printable", "register_secrets", "secrets_in_config", "install_log_redaction", "MASK"]

MASK = "***"

# Short values ("ollama", "none", "x") are placeholders, not secrets; masking them would mangle text.
_MIN_SECRET_LEN = 8

_SHAPES = [
    r"sk-ant-[A-Za-z0-9_\-]{8,}",                 # Anthropic
    r"sk-(?:proj-|or-v1-|or-)?[A-Za-z0-9_\-]{20,}",  # OpenAI, OpenRouter
    r"AKIA[0-9A-Z]{16}",                          # AWS access key id
    r"AIza[0-9A-Za-z_\-]{30,}",                   # Google API key
    r"(?<=[Bb]earer )[A-Za-z0-9._~+/\-]{16,}=*",   # any bearer token quoted back at us
    r"(?<=[?&]key=)[^&\s\"']{8,}",            # Gemini's ?key= in URLs
    r"(?<=://)[^/\s:@\"']*:[^/\s@\"']+(?=@)",      # user:password@ in a URL (a base_url with credentials)
    r"(?<=password=)[^\s&'\"]+",                 # a libpq connection string's (telemetry.lake.catalog)
]

_lock = threading.Lock()
_secrets: set[str] = set()
_rx: re.Pattern = re.compile("|".join(_SHAPES))

_SECRET_KEYS = {"secret", "api_key", "admin_token", "api_keys", "secret_access_key", "session_token",
                "aws_secret_access_key", "token", "access_key_id", "password"}


def register_secrets(values: Iterable[str]) -> None:
    """Add values to mask from now on (process-wide; masking a retired pipeline's key too is harmless)."""
    global _rx
    new = {v for v in values if isinstance(v, str) and len(v.strip()) >= _MIN_SECRET_LEN} - _secrets
    if not new:
        return
    with _lock:
        _secrets.update(new)
        # Longest first, so a key that contains another is masked whole.
        known = [re.escape(s) for s in sorted(_secrets, key=len, reverse=True)]
        _rx = re.compile("|".join(known + _SHAPES))


def secrets_in_config(data) -> list[str]:
    """Every string under a secret key, anywhere in a (rendered) pipeline config."""
    out: list[str] = []

    def walk(v, secret=False):
        if isinstance(v, dict):
            for k, vv in v.items():
                walk(vv, secret or (isinstance(k, str) and k.lower() in _SECRET_KEYS))
        elif isinstance(v, list):
            for vv in v:
                walk(vv, secret)
        elif secret and isinstance(v, str):
            out.append(v)

    walk(data)
    return out


def redact(text):
    """`text` with every known secret and key-shaped string replaced by `***`; non-strings pass through."""
    if not isinstance(text, str) or not text:
        return text
    return _rx.sub(MASK, text)


# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: a CR/LF or NUL in a
# header ends it (or the response), in a log line forges the next one, ESC drives a terminal.
_CONTROLS = {c: "?" for c in (*range(0x20), 0x7f, *range(0x80, 0xa0), 0x2028, 0x2029)}
_LOG_CONTROLS = {c: r for c, r in _CONTROLS.items() if c not in (0x09, 0x0a)}


def printable(text, limit: int | None = 256, *, mask: bool = True) -> str:
    """A client-supplied string as it may appear in a header, a label or a telemetry column:
    secrets masked (unless `mask=False`: a header echoed to the client that sent it), control
    characters replaced, at most `limit` characters."""
    out = str(text)
    if mask:
        out = redact(out)
    if not out.isprintable():          # the common case skips the translation
        out = out.translate(_CONTROLS)
    return out if limit is None or len(out) <= limit else out[:limit]


class _RecordFactory:
    """Wraps the logging record factory: the message (and traceback) is masked when the record is made,
    so every handler and formatter — ours or the embedding application's — sees the clean text."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, *args, **kwargs):
        rec = self.inner(*args, **kwargs)
        try:
            msg = rec.getMessage()
        except Exception:      # a malformed log call is the caller's bug; leave it to logging
            return rec
        clean = redact(msg).translate(_LOG_CONTROLS)     # newlines stay: tracebacks, multi-line errors
        if clean != msg:
            rec.msg, rec.args = clean, None
        if rec.exc_info and rec.exc_info[1] is not None:
            text = logging.Formatter().formatException(rec.exc_info)
            clean = redact(text)
            if clean != text:
                rec.exc_text = clean
        return rec


def install_log_redaction() -> None:
    """Idempotent: wrap the process's log record factory once."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RecordFactory):
        logging.setLogRecordFactory(_RecordFactory(current))
