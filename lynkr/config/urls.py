"""URL checks the loader makes before anything connects (a pipeline names where Redis is)."""
from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["redis_url_problem", "REDIS_SCHEMES"]

# What each accepted scheme is to redis-py (Valkey speaks Redis's protocol).
REDIS_SCHEMES = {"redis": "redis", "rediss": "rediss", "unix": "unix", "valkey": "redis", "valkeys": "rediss"}


def redis_url_problem(url: str) -> str | None:
    """Why `url` is not a Redis URL the client can use, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        return f"not a Redis URL ({e}); expected redis://[:password@]host:port/db"
    if parts.scheme not in REDIS_SCHEMES:
        return (f"unknown scheme {parts.scheme + '://' if parts.scheme else '(none)'}; "
                "expected redis://, rediss://, valkey://, valkeys:// or unix://")
    if parts.scheme == "unix":
        return None if parts.path else "unix:// needs the socket's path (unix:///run/redis.sock)"
    if not parts.hostname:
        return "no host; expected redis://[:password@]host:port/db"
    db = parts.path.strip("/")
    if db and not db.isdigit():
        return f"the database must be a number (/0), not /{db}"
    if port == 0:
        return "port 0 is not a port"
    return None
