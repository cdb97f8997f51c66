"""A provider's prompt cache as its documentation describes it, for the test doubles and
`lynkr replay`: given what went upstream, how many input tokens the provider would read from
its cache, write to it, and bill as plain input.

    sim = PromptCache.explicit(min_tokens=1024)      # Anthropic, Bedrock, OpenRouter serving Claude
    sim = PromptCache.automatic(min_tokens=1024)     # OpenAI, DeepSeek, Gemini (implicit)
    usage = sim.use(anthropic_blocks(body), now)     # {"input", "read", "write_5m", "write_1h", "total"}

Explicit caches (Anthropic's rules): the prompt is tools, then system, then messages, block by
block; a breakpoint (`cache_control` / `cachePoint`) caches the prefix up to and including its
block, if that prefix is at least the model's minimum. On a request the provider checks each
breakpoint and the up to 20 blocks before it (the lookback window) for a cached prefix, and reads
the longest it finds; the prefix up to the last breakpoint beyond it is written (billed at the
breakpoint's ttl: 5 minutes or 1 hour). A hit refreshes the entry's ttl. Claude Code's
`x-anthropic-billing-header` system block is not part of the cached prompt (Anthropic reads it
as metadata: it changes every request, and Claude Code's own breakpoints still hit).

Automatic caches (OpenAI's rules): every prompt's prefixes are cached (≥ min_tokens, in
128-token steps); a request reads the longest cached prefix at a block boundary. No write fee.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import orjson

__all__ = ["PromptCache", "Block", "anthropic_blocks", "converse_blocks", "chat_blocks", "blocks_for",
           "TTL_SECONDS"]

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
LOOKBACK = 20
_BILLING = "x-anthropic-billing-header:"


@dataclass(frozen=True, slots=True)
class Block:
    data: bytes            # what the block contributes to the cached prompt
    tokens: int
    mark: str | None = None   # "5m" | "1h" when a breakpoint ends at this block


def _block(value, mark=None, head: bytes = b"") -> Block:
    from lynkr.kit.tokens import count_text
    data = head + orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return Block(data, max(1, count_text(data.decode())), mark)


def _ttl(cc) -> str | None:
    if not isinstance(cc, dict):
        return None
    return "1h" if cc.get("ttl") == "1h" else "5m"


def _strip(value: dict) -> dict:
    return {k: v for k, v in value.items() if k != "cache_control"}


def anthropic_blocks(body: dict) -> list[Block]:
    """An Anthropic Messages body (what an Anthropic upstream receives) as cache blocks."""
    out = [_block(_strip(t), _ttl(t.get("cache_control"))) for t in body.get("tools") or () if isinstance(t, dict)]
    system = body.get("system")
    if isinstance(system, str):
        out.append(_block(system))
    for b in system if isinstance(system, list) else ():
        if isinstance(b, dict) and not str(b.get("text", "")).lstrip().startswith(_BILLING):
            out.append(_block(_strip(b), _ttl(b.get("cache_control"))))
    for m in body.get("messages") or ():
        head = f"\x00{m.get('role')}\x00".encode()
        content = m.get("content")
        if isinstance(content, str):
            out.append(_block(content, head=head))
            continue
        for j, b in enumerate(content or ()):
            out.append(_block(_strip(b), _ttl(b.get("cache_control")), head if j == 0 else b""))
    return out


def _marked(items: list, head: bytes = b"") -> list[Block]:
    """Converse content with `cachePoint` elements: a point marks the block before it."""
    out: list[Block] = []
    for item in items or ():
        if isinstance(item, dict) and "cachePoint" in item:
            if out:
                cp = item["cachePoint"] or {}
                out[-1] = Block(out[-1].data, out[-1].tokens, "1h" if cp.get("ttl") == "1h" else "5m")
            continue
        out.append(_block(item, head=head if not out else b""))
    return out


def converse_blocks(body: dict) -> list[Block]:
    """A Bedrock Converse body as cache blocks (tools, system, messages)."""
    out = _marked(((body.get("toolConfig") or {}).get("tools")) or [])
    out += _marked(body.get("system") or [])
    for m in body.get("messages") or ():
        out += _marked(m.get("content") or [], f"\x00{m.get('role')}\x00".encode())
    return out


def chat_blocks(body: dict) -> list[Block]:
    """An OpenAI chat body as cache blocks; `cache_control` on content parts (OpenRouter) marks."""
    out = [_block(t) for t in body.get("tools") or ()]
    for m in body.get("messages") or ():
        head = f"\x00{m.get('role')}\x00".encode()
        content = m.get("content")
        if isinstance(content, str):      # the same prompt as one text part (how OpenRouter hands it on)
            content = [{"type": "text", "text": content}]
        rest = {k: v for k, v in m.items() if k not in ("content", "role")}
        if isinstance(content, list):
            for j, p in enumerate(content):
                out.append(_block(_strip(p) if isinstance(p, dict) else p,
                                  _ttl(p.get("cache_control")) if isinstance(p, dict) else None,
                                  head if j == 0 else b""))
        elif content is not None:
            out.append(_block(content, head=head))
        if rest:
            out.append(_block(rest, head=b"" if content is not None else head))
    return out


def blocks_for(markers: str, body: dict) -> list[Block]:
    """The blocks of an upstream body in the format `markers` names (CacheRules.markers)."""
    if markers == "cachePoint":
        return converse_blocks(body)
    if markers == "cache_control":
        return anthropic_blocks(body)
    return chat_blocks(body)


@dataclass
class PromptCache:
    """One provider's cache for one account (a test double holds one; replay one per session)."""

    explicit_marks: bool = True
    min_tokens: int = 1024
    lookback: int = LOOKBACK
    step: int = 128                      # automatic caches hit in steps of this many tokens
    ttl_default: str = "5m"
    entries: dict = field(default_factory=dict)     # prefix digest -> (expires_at, ttl)

    @classmethod
    def explicit(cls, min_tokens: int = 1024) -> "PromptCache":
        return cls(True, min_tokens)

    @classmethod
    def automatic(cls, min_tokens: int = 1024, step: int = 128) -> "PromptCache":
        return cls(False, min_tokens, step=step)

    def use(self, blocks: list[Block], now: float, seed: str = "") -> dict:
        """Serve one request: the usage the provider would report, and the cache updated."""
        digests, totals = [], []
        h = hashlib.sha256(seed.encode())
        n = 0
        for b in blocks:
            h.update(b.data)
            digests.append(h.copy().digest())
            n += b.tokens
            totals.append(n)
        if self.explicit_marks:
            return self._explicit(blocks, digests, totals, now)
        return self._automatic(digests, totals, now)

    def _live(self, digest: bytes, now: float) -> bool:
        e = self.entries.get(digest)
        return e is not None and e[0] > now

    def _explicit(self, blocks, digests, totals, now) -> dict:
        marks = [i for i, b in enumerate(blocks) if b.mark]
        hit = -1
        for bp in marks:
            for j in range(bp, max(-1, bp - self.lookback - 1), -1):
                if self._live(digests[j], now):
                    hit = max(hit, j)
                    break
        read = totals[hit] if hit >= 0 else 0
        if hit >= 0:
            ttl = self.entries[digests[hit]][1]
            self.entries[digests[hit]] = (now + TTL_SECONDS[ttl], ttl)
        writes = {"5m": 0, "1h": 0}
        done = read
        for bp in marks:
            if totals[bp] < self.min_tokens:
                continue
            ttl = blocks[bp].mark
            if bp > hit:
                writes[ttl] += totals[bp] - done
                done = totals[bp]
            self.entries[digests[bp]] = (now + TTL_SECONDS[ttl], ttl)
        total = totals[-1] if totals else 0
        return {"input": total - read - writes["5m"] - writes["1h"], "read": read,
                "write_5m": writes["5m"], "write_1h": writes["1h"], "total": total}

    def _automatic(self, digests, totals, now) -> dict:
        read = 0
        for j in range(len(digests) - 1, -1, -1):
            if self._live(digests[j], now):
                read = totals[j]
                break
        if read < self.min_tokens:
            read = 0
        else:
            read -= (read - self.min_tokens) % self.step
        for j, d in enumerate(digests):
            if totals[j] >= self.min_tokens:
                self.entries[d] = (now + TTL_SECONDS[self.ttl_default], self.ttl_default)
        total = totals[-1] if totals else 0
        return {"input": total - read, "read": read, "write_5m": 0, "write_1h": 0, "total": total}
