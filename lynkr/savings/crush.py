"""crush's algorithm: a large tool result cut to what carries information, deterministically.

`crush_text(text, words, …)` returns the crushed text (or None and why). The original goes to the
crush store (lynkr/savings/expand.py) and stays retrievable through `lynkr_expand`.

JSON arrays of objects (or an object holding one), the shape of search results, listings and
diagnostics, are read column by column, for the redundancy such results have whatever their field
names (`crush_rows`):
- nested objects are flattened to dotted columns (`range.start.line`), lists of strings to lines;
- a column with one value in every row is stated once;
- a column that is another column of the same row inside a constant frame (`uri` =
  "file:///repo/" + `path`) is stated once as that template;
- a bulky column (several lines, or long) that contains another column of its row — the context
  around a matched line — is left out: the row keeps the match itself, the context is one
  `lynkr_expand` away; other bulky columns are cut to the lines that are their own (not repeated
  across rows, not a copy of another column), or lose a prefix/suffix every row shares;
- everything else — paths, line numbers, the matched text, ids, names — stays verbatim.
Rows are dropped only beyond `max_rows`, and never the first, the last, rows with errors or
failures, rows with a rare value in a low-cardinality column, or rows holding words of the user's ask.

Long text (test output, logs, grep hits, listings): the first and last lines, lines with errors,
failures or warnings and their neighbours, lines with words of the user's ask; runs of other lines
become one "… N lines elided …" line, and repeated lines collapse (`crush_lines`).
"""
from __future__ import annotations

import json
import re

import orjson

from lynkr.kit.tokens import count_text
from lynkr.savings.expand import handle_for
from lynkr.savings.payloads import user_texts
from lynkr.savings.toon import encode as toon_encode
from lynkr.savings.toon import looks_binary, parse_json

__all__ = ["ask_words", "crush_rows", "crush_lines", "crush_text"]

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
    rows = [_flatten(r) for r in rows]
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
        note = _stated_once(col, vals, n, max_rows) or _template(col, vals, rows, columns, drop_cols)
        if note:
            drop_cols.add(col)
            notes.append(note)
            continue
        if not all(isinstance(v, str) for v in vals):
            continue
        if not _bulky(vals):            # a fact (path, line, match, id, name): verbatim, but for
            folder = _folder(vals)      # the folder every row's path starts with, stated once
            if folder:
                replace[col] = [v[len(folder):] for v in vals]
                notes.append(f"{col} = {json.dumps(folder + '…', ensure_ascii=False)} in every row (only … is shown)")
            continue
        inside = _contains_another(col, vals, rows, drop_cols)
        if inside:
            drop_cols.add(col)
            notes.append(f"{col!r} left out (it holds {inside!r} with the text around it)")
            continue
        cut = _cut_column(col, vals, rows)
        if cut and not any(cut[0]):
            drop_cols.add(col)
            notes.append(f"{col!r} left out (lines repeated across rows or copied from other columns)")
        elif cut:
            replace[col], note = cut
            notes.append(note)
    keep_idx = list(range(n))
    if n > max_rows:
        keep_idx = _important_rows(rows, columns, words, max_rows)
        notes.append(f"{n - len(keep_idx)} of {n} rows left out (kept: first, last, errors, rare values, your words)")
    out = []
    for i in keep_idx:
        r = rows[i]
        out.append({k: (replace[k][i] if k in replace else v) for k, v in r.items() if k not in drop_cols})
    return out, notes


def _flatten(row: dict, prefix: str = "") -> dict:
    """Nested objects as dotted columns; a list of strings as its lines (context before/after)."""
    out = {}
    for k, v in row.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and len(key) < 80:
            out.update(_flatten(v, key + "."))
        elif isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            out[key] = "\n".join(v)
        else:
            out[key] = v
    return out


def _stated_once(col: str, vals: list, n: int, max_rows: int) -> str | None:
    first = json.dumps(vals[0], ensure_ascii=False, sort_keys=True)
    if n > 1 and all(json.dumps(v, ensure_ascii=False, sort_keys=True) == first for v in vals[1:]):
        return f"{col}={_short(first, 120)} in every row"
    if 3 <= n <= max_rows and all(type(v) is int for v in vals) and \
            len({b - a for a, b in zip(vals, vals[1:])}) == 1 and vals[1] != vals[0]:
        return f"{col} = {vals[0]}, {vals[1]}, … {vals[-1]} in row order"      # a row's position says it
    return None


def _folder(vals: list[str]) -> str:
    """The directory prefix (up to a "/") every value shares, when it is worth stating once."""
    if len(vals) < 3:
        return ""
    pre = vals[0]
    for v in vals[1:]:
        while not v.startswith(pre):
            pre = pre[:-1]
    pre = pre[: pre.rfind("/") + 1]
    return pre if len(pre) >= 8 and all(len(v) > len(pre) for v in vals) else ""


def _template(col: str, vals: list, rows: list[dict], columns: list[str], dropped: set[str]) -> str | None:
    """`col` is another kept column of its row, or that column inside a frame every row shares:
    stated once."""
    for other in columns:
        if other != col and other not in dropped and all(r.get(other, _MISSING) == v for r, v in zip(rows, vals)):
            return f"{col} = {other} in every row"
    if not all(isinstance(v, str) for v in vals):
        return None
    for other in columns:
        if other == col or other in dropped:
            continue
        inner = [r.get(other) for r in rows]
        if not all(isinstance(v, (str, int)) and str(v) and str(v) in s for v, s in zip(inner, vals)):
            continue
        frames = {(s[:s.find(str(v))], s[s.find(str(v)) + len(str(v)):]) for v, s in zip(inner, vals)}
        if len(frames) == 1:
            pre, suf = frames.pop()
            return f"{col} = {json.dumps(pre + '{' + other + '}' + suf, ensure_ascii=False)} in every row"
    return None


def _bulky(vals: list[str]) -> bool:
    """Context rather than a fact: several lines in most rows, or long."""
    multi = sum(1 for v in vals if "\n" in v.strip())
    return multi * 2 > len(vals) or sum(len(v) for v in vals) > 160 * len(vals)


def _contains_another(col: str, vals: list[str], rows: list[dict], dropped: set[str]) -> str | None:
    """The kept, non-bulky column every cell of `col` contains (the match inside its context)."""
    for other in rows[0]:
        if other == col or other in dropped:
            continue
        inner = [r.get(other) for r in rows]
        if all(isinstance(v, str) and len(v.strip()) >= 3 and v.strip() in s for v, s in zip(inner, vals)) \
                and not _bulky(inner):
            return other
    return None


def _cut_column(col: str, vals: list[str], rows: list[dict]):
    own = _own_lines(col, vals, rows)
    if own is not None:
        kept, why = own
        return kept, f"{col!r} cut to its own lines ({why})"
    pre, suf = _affixes(vals)
    if len(pre) + len(suf) >= 8:
        return ([v[len(pre): len(v) - len(suf)] for v in vals],
                f"{col} = {json.dumps(pre + '…' + suf, ensure_ascii=False)} in every row (only … is shown)")
    return None


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
    if kept_chars > total * 0.6:        # mostly its own: cutting would not pay
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
