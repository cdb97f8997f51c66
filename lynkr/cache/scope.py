"""What a cached answer is keyed by, read from a canonical request.

- `exact_key(request)`: everything that changes an answer (model, system, tools, the whole
  history, sampling and output parameters), with volatile parts normalised, hashed.
- `split_prompt(request)`: for the semantic cache, the question the user asked (the text of
  the last user message, without `<system-reminder>` blocks) and the context around it.
- `scope_key(...)`: the semantic cache's partition: pipeline, model, a hash of the context
  (system prompt, tools, earlier turns, reminders) with dates, git status and per-request ids
  normalised away, and the session or chosen headers when the pipeline asks for them. Two
  repositories have different working directories and CLAUDE.md files in that context, so their
  answers never meet.
"""
from __future__ import annotations

import hashlib
import re

import orjson

from lynkr.body import Body
from lynkr.kit.cache import Bounded, remembered
from lynkr.kit.heap import kept

__all__ = ["exact_key", "split_prompt", "scope_key", "normalise_volatile", "eligibility", "ANSWER_PARAMS"]

# Request fields that change what the model answers (besides model, system, tools, messages).
ANSWER_PARAMS = ("temperature", "top_p", "top_k", "max_tokens", "stop_sequences", "tool_choice", "thinking",
                 "output_config", "output_format", "response_format", "reasoning", "seed", "n")

