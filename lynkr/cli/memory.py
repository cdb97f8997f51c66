"""`lynkr memory list|search|forget [--project P]`: what the `memory` stage remembers, per project.

    lynkr memory list --project /home/dev/shop-api
    lynkr memory search "which database" --project /home/dev/shop-api
    lynkr memory forget m_0123456789abcdef            # or: --project P --all

Works on the memory file (`--path`, default `$LYNKR_STATE_DIR/memory.duckdb` or
`.lynkr/memory.duckdb`) while `lynkr run` serves: the file is attached per batch, and the proxy
reloads it within two seconds of a change, so a forgotten memory is not injected again.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

from lynkr.cli import command

__all__ = ["cmd_memory"]


def _path(args) -> str:
    return args.path or os.path.join(os.environ.get("LYNKR_STATE_DIR") or ".lynkr", "memory.duckdb")


def _project(p: str | None) -> str | None:
    """A project as the clients state it: an absolute path (a relative one that exists is resolved)."""
    from lynkr.memory.scope import clean_project
    if p is None:
        return None
    if not os.path.isabs(p) and Path(p).is_dir():
        p = str(Path(p).resolve())
    return clean_project(p)


def _where(project: str | None) -> tuple[str, list]:
    return ("project = ?", [project]) if project else ("true", [])


def _show(rows: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    project = None
    for r in rows:
        if r["project"] != project:
            project = r["project"]
            print(f"{project}{'  (tenant ' + r['tenant'] + ')' if r.get('tenant') else ''}")
        day = dt.datetime.fromtimestamp(r["created"], dt.timezone.utc).strftime("%Y-%m-%d")
        score = f"  {r['relevance']:.2f}" if "relevance" in r else ""
        print(f"  {r['id']}  {day}  {r['kind']:<10}{score}  {r['text']}")
    if not rows:
        print("no memories")


def _search(path: str, project: str | None, query: str, limit: int) -> list[dict]:
    import numpy as np

    from lynkr.kit.embed import get_embedder
    from lynkr.memory.rank import rank, words
    from lynkr.memory.store import file_op

    rows = [r for r in file_op(path, *_where(project), vectors=True) if r["vector"]]
    if not rows:
        return []
    qv = get_embedder().embed([query])[0]
    matrix = np.asarray([r.pop("vector") for r in rows], dtype=np.float32)
    found = rank(matrix, [words(r["text"]) for r in rows], np.asarray([r["importance"] for r in rows]),
                 np.asarray([r["accessed"] for r in rows]), qv, words(query), now=dt.datetime.now().timestamp(),
                 limit=limit, min_relevance=0.0)
    return [{**rows[i], "relevance": round(rel, 3)} for _s, rel, i in found]


@command
def cmd_memory(args) -> int:
    """List, search or forget what the memory stage remembers (per project)."""
    from lynkr.memory.store import file_op

    path, project = _path(args), _project(args.project)
    if not Path(path).exists():
        print(f"✗ no memory file at {path} (is the memory stage on? --path names another file)", file=sys.stderr)
        return 1
    if args.action == "list":
        _show(file_op(path, *_where(project)), args.json)
    elif args.action == "search":
        if not args.query:
            print("✗ lynkr memory search needs the text to look for", file=sys.stderr)
            return 1
        _show(_search(path, project, " ".join(args.query), args.limit), args.json)
    else:
        ids = args.query
        if not ids and not (project and args.all):
            print("✗ lynkr memory forget needs memory ids (m_…), or --project P --all", file=sys.stderr)
            return 1
        where, params = _where(project)
        if ids:
            where, params = f"{where} AND id IN (SELECT unnest(?))", params + [ids]
        gone = file_op(path, where, params, delete=True)
        print(f"forgot {len(gone)} memor{'y' if len(gone) == 1 else 'ies'}")
        if ids and len(gone) < len(ids):
            missing = sorted(set(ids) - {r['id'] for r in gone})
            print(f"✗ not found{' in ' + project if project else ''}: {', '.join(missing)}", file=sys.stderr)
            return 1
    return 0


def _configure(p) -> None:
    p.add_argument("action", choices=["list", "search", "forget"])
    p.add_argument("query", nargs="*", help="search: the text to look for; forget: memory ids")
    p.add_argument("--project", help="only this project (the working directory the client states)")
    p.add_argument("--path", help="the memory file (default $LYNKR_STATE_DIR/memory.duckdb or .lynkr/memory.duckdb)")
    p.add_argument("--limit", type=int, default=10, help="search: at most this many")
    p.add_argument("--all", action="store_true", help="forget: every memory of --project")
    p.add_argument("--json", action="store_true")


cmd_memory.configure = _configure
