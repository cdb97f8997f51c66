"""Mutated copies of real client requests (../shared/fixtures: Claude Code and Codex traffic) and the
judge of what Lynkr answered to each: a reproducible stream (a seed) for tests/test_fuzz.py.

A mutation changes one to three places of the body: a value of another type (a list where a
string was, a number where a list was, 2**64, NaN-free floats, control characters, a lone `{}`),
a key deleted, an unknown key or block type added, a list emptied or doubled. That is what found
the wrong-typed fields that reached provider adapters, the model names that reached headers, the
requests without `model`, and the rows that never reached telemetry.
"""
from __future__ import annotations

import copy
import http.client
import json
import random
from pathlib import Path

import orjson

__all__ = ["base_requests", "mutate", "Outcome", "send_and_judge"]

CHAT = {"model": "gpt-x", "stream": False, "max_tokens": 64, "messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": [{"type": "text", "text": "list the files"}]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "ls", "arguments": "{\"path\": \".\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "a.py\nb.py"},
    {"role": "user", "content": "thanks"}],
    "tools": [{"type": "function", "function": {"name": "ls", "parameters": {"type": "object"}}}]}

_ODD_STRINGS = ["", "\x00", "a\r\nx-injected: 1", "\u2028", "\ud7ff\ue000", "x" * 300, "\t", "\x7f", "{{ 7*7 }}",
                "../../etc/passwd", "sk-ant-api03-" + "A" * 40]
_ODD_VALUES = [None, True, 0, -1, 2 ** 63 - 1, 1e308, -0.0, 3.5, [], {}, [3], {"type": "???"}, [[[]]],
               {"type": "text"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "@@"}},
               {"type": "tool_result", "tool_use_id": "toolu_x", "content": "orphan"}]


def base_requests(fixtures: Path) -> list[tuple[str, dict]]:
    """(path, body) of every recorded request, plus a Chat Completions conversation."""
    out = []
    for f in sorted(fixtures.glob("*/*/req_*.json")):
        rec = json.loads(f.read_text())
        out.append((rec["path"].split("?")[0], rec["body"]))
    out.append(("/v1/chat/completions", CHAT))
    return out


def _places(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _places(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node[:6] + node[-3:] if len(node) > 9 else node):
            yield from _places(v, path + ((i if i < 6 or len(node) <= 9 else len(node) - 9 + i),))


def _get(node, path):
    for p in path:
        node = node[p]
    return node


def _odd(rng: random.Random):
    return rng.choice(_ODD_STRINGS) if rng.random() < 0.35 else copy.deepcopy(rng.choice(_ODD_VALUES))


def mutate(body: dict, rng: random.Random) -> dict:
    body = copy.deepcopy(body)
    places = [p for p in _places(body) if p]
    for _ in range(rng.randint(1, 3)):
        if not places:
            break
        path = rng.choice(places)
        try:
            parent, key = _get(body, path[:-1]), path[-1]
            target = parent[key]
        except (KeyError, IndexError, TypeError):
            continue
        op = rng.random()
        if op < 0.45:
            parent[key] = _odd(rng)
        elif op < 0.6 and isinstance(parent, dict):
            del parent[key]
        elif op < 0.7 and isinstance(target, dict):
            target[rng.choice(["type", "role", "text", "content", "zz_unknown"])] = _odd(rng)
        elif op < 0.8 and isinstance(target, list):
            target[:] = [] if rng.random() < 0.5 else target + target[:1]
        elif op < 0.9 and isinstance(target, str):
            parent[key] = target[: rng.randint(0, len(target))] + rng.choice(_ODD_STRINGS)
        else:
            parent[key] = [target] if rng.random() < 0.5 else {"value": target}
    return body


class Outcome:
    """Counts of what the server answered over a fuzz run."""

    def __init__(self):
        self.sent = self.ok = self.client_errors = 0
        self.server_errors: list = []      # (status, path, first bytes)
        self.dropped: list = []            # (path, exception)
        self.off_shape: list = []          # (status, path, first bytes)

    def line(self) -> str:
        return (f"{self.sent} mutated requests: {self.ok} × 200, {self.client_errors} × 4xx, "
                f"{len(self.server_errors)} × 5xx, {len(self.dropped)} dropped connections, "
                f"{len(self.off_shape)} errors outside the client's shape")


def _in_shape(path: str, raw: bytes) -> bool:
    try:
        err = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(err, dict):
        return False
    if path.startswith("/v1/messages"):
        e = err.get("error")
        return err.get("type") == "error" and isinstance(e, dict) and isinstance(e.get("message"), str) \
            and isinstance(e.get("type"), str)
    e = err.get("error")
    return isinstance(e, dict) and isinstance(e.get("message"), str) and isinstance(e.get("type"), str)


def send_and_judge(conn: http.client.HTTPConnection, path: str, body: dict, out: Outcome) -> http.client.HTTPConnection:
    """Send on a keep-alive connection, read the whole answer, and count it. Returns the connection
    to use next (a new one after a drop)."""
    out.sent += 1
    try:
        data = orjson.dumps(body)
    except TypeError:          # a mutation orjson cannot write (an int past 64 bits): send it as JSON text
        data = json.dumps(body).encode()
    try:
        conn.request("POST", path, body=data, headers={"content-type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
    except (http.client.HTTPException, OSError) as e:
        out.dropped.append((path, repr(e)))
        conn.close()
        return http.client.HTTPConnection(conn.host, conn.port, timeout=conn.timeout)
    if r.status >= 500:
        out.server_errors.append((r.status, path, raw[:300]))
    elif r.status >= 400:
        out.client_errors += 1
        if not _in_shape(path, raw) or b"Traceback" in raw:
            out.off_shape.append((r.status, path, raw[:300]))
    else:
        out.ok += 1
    return conn