_VOLATILE = [
    # Claude Code's per-request billing line in the system prompt.
    (re.compile(r"x-anthropic-billing-header:[^\n]*"), "x-anthropic-billing-header"),
    # The git status snapshot: branch, dirty files and recent commits change every few minutes.
    (re.compile(r"(?s)(# ?gitStatus|gitStatus:).*?(?=\n#[^#]|\n<|</system-reminder>|\Z)"), "gitStatus"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"), "<date>"),
    (re.compile(r"(?i)\b(?:today'?s date is|current date:?|date:)\s*[^\n]*"), "<date>"),
    (re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\s*(?:[AaPp][Mm])?\b"), "<time>"),
    (re.compile(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\b(?:req|msg|toolu|call|resp|run|sess|chatcmpl)_[A-Za-z0-9]{8,}\b"), "<id>"),
    (re.compile(r"(?i)\b[0-9a-f]{16,}\b"), "<hex>"),
]
# Blocks the client writes around the user's words: Claude Code's reminders, Codex's environment
# context (cwd, shell, date) and AGENTS.md instructions. Context for the scope, never the question.
_REMINDER = re.compile(r"(?s)^\s*<(system-reminder|environment_context|user_instructions|INSTRUCTIONS)>.*</\1>\s*$")
_UNKEYED = ("cache_control", "id", "tool_use_id")


@remembered(max_entries=4096)
def normalise_volatile(text: str) -> str:
    """Dates, times, ids, the git status and the billing line masked. Only for text the client
    generates around the user (system prompt, reminders), never for what the user wrote: "what
    changed on 2026-11-26" and "… on 2026-11-27" are different questions. Cached: an agent resends
    the same system prompt every turn."""
    for rx, repl in _VOLATILE:
        text = rx.sub(repl, text)
    return text


def _digest(value) -> str:
    # sha256 (CPU instructions) hashes a 62 KB request in ~40 µs, blake2b took ~110 µs: this runs
    # on the event loop for every request. 32 hex digits, as before.
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def _normalise_value(value):
    """A system prompt with volatile strings normalised (cache keys, never what is sent upstream)."""
    if isinstance(value, str):
        return normalise_volatile(value)
    if isinstance(value, list):
        return [_normalise_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise_value(v) for k, v in value.items() if k not in _UNKEYED}
    return value


def _normalise_messages(messages: list) -> list:
    """Messages for a key: reminder blocks and client-made system messages normalised like the
    system prompt; what the user and the model wrote kept exactly; tool call ids dropped."""
    out = []
    for m in messages:
        if not isinstance(m, dict):
            out.append(m)
            continue
        if m.get("role") == "system":
            out.append(_normalise_value(m))
            continue
        content = m.get("content")
        if isinstance(content, list):
            blocks = []
            for b in content:
                if not isinstance(b, dict):
                    blocks.append(b)
                elif b.get("type") == "text" and _REMINDER.match(b.get("text") or ""):
                    blocks.append(_normalise_value(b))
                else:
                    blocks.append({k: v for k, v in b.items() if k not in _UNKEYED})
            content = blocks
        out.append({**{k: v for k, v in m.items() if k not in _UNKEYED}, "content": content})
    return out


def exact_key(request: dict, *, model: str | None = None, extra: tuple = (), body: Body | None = None) -> str:
    """A key that changes when anything that changes the answer changes. Tool call ids are
    dropped (`toolu_…` differs between two runs of the same conversation), their order is kept.

    The key hashes one digest per part (the system prompt, each tool, each message) after a
    header that fixes how many of each follow. A part's digest is of its normalised, key-sorted
    JSON and is remembered by the part's plain JSON: an agent resends the same system prompt,
    tools and history every turn, so only the new turn is normalised (the whole walk took ~150 µs
    of a 62 KB request on the event loop). `body` (the exchange's, lynkr.body) shares each
    part's JSON with the stages after this one."""
    body = body if body is not None else Body()
    msgs = request.get("messages") or []
    tools = request.get("tools") or []
    head = {
        "model": model if model is not None else request.get("model"),
        "params": {k: request.get(k) for k in ANSWER_PARAMS if request.get(k) is not None},
        "extra": list(extra),
        "parts": [len(tools), len(msgs)],
    }
    h = hashlib.sha256(orjson.dumps(head, option=orjson.OPT_SORT_KEYS))
    h.update(_part_digest(0, request.get("system") or [], _normalise_value, body))
    for t in tools:
        h.update(_part_digest(1, t, _same, body))
    for m in msgs:
        h.update(_part_digest(2, m, _normalise_message, body))
    return h.hexdigest()[:32]


def _same(value):
    return value


def _normalise_message(message):
    return _normalise_messages([message])[0]


# (kind, a part's plain JSON) -> sha256 of the part normalised and key-sorted, sized by the JSON it
# holds plus the entry's own overhead (a new turn is a small part). The key keeps a right-sized copy
# of the request's JSON (lynkr.kit.heap).
DIGESTS: Bounded[tuple, bytes] = Bounded(max_size=2_000_000)


def _part_digest(kind: int, part, normalise, body: Body) -> bytes:
    raw = body.json_of(part)
    hit = DIGESTS.get((kind, raw))
    if hit is None:
        hit = DIGESTS.put((kind, kept(raw)), hashlib.sha256(orjson.dumps(normalise(part), option=orjson.OPT_SORT_KEYS)).digest(),
                          size=len(raw) + 150)
    return hit


def _text_of(block) -> str:
    if isinstance(block, dict) and block.get("type") == "text":
        return block.get("text") or ""
    return ""


def split_prompt(request: dict) -> tuple[str, list]:
    """(the question, the context it was asked in). The question is the last user message's
    own text; reminder blocks Claude Code adds to it and every other message are context."""
    msgs = request.get("messages") or []
    last_user = None
    for i in range(len(msgs) - 1, -1, -1):
        if isinstance(msgs[i], dict) and msgs[i].get("role") == "user":
            last_user = i
            break
    if last_user is None:
        return "", msgs
    question, reminders = [], []
    for block in msgs[last_user].get("content") or []:
        text = _text_of(block)
        if text and not _REMINDER.match(text):
            question.append(text)
        else:
            reminders.append(block)
    context = msgs[:last_user] + [{"role": "user", "content": reminders}] + msgs[last_user + 1:]
    return "\n".join(question).strip(), context


def eligibility(request: dict, max_turns: int) -> str | None:
    """None when a cached answer to this request can be right; else why not."""
    msgs = request.get("messages") or []
    turns = 1
    for m in msgs:
        if not isinstance(m, dict):
            continue
        for block in m.get("content") or ():
            if isinstance(block, dict) and block.get("type") in ("tool_result", "tool_use", "server_tool_use",
                                                                   "web_search_tool_result"):
                return "tool_loop"
            if isinstance(block, dict) and block.get("type") in ("image", "document"):
                return "attachment"     # we embed text only; the picture may be the question
        if m.get("role") == "assistant":
            turns += 1
    if turns > max_turns:
        return "turns"
    if not msgs or not isinstance(msgs[-1], dict) or msgs[-1].get("role") == "assistant":
        return "prefill"                # an assistant prefill continues a specific answer
    return None


def scope_key(x, request: dict, context: list, *, pipeline: str, model: str | None, per_session: bool,
              headers: list[str]) -> str:
    parts = {
        "pipeline": pipeline,
        "model": model,
        "system": _normalise_value(request.get("system") or []),
        "tools": sorted((t.get("name") or "", _digest(t)) for t in request.get("tools") or [] if isinstance(t, dict)),
        "context": _normalise_messages(context),
        "params": {k: request.get(k) for k in ANSWER_PARAMS
                   if request.get(k) is not None and k not in ("max_tokens", "temperature", "top_p", "top_k", "seed")},
    }
    if per_session:
        parts["session"] = x.session
    for h in headers:
        parts["h:" + h] = x.headers.get(h.lower())
    return _digest(parts)
