"""Whose memory a request reads and writes: the project, as the client states its working directory.

Claude Code writes `Primary working directory: /path` (older versions `Working directory: /path`)
into its system prompt or, in newer versions, into an environment `<system-reminder>` of the first
user message; Codex sends `<cwd>/path</cwd>` in its environment context; Cline writes
`Current Working Directory (/path)`. Memories are kept per (tenant, project): the tenant is the
client key's team or the key (`owner_of`, when the pipeline has `keys:`) and the values of the
configured request headers, so two tenants with the same path never share. A request that states no project gets no memory unless the stage names a fixed `project`.

A path is a key, never a file name: any character is allowed (it is bound as an SQL parameter),
control characters are replaced and the length is bounded.
"""
from __future__ import annotations

import re

__all__ = ["Scope", "project_of", "scope_of", "owner_of", "clean_project", "MAX_PROJECT_CHARS"]

MAX_PROJECT_CHARS = 1024
_SYSTEM = re.compile(r"(?:Primary working directory|Working directory|Current [Ww]orking [Dd]irectory)"
                     r"\s*(?::\s*|\()([^\n)]{1,4096})")
_CWD = re.compile(r"<cwd>([^<\n]{1,4096})</cwd>")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MESSAGES_READ = 4       # Codex's environment context is in its first user messages


class Scope(tuple):
    """(tenant, project): the partition a memory belongs to."""

    __slots__ = ()

    def __new__(cls, tenant: str, project: str):
        return tuple.__new__(cls, (tenant, project))

    @property
    def tenant(self) -> str:
        return self[0]

    @property
    def project(self) -> str:
        return self[1]


def clean_project(path: str) -> str:
    """The path as a bounded, printable key; trailing separators do not make another project."""
    p = _CONTROL.sub("?", path.strip())[:MAX_PROJECT_CHARS]
    return p.rstrip("/\\") or p


def project_of(request: dict) -> str | None:
    """The working directory the client states, or None."""
    for block in request.get("system") or ():
        text = block.get("text") if isinstance(block, dict) else None
        if isinstance(text, str) and "irectory" in text:
            m = _SYSTEM.search(text)
            if m:
                return clean_project(m.group(1))
    for msg in (request.get("messages") or [])[:_MESSAGES_READ]:
        content = msg.get("content") if isinstance(msg, dict) else None
        for block in content if isinstance(content, list) else ():
            text = block.get("text") if isinstance(block, dict) else None
            if not isinstance(text, str):
                continue
            m = (_CWD.search(text) if "<cwd>" in text else None) or \
                (_SYSTEM.search(text) if "orking directory" in text or "orking Directory" in text else None)
            if m:
                return clean_project(m.group(1))
    return None


def owner_of(names: dict, share: str) -> str:
    """Whose a project's memories are, from the client key the server identified (`names`: the
    exchange's vars, with `key` and `team`): "" without a key or with `share: project`."""
    key, team = names.get("key"), names.get("team")
    if not key or share == "project":
        return ""
    return f"team:{team}" if share == "team" and team else f"key:{key}"


def scope_of(request: dict, headers, *, tenant_headers=(), project: str | None = None,
             owner: str = "") -> Scope | None:
    """The request's scope, or None when it states no project (and none is configured)."""
    found = clean_project(project) if project else project_of(request)
    if not found:
        return None
    tenant = "\x1f".join(_CONTROL.sub("?", str(headers.get(h.lower()) or ""))[:256] for h in tenant_headers)
    return Scope(f"{owner}\x1e{tenant}" if owner else tenant, found)
