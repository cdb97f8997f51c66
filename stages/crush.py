"""crush: shorten large tool results to what carries information; the rest stays retrievable (opt-in).

    - id: crush
      uses: crush
      with: {keep_last: 2, min_tokens: 400}

What it keeps
- JSON arrays of objects (or an object holding one): a column with one value in every row is stated
  once; a string column whose lines repeat across rows (boilerplate), or repeat another column of the
  same row, is elided down to the lines that are its own; a common prefix/suffix is stated once.
  Rows are dropped only beyond `max_rows`, and never the first, the last, rows with errors or
  failures, rows with a rare value in a low-cardinality column, or rows holding words of the user's ask.
- Long text (test output, logs, grep hits, listings): the first and last lines, lines with errors,
  failures or warnings and their neighbours, lines with words of the user's ask; runs of other lines
  become one "… N lines elided …" line, and repeated lines collapse.

What it never loses
The crushed text starts with `[lynkr crush <handle>: …]` saying what was left out; the original goes
to the crush store, the request gets the `lynkr_expand` tool, and when the model calls it the proxy
answers from the store and continues the turn (lynkr/savings/expand.py) — the client never sees the call.
A result is crushed only when that saves at least `min_saving` of its tokens.

Prefix stability
A tool result's fate is decided once per session, the first time the proxy sees it, and replayed on
every later turn: a result sent in full stays in full, a crushed one gets the same bytes. So with
`keep_last: N` a result is crushed when it first arrives already older than the newest N results
(a resumed session, a restarted proxy), or — after `recrush_after_idle` seconds without requests in
the session, when the provider's prompt cache has expired anyway — once it has aged past them.
`keep_last: 0` crushes results as they arrive (the model can still expand them): that is what
saves the most in a live session.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections import OrderedDict
from pathlib import Path

import orjson

from lynkr.exchange import Exchange
from lynkr.savings.expand import EXPAND_NAME, EXPAND_TOOL, CrushStore, expand_interceptor, handle_for
from lynkr.savings.payloads import replace_payloads, tool_results, user_texts
from lynkr.stage import Stage
from lynkr.stages.toon import encode as toon_encode
from lynkr.stages.toon import looks_binary, parse_json
from lynkr.kit.tokens import count_text, warm

_SIGNAL = re.compile(r"\b(error|errors|fail|failed|failure|failures|failing|exception|traceback|panic|fatal|"
                     r"warn|warning|warnings|denied|refused|timeout|timed out|assert|assertion|critical|crash|"
                     r"segfault|abort|aborted|unexpected|invalid|missing|not found|broken)\b|✗|✘|❌", re.I)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,}")
_STOP = frozenset("""this that with from have will what when where which there their them then than these those
    into only also make sure does done just like some more most other should would could about after before
    please check still works work file files code line lines find show tell give want need using used""".split())
_NUMBERS = re.compile(r"\d+")


def ask_words(request: dict, extra: list[str]) -> set[str]:
    words = {w.lower() for w in extra}
    for text in user_texts(request):
        words |= {w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP}
    return words


def _has_word(text: str, words: set[str]) -> bool:
    if not words:
        return False
    low = text.lower()
    return any(w in low for w in words)


def _short(s: str, n: int = 80) -> str:
    s = s.strip()
    return s if len(s) <= n else s[: n - 1] + "…"


# -- JSON rows ------------------------------------------------------------------------------------

def _find_rows(value):
    """(rows, wrap): the list of objects to crush and how to put it back in its container."""
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        return value, None
    if isinstance(value, dict):
        lists = [(k, v) for k, v in value.items()
                 if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
        if len(lists) == 1:
            return lists[0][1], lists[0][0]
    return None, None


def crush_rows(rows: list[dict], words: set[str], max_rows: int) -> tuple[list[dict], list[str]]:
    """(reduced rows, notes saying what was stated once or left out)."""
    n = len(rows)
    columns: list[str] = []
    for r in rows:
        for k in r:
            if k not in columns:
                columns.append(k)
    notes: list[str] = []
    drop_cols: set[str] = set()
    replace: dict[str, list] = {}

    for col in columns:
        vals = [r.get(col, _MISSING) for r in rows]
        if any(v is _MISSING for v in vals):
            continue
        first = json.dumps(vals[0], ensure_ascii=False, sort_keys=True)
        if n > 1 and all(json.dumps(v, ensure_ascii=False, sort_keys=True) == first for v in vals[1:]):
            drop_cols.add(col)
            notes.append(f"{col}={_short(first, 120)} in every row")
            continue
        if n >= 3 and n <= max_rows and all(type(v) is int for v in vals) and \
                len({b - a for a, b in zip(vals, vals[1:])}) == 1 and vals[1] != vals[0]:
            drop_cols.add(col)      # 1, 2, 3, … : a row's position says it
            notes.append(f"{col} = {vals[0]}, {vals[1]}, … {vals[-1]} in row order")
            continue
        if not all(isinstance(v, str) for v in vals):
            continue
        own = _own_lines(col, vals, rows)
        if own is not None:
            kept, why = own
            if all(not v for v in kept):
                drop_cols.add(col)
                notes.append(f"{col!r} left out ({why})")
            else:
                replace[col] = kept
                notes.append(f"{col!r} cut to its own lines ({why})")
            continue
        pre, suf = _affixes(vals)
        if len(pre) + len(suf) >= 8:
            replace[col] = [v[len(pre): len(v) - len(suf)] for v in vals]
            notes.append(f"{col} = {json.dumps(pre + '…' + suf, ensure_ascii=False)} in every row (only … is shown)")

    keep_idx = list(range(n))
    if n > max_rows:
        keep_idx = _important_rows(rows, columns, words, max_rows)
        notes.append(f"{n - len(keep_idx)} of {n} rows left out (kept: first, last, errors, rare values, your words)")
    out = []
    for i in keep_idx:
        r = rows[i]
        out.append({k: (replace[k][i] if k in replace else v) for k, v in r.items() if k not in drop_cols})
    return out, notes


_MISSING = object()


def _own_lines(col: str, vals: list[str], rows: list[dict]):
    """For a multi-line column: each cell cut to the lines that are neither repeated across rows nor a
    copy of another column of the same row — or None when that would not remove most of it."""
    split = [v.splitlines() for v in vals]
    if sum(len(s) for s in split) < 2 * len(vals):
        return None
    seen_in: dict[str, int] = {}
    for lines in split:
        for line in {ln.strip() for ln in lines}:
            seen_in[line] = seen_in.get(line, 0) + 1
    total = sum(len(v) for v in vals)
    kept, kept_chars = [], 0
    for i, lines in enumerate(split):
        others = {str(v).strip() for k, v in rows[i].items() if k != col and isinstance(v, (str, int, float))}
        mine = [ln for ln in lines if ln.strip() and seen_in.get(ln.strip(), 0) < 2 and ln.strip() not in others]
        kept.append("\n".join(mine))
        kept_chars += sum(len(m) for m in mine)
    if kept_chars > total * 0.25:
        return None
    return kept, "lines repeated across rows or copied from other columns"


def _affixes(vals: list[str]) -> tuple[str, str]:
    if len(vals) < 3:
        return "", ""
    pre = vals[0]
    for v in vals[1:]:
        while not v.startswith(pre):
            pre = pre[:-1]
    suf = vals[0][len(pre):]
    for v in vals[1:]:
        while suf and not v[len(pre):].endswith(suf):
            suf = suf[1:]
    # Cut only at separators, so what is shown stays readable ("// TODO(" would leave "carol): …").
    cut = max((pre.rfind(c) for c in " /:=,"), default=-1)
    pre = pre[: cut + 1]
    start = min((i for i in (suf.find(c) for c in " /:=,.") if i >= 0), default=len(suf))
    suf = suf[start:]
    return pre, suf


def _important_rows(rows, columns, words, max_rows) -> list[int]:
    n = len(rows)
    keep = {0, n - 1}
    texts = [orjson.dumps(r, option=orjson.OPT_NON_STR_KEYS).decode() if _plain(r) else json.dumps(r, ensure_ascii=False) for r in rows]
    for i, t in enumerate(texts):
        if _SIGNAL.search(t) or _has_word(t, words):
            keep.add(i)
    for col in columns:     # rare values of a categorical column are the anomalies
        counts: dict[str, int] = {}
        cells = [json.dumps(r.get(col), ensure_ascii=False, sort_keys=True) for r in rows]
        for c in cells:
            counts[c] = counts.get(c, 0) + 1
        if len(counts) <= 5 and n >= 10:
            keep.update(i for i, c in enumerate(cells) if counts[c] <= max(1, n // 20))
    if len(keep) < max_rows:            # room left: spread the rest evenly, deterministically
        rest = [i for i in range(n) if i not in keep]
        step = len(rest) / (max_rows - len(keep))
        keep.update(rest[int(j * step)] for j in range(max_rows - len(keep)) if int(j * step) < len(rest))
    return sorted(keep)


def _plain(r) -> bool:
    try:
        orjson.dumps(r)
        return True
    except TypeError:
        return False


# -- text -----------------------------------------------------------------------------------------

def crush_lines(text: str, words: set[str], head: int = 5, tail: int = 5) -> tuple[str, list[str]] | None:
    lines = text.split("\n")
    n = len(lines)
    keep = set(range(min(head, n))) | set(range(max(0, n - tail), n))
    for i, line in enumerate(lines):
        if _SIGNAL.search(line) or _has_word(line, words):
            keep.update((i - 1, i, i + 1))
    keep = {i for i in keep if 0 <= i < n}
    out: list[str] = []
    elided = 0
    i = 0
    while i < n:
        if i in keep:
            j = i               # collapse a run of identical kept lines
            while j + 1 < n and j + 1 in keep and lines[j + 1] == lines[i]:
                j += 1
            out.append(lines[i] if j == i else f"{lines[i]}  [×{j - i + 1}]")
            i = j + 1
            continue
        j = i
        while j < n and j not in keep:
            j += 1
        run = lines[i:j]
        shapes = {_NUMBERS.sub("#", ln.strip()) for ln in run}
        like = "similar lines" if len(shapes) <= 2 else "lines"
        out.append(f"… {len(run)} {like} elided, e.g. {json.dumps(_short(run[0]), ensure_ascii=False)} …")
        elided += len(run)
        i = j
    if not elided:
        return None
    return "\n".join(out), [f"{elided} of {n} lines left out (kept: first/last lines, errors and failures "
                            f"with their neighbours, lines with your words)"]


# -- one payload ----------------------------------------------------------------------------------

def crush_text(text: str, words: set[str], *, min_tokens: int, min_saving: float, max_rows: int,
               min_lines: int, max_chars: int) -> tuple[str | None, str, str | None]:
    """(crushed text or None, reason, handle). Pure: the same inputs give the same bytes."""
    if len(text) > max_chars:
        return None, "too_large", None
    if looks_binary(text):
        return None, "binary", None
    before = count_text(text)
    if before < min_tokens:
        return None, "small", None
    value, _why = parse_json(text, 64)
    body, notes, kind = None, [], None
    if value is not None:
        rows, wrap = _find_rows(value)
        if rows is not None and len(rows) >= 3:
            reduced, notes = crush_rows(rows, words, max_rows)
            if notes:
                doc = reduced if wrap is None else {**value, wrap: reduced}
                body, how = toon_encode(json.dumps(doc, ensure_ascii=False), use_header=False)
                kind = f"{len(rows)} rows" + (", shown as TOON (key[N]{fields}: one row per item)"
                                              if how.startswith("toon") else "")
    elif text.count("\n") + 1 >= min_lines:
        got = crush_lines(text, words)
        if got:
            body, notes = got
            kind = f"{text.count(chr(10)) + 1} lines"
    if body is None:
        return None, "nothing_to_drop", None
    handle = handle_for(text)
    head = (f"[lynkr crush {handle}: {kind}; " + "; ".join(notes) +
            f". Call lynkr_expand {{\"handle\": \"{handle}\"}} for the original.]")
    out = f"{head}\n{body}"
    if count_text(out) > before * (1 - min_saving):
        return None, "not_enough_saving", None
    return out, "crushed", handle


# -- the stage ------------------------------------------------------------------------------------

class _Session:
    __slots__ = ("fate", "expand", "last")

    def __init__(self):
        self.fate: dict[str, str | None] = {}   # payload key -> crushed text, or None: sent in full
        self.expand = False                     # lynkr_expand was added: keep adding it
        self.last = 0.0


class Crush(Stage):
    name = "crush"
    edits = "copy-on-write"
    summary = "Shortens large tool results (JSON rows, logs, test output) to what carries information; " \
              "the rest is retrievable through lynkr_expand. Opt-in."
    status = "beta"
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "keep_last": {"type": "integer", "minimum": 0, "default": 2,
                          "description": "the newest N tool results are never crushed when first seen"},
            "min_tokens": {"type": "integer", "minimum": 0, "default": 400,
                           "description": "tool results under this many tokens are left alone"},
            "min_saving": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.3,
                           "description": "crush only when it saves at least this share of the result's tokens"},
            "max_rows": {"type": "integer", "minimum": 3, "default": 80,
                         "description": "JSON arrays longer than this keep only their informative rows"},
            "min_lines": {"type": "integer", "minimum": 10, "default": 40,
                          "description": "text shorter than this many lines is left alone"},
            "max_chars": {"type": "integer", "minimum": 1, "default": 2_000_000,
                          "description": "results longer than this are left alone (bounded CPU per request)"},
            "keep_words": {"type": "array", "items": {"type": "string"}, "default": [],
                           "description": "lines/rows containing these words are always kept"},
            "recrush_after_idle": {"type": ["number", "null"], "default": 300,
                                   "description": "seconds without requests in a session after which results "
                                                  "sent in full may be crushed (the prompt cache has expired); null: never"},
            "store_dir": {"type": ["string", "null"], "default": None,
                          "description": "where originals are kept for lynkr_expand (default <state_dir>/crush)"},
            "sessions": {"type": "integer", "minimum": 1, "default": 4096,
                         "description": "how many sessions' decisions are remembered"},
            "expand_tool": {"enum": ["always", "once_crushed"], "default": "always",
                            "description": "add lynkr_expand to every request (the tools prefix never changes) or "
                                           "only from a session's first crush on (saves ~80 tokens a request, "
                                           "costs one prompt-cache miss per session)"},
        },
    }
    examples = ["- {id: crush, uses: crush, with: {keep_last: 2, min_tokens: 400}}"]

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        directory = None if ctx.dry_run else (options["store_dir"] or str(Path(ctx.state_dir) / "crush"))
        self.store = CrushStore(directory)
        self.hook = expand_interceptor(self.store)
        self.sessions: OrderedDict[str, _Session] = OrderedDict()
        if not ctx.dry_run:
            warm()          # load cl100k_base now, not inside the first request that needs it

    def _session(self, x: Exchange) -> _Session:
        key = x.session
        if not key:
            msgs = x.request.get("messages") or [None]
            key = "h:" + hashlib.sha256(orjson.dumps(msgs[0])).hexdigest()[:24]
        s = self.sessions.get(key)
        if s is None:
            s = self.sessions[key] = _Session()
        self.sessions.move_to_end(key)
        while len(self.sessions) > self.options["sessions"]:
            self.sessions.popitem(last=False)
        return s

    def _crush(self, text: str, words: set[str]):
        o = self.options
        out, reason, handle = crush_text(text, words, min_tokens=o["min_tokens"], min_saving=o["min_saving"],
                                         max_rows=o["max_rows"], min_lines=o["min_lines"], max_chars=o["max_chars"])
        if out is not None:
            self.store.put(text)
        return out, reason

    def _decide(self, todo: list, words: set[str]) -> list:
        return [self._crush(p.text, words) for p in todo]

    async def run(self, x: Exchange) -> None:
        ev = x.event(self.id)
        session = self._session(x)
        now = time.time()
        idle = self.options["recrush_after_idle"]
        revisit = bool(session.last) and idle is not None and now - session.last > idle
        session.last = now
        payloads = list(tool_results(x.request))
        order = list(dict.fromkeys(p.tool_use_id for p in payloads))      # tool results, oldest first
        recent = set(order[len(order) - self.options["keep_last"]:]) if self.options["keep_last"] else set()
        changed, todo, reasons = {}, [], {}
        for p in payloads:
            # Which result, and which version of it: a client that edits a result gets a new decision.
            where = p.tool_use_id or f"m{p.msg}b{p.block}"
            key = f"{where}:{p.inner}:{len(p.text)}:{hash(p.text)}"
            if key in session.fate and not (revisit and session.fate[key] is None and p.tool_use_id not in recent):
                if session.fate[key] is not None:
                    changed[(p.msg, p.block, p.inner)] = session.fate[key]
                continue
            if p.tool_use_id in recent:
                session.fate[key] = None
                reasons["recent"] = reasons.get("recent", 0) + 1
                continue
            todo.append((key, p))
        if todo:
            words = ask_words(x.request, self.options["keep_words"])
            # Parsing, counting and writing originals to the store: off the event loop.
            done = await asyncio.to_thread(self._decide, [p for _, p in todo], words)
            for (key, p), (out, reason) in zip(todo, done):
                session.fate[key] = out
                reasons[reason] = reasons.get(reason, 0) + 1
                if out is not None:
                    changed[(p.msg, p.block, p.inner)] = out
        if changed:
            x.request = replace_payloads(x.request, changed)
            session.expand = True
        if self.options["expand_tool"] == "always" and x.request.get("tools"):
            session.expand = True
        if session.expand:
            tools = list(x.request.get("tools") or [])
            if not any(isinstance(t, dict) and t.get("name") == EXPAND_NAME for t in tools):
                x.request = {**x.request, "tools": tools + [EXPAND_TOOL]}
            x.interceptors.append(self.hook)
        if ev is not None:
            ev.detail.update({"payloads": len(payloads), "crushed": len(changed), "decided": reasons})
            if changed:
                index = {(p.msg, p.block, p.inner): p.text for p in payloads}
                ev.measure = ("\n".join(index[k] for k in changed), "\n".join(changed.values()))
