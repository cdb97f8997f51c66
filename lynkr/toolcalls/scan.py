"""The incremental scanner: model text in, segments out — prose, thinking, and call regions.

One left-to-right state machine serves whole answers and streams alike (a whole answer is one
`feed` and a `finish`), and it decides nothing before it has seen the text that decides it, so a
stream cut anywhere yields the same segments as the whole text. Prose is released as soon as it
cannot be the start of a call: only a possible marker prefix at the end of the buffer (`<tool_`,
`[TOOL`), a backtick run, or a line that starts with `{` / `[` / a ``` fence is held (SGLang's
partial-bot-token rule, extended to line starts for bare JSON).

What starts a region:
- explicit markup: `<tool_call>`, `<function=`, `<|python_tag|>`, `[TOOL_CALLS]`, DeepSeek's
  `<｜tool▁calls▁begin｜>` (also with ASCII `|`/`_`);
- a fenced block whose language may hold a call (json, tool_code, tool_call, none);
- a bare `{…}` or `[…]` at the start of a line.
Never inside inline code or another language's fence, and never inside `<think>…</think>`, which is
thinking. A region held past `HOLD_LIMIT` characters, or still open at the end, is reported unclosed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Scanner", "Segment", "balanced_end", "HOLD_LIMIT"]

HOLD_LIMIT = 8 * 1024 * 1024       # characters one region may hold back before it is released as text
CALL_FENCES = frozenset({"", "json", "json5", "jsonc", "tool_code", "tool_call", "tool_calls", "function_call"})


@dataclass(slots=True)
class Segment:
    kind: str                  # text | thinking | region
    text: str                  # the text (text, thinking) or the raw region with its markup
    region: str = ""           # tool_call | function | python_tag | mistral | deepseek | fence | bare
    body: str = ""             # the region without its markup
    closed: bool = True
    explicit: bool = False     # markup that only ever means a call


def _spellings(token: str) -> list[str]:
    """DeepSeek's tokens as written with full-width bars and ▁, and as ASCII."""
    out = {token}
    for bar in ("｜", "|"):
        for sp in ("▁", "_"):
            out.add(token.replace("｜", bar).replace("▁", sp))
    return sorted(out)


DS_CALLS_BEGIN = _spellings("<｜tool▁calls▁begin｜>")
DS_CALLS_END = _spellings("<｜tool▁calls▁end｜>")
DS_CALL_BEGIN = _spellings("<｜tool▁call▁begin｜>")
DS_CALL_END = _spellings("<｜tool▁call▁end｜>")
# Tokens some servers leave in the text; they are never prose.
DROP = tuple(["<|eom_id|>", "<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>", "<|return|>", "</tool_call>",
              "</function>"] + _spellings("<｜end▁of▁sentence｜>") + DS_CALLS_END)
# Claude-style XML that models distilled from Claude write, and MiniMax-M2's wrapper of it.
INVOKE_ENDS = {"<function_calls>": ("</function_calls>",), "<minimax:tool_call>": ("</minimax:tool_call>",)}
OPENERS = (["<think>", "</think>", "<tool_call>", "<function=", "<|python_tag|>", "[TOOL_CALLS]"] + list(INVOKE_ENDS)
           + DS_CALLS_BEGIN + DS_CALL_BEGIN + list(DROP))
_INTERESTING = re.compile(r"[<\[{`\n]")
_NOT_BRACKET = re.compile(r"[<`\n{]|\[(?:T|\Z)")    # where plain text after a mid-line bracket may stop


# ---- balanced brackets, string-aware, resumable -----------------------------------------------

class Balance:
    """Finds where the `{…}`/`[…]` value starting at `start` ends, across calls as text grows.
    `"` always opens a string; `'` only where a value may start (after `[{(,:=`), so apostrophes
    in prose do not."""

    __slots__ = ("pos", "stack", "quote", "prev", "result")
    _PAIRS = {"}": "{", "]": "[", ")": "("}
    _STOP = re.compile(r"[][{}()\"',:=]")

    def __init__(self, start: int):
        self.pos, self.stack, self.quote, self.prev = start, [], "", ""
        self.result: int | None = None

    def end(self, s: str) -> int | None:
        """Index after the closing bracket; None while it has not arrived; -1 if it cannot close."""
        if self.result is not None:
            return self.result
        pos, n = self.pos, len(s)
        while pos < n:
            if self.quote:
                j = s.find(self.quote, pos)
                k = s.find("\\", pos, j if j >= 0 else n)
                if k >= 0:
                    if k + 1 >= n:
                        break
                    pos = k + 2
                    continue
                if j < 0:
                    pos = n
                    break
                self.quote, self.prev, pos = "", "s", j + 1
                continue
            m = self._STOP.search(s, pos)
            if m is None:
                if s[pos:].strip():
                    self.prev = "x"
                pos = n
                break
            if s[pos:m.start()].strip():
                self.prev = "x"
            c, pos = m.group(), m.end()
            if c == '"' or (c == "'" and self.prev in ("", "[", "{", "(", ",", ":", "=")):
                self.quote = c
            elif c in "[{(":
                self.stack.append(c)
            elif c in "]})":
                if not self.stack or self.stack.pop() != self._PAIRS[c]:
                    self.pos, self.result = pos, -1
                    return -1
                if not self.stack:
                    self.pos = self.result = pos
                    return pos
            self.prev = c if c not in "\"'" else self.prev
        self.pos = pos
        return None


def balanced_end(s: str, start: int) -> int | None:
    return Balance(start).end(s)


# ---- the scanner -------------------------------------------------------------------------------

class Scanner:
    def __init__(self):
        self.buf = ""
        self.state = "text"            # text | think | region | fence_text
        self.line_start = True         # only whitespace since the last newline (or the start)
        self.inline = 0                # backtick count of the open inline-code span, 0 if none
        self.fence = 0                 # backtick count of the open fence
        self.fence_dirty = False       # the current line inside an opaque fence cannot close it
        self.region: dict | None = None
        self.out: list[Segment] = []

    def feed(self, text: str) -> list[Segment]:
        self.buf += text
        return self._run(final=False)

    def finish(self) -> list[Segment]:
        out = self._run(final=True)
        if self.buf:
            (out.append(Segment("thinking", self.buf)) if self.state == "think"
             else out.append(Segment("text", self.buf)))
            self.buf = ""
        return out

    # -- driver --
    def _run(self, final: bool) -> list[Segment]:
        self.out = []
        step = {"text": self._text, "think": self._think, "region": self._region, "fence_text": self._fence_text}
        # At the end a region still runs once with nothing after its marker (`[TOOL_CALLS]` last).
        while (self.buf or (final and self.state == "region")) and step[self.state](final):
            pass
        return self.out

    def _emit(self, kind: str, text: str) -> None:
        if text:
            if self.out and self.out[-1].kind == kind and kind != "region":
                self.out[-1].text += text
            else:
                self.out.append(Segment(kind, text))

    def _take_text(self, n: int) -> None:
        piece, self.buf = self.buf[:n], self.buf[n:]
        self._emit("text", piece)
        if piece.strip(" \t\r\n"):
            self.line_start = False

    # -- text --
    def _text(self, final: bool) -> bool:
        m = _INTERESTING.search(self.buf)
        if m is None:
            self._take_text(len(self.buf))
            return False
        if m.start():
            self._take_text(m.start())
            return True
        c = self.buf[0]
        if c == "\n":
            self._take_text(1)
            self.line_start, self.inline = True, 0
            return True
        if c == "`":
            return self._backticks(final)
        if self.inline:
            self._take_text(1)
            return True
        if c == "<" or (c == "[" and (self.line_start or self.buf.startswith("[T") or len(self.buf) < 2)):
            return self._marker(final)
        if self.line_start:
            return self._bare(final)
        if c == "{":
            return self._tail(final)
        m = _NOT_BRACKET.search(self.buf, 1)     # a mid-line bracket: plain text up to what may matter
        self._take_text(m.start() if m else len(self.buf))
        return True

    def _marker(self, final: bool) -> bool:
        head = self.buf[:24]
        for tok in OPENERS:
            if head.startswith(tok):
                return self._open(tok)
        if not final and any(tok.startswith(head) for tok in OPENERS if len(tok) > len(head)):
            return False                   # maybe the start of a marker: wait for more
        if self.buf[0] == "[" and self.line_start:
            return self._bare(final)
        m = _INTERESTING.search(self.buf, 1)
        self._take_text(m.start() if m else len(self.buf))
        return True

    def _open(self, tok: str) -> bool:
        self.buf = self.buf[len(tok):]
        if tok == "<think>":
            self.state = "think"
        elif tok == "</think>":
            # Reasoning whose opening tag was in the prompt: what came before was thinking
            # (only a whole answer can be re-read; a stream already sent it, see docs).
            self.out.append(Segment("thinking_close", ""))
            self.line_start = True
        elif tok in DROP:
            self.out.append(Segment("cut", ""))
        else:
            kind = {"<tool_call>": "tool_call", "<function=": "function", "<|python_tag|>": "python_tag",
                    "[TOOL_CALLS]": "mistral"}.get(tok) or ("invoke" if tok in INVOKE_ENDS else "deepseek")
            ends = INVOKE_ENDS.get(tok) or (DS_CALLS_END if tok in DS_CALLS_BEGIN else DS_CALL_END)
            self.region = {"kind": kind, "open": tok, "explicit": True, "search": 0, "ends": ends}
            self.state = "region"
        return True

    def _backticks(self, final: bool) -> bool:
        n = len(self.buf) - len(self.buf.lstrip("`"))
        if n == len(self.buf) and not final:
            return False                   # the run may go on
        if self.line_start and n >= 3 and not self.inline:
            nl = self.buf.find("\n", n)
            if nl < 0 and not final:
                return False
            info = (self.buf[n:nl] if nl >= 0 else self.buf[n:]).strip()
            lang = info.split()[0].lower() if info else ""
            self.fence = n
            if lang in CALL_FENCES and nl >= 0:
                self.region = {"kind": "fence", "open": self.buf[:nl + 1], "explicit": False, "search": 0,
                               "lang": lang, "checked": False}
                self.buf = self.buf[nl + 1:]
                self.state = "region"
                return True
            self._take_text(nl + 1 if nl >= 0 else len(self.buf))
            self.state, self.fence_dirty = "fence_text", False
            return True
        self.inline = 0 if self.inline == n else (self.inline or n)
        self._take_text(n)
        return True

    def _bare(self, final: bool) -> bool:
        """`{` or `[` first on a line: held while it can still be a call."""
        rest = self.buf[1:].lstrip(" \t\r\n")
        if not rest and not final:
            return False
        opener = self.buf[0]
        ok = rest[:1] in ('"', "'") if opener == "{" else (
            rest[:1] == "{" or bool(re.match(r"[A-Za-z_][\w.]*\s*\(", rest)))
        if opener == "[" and not ok and not final and re.fullmatch(r"[A-Za-z_][\w.]*\s*", rest):
            return False                   # `[Name` so far: wait for the `(`
        if not ok:
            self._take_text(1)
            return True
        self.region = {"kind": "bare", "open": "", "explicit": False, "balance": Balance(0)}
        self.state = "region"
        return True

    def _tail(self, final: bool) -> bool:
        """`{"` after prose on the same line: a call only if nothing but end tokens follows it
        (Llama's "I'll check the logs. {"name": …}"); held until that is known."""
        rest = self.buf[1:].lstrip(" \t")
        if not rest and not final:
            return False
        if rest[:1] != '"':
            m = _NOT_BRACKET.search(self.buf, 1)
            self._take_text(m.start() if m else len(self.buf))
            return True
        self.region = {"kind": "tail", "open": "", "explicit": False, "balance": Balance(0)}
        self.state = "region"
        return True

    # -- thinking --
    def _think(self, final: bool) -> bool:
        i = self.buf.find("</think>")
        if i >= 0:
            self._emit("thinking", self.buf[:i])
            self.buf = self.buf[i + len("</think>"):]
            self.state, self.line_start, self.inline = "text", True, 0
            return True
        keep = 0 if final else _partial_suffix(self.buf, ("</think>",))
        self._emit("thinking", self.buf[:len(self.buf) - keep])
        self.buf = self.buf[len(self.buf) - keep:]
        return False

    # -- an opaque fence (another language's code): text, no markers inside --
    def _fence_text(self, final: bool) -> bool:
        nl = self.buf.find("\n")
        if nl < 0:
            bare = self.buf.strip()
            if not final and not self.fence_dirty and set(bare) <= {"`"}:
                return False               # may be the closing fence
            self._take_text(len(self.buf))
            self.fence_dirty = True        # this line has text: it cannot close the fence
            return False
        bare = self.buf[:nl].strip()
        closes = not self.fence_dirty and len(bare) >= self.fence and set(bare) == {"`"}
        self._take_text(nl + 1)
        self.fence_dirty = False
        if closes:
            self.state, self.line_start, self.inline = "text", True, 0
        return True

    # -- a region: held until it ends --
    def _region(self, final: bool) -> bool:
        r = self.region
        end = _REGION_END[r["kind"]](self, r, final)
        if end is None:
            if len(self.buf) <= HOLD_LIMIT and not final:
                return False
            end = (len(self.buf), len(self.buf), False)
        if end == "text":                  # it cannot be a call after all: its text is prose
            self._release(r)
            return True
        if end[0] == "text":
            self.state, self.region = "text", None
            self._take_text(end[1])
            return True
        body_end, consumed, closed = end
        body = self.buf[:body_end]
        raw = r["open"] + self.buf[:consumed]
        self.buf = self.buf[consumed:]
        self.out.append(Segment("region", raw, r["kind"], body, closed, r["explicit"]))
        self.state, self.region, self.line_start, self.inline = "text", None, True, 0
        return True

    def _release(self, r: dict) -> None:
        self.state, self.region = "text", None
        if r["kind"] == "fence":
            self._emit("text", r["open"])
            self.line_start, self.state, self.fence_dirty = True, "fence_text", False
        else:
            self._take_text(1)


def _partial_suffix(buf: str, tokens) -> int:
    """Length of the longest tail of `buf` that is a proper prefix of one of `tokens`."""
    best = 0
    for tok in tokens:
        for k in range(min(len(tok) - 1, len(buf)), best, -1):
            if buf.endswith(tok[:k]):
                best = k
                break
    return best


# ---- where each region ends: (body_end, consumed, closed) | None (need more) | "text" -----------

def _find_any(s: Scanner, r: dict, tokens, final: bool):
    """The first of `tokens` in the held text, searching only what was not searched before."""
    best = None
    for tok in tokens:
        i = s.buf.find(tok, r["search"])
        if i >= 0 and (best is None or i < best[0]):
            best = (i, i + len(tok), tok)
    if best is not None:
        return best
    r["search"] = max(r["search"], len(s.buf) - max(len(t) for t in tokens))
    return (len(s.buf), len(s.buf), None) if final else None


def _end_tool_call(s: Scanner, r: dict, final: bool):
    """`</tool_call>`; a JSON body is read to its end first, so a string holding the tag (a file
    about tool calls) does not end the block."""
    if r.get("json") is None:
        m = re.match(r"(?:\s|<tool_call>)*", s.buf)
        if not final and "<tool_call>".startswith(s.buf[m.end():m.end() + 11]):
            return None                    # nothing yet, or a nested tag still arriving
        r["json"] = s.buf[m.end():m.end() + 1] == "{"
        if r["json"]:
            r["balance"] = Balance(m.end())
    if r["json"] and r["balance"].result != -1:
        end = r["balance"].end(s.buf)
        if end is None:
            return (len(s.buf), len(s.buf), False) if final else None
        if end > 0:
            r["search"] = max(r["search"], end)
    while True:
        found = _find_any(s, r, ("</tool_call>", "<tool_call>"), final)
        if found is None or found[2] is None:
            return found if found is None else (found[0], found[1], False)
        if found[2] == "</tool_call>":
            return found[0], found[1], True
        if s.buf[:found[0]].replace("<tool_call>", "").strip():
            return found[0], found[0], True    # a new block opens: this one was never closed
        r["search"] = found[1]                 # a nested opening tag: keep looking


def _end_function(s: Scanner, r: dict, final: bool):
    found = _find_any(s, r, ("</function>",), final)
    if found and found[2] is None:
        return found[0], found[1], False
    if found:
        m = re.match(r"\s*</tool_call>", s.buf[found[1]:])
        if m is None and not final and not s.buf[found[1]:].strip() and len(s.buf) - found[1] < 16:
            return None                    # a closing </tool_call> may follow
        return found[0], found[1] + (m.end() if m else 0), True
    return found


def _end_deepseek(s: Scanner, r: dict, final: bool):
    """The region's closing token (DeepSeek's, or the Claude-style XML's `ends`)."""
    found = _find_any(s, r, r["ends"], final)
    return found if found is None else (found[0], found[1], found[2] is not None)


def _json_run(s: Scanner, r: dict, start: int, final: bool):
    """Balanced JSON values from `start`, `;`-separated (Llama's several calls), then the end."""
    buf = s.buf
    while True:
        bal = r.get("balance")
        if bal is None:
            i = start
            while i < len(buf) and buf[i] in " \t\r\n":
                i += 1
            if i >= len(buf):
                return (len(buf), len(buf), False) if final else None
            if buf[i] not in "{[":
                return i, i, True
            bal = r["balance"] = Balance(i)
        end = bal.end(buf)
        if end is None:
            return (len(buf), len(buf), False) if final else None
        if end < 0:
            return (bal.pos, bal.pos, True) if r["explicit"] else "text"
        tail = buf[end:]
        m = re.match(r"[ \t]*;[ \t\r\n]*", tail)
        if m is None:
            if not final and not tail.strip(" \t"):
                return None                # a `;` and another call may follow
            return end, end, True
        if end + m.end() >= len(buf):
            return (end, end, True) if final else None
        if buf[end + m.end()] != "{":
            return end, end, True
        r["balance"], start = None, end + m.end()


def _end_python_tag(s: Scanner, r: dict, final: bool):
    return _json_run(s, r, 0, final)


def _end_bare(s: Scanner, r: dict, final: bool):
    return _json_run(s, r, 0, final)


def _end_tail(s: Scanner, r: dict, final: bool):
    end = _json_run(s, r, 0, final)
    if end is None or end == "text":
        return end
    rest = s.buf[end[1]:].strip()
    while rest:
        tok = next((t for t in DROP if rest.startswith(t)), None)
        if tok is None:
            break
        rest = rest[len(tok):].strip()
    if not rest:
        return end if final else None
    if not final and any(t.startswith(rest) for t in DROP):
        return None
    return ("text", end[0])                # prose goes on after it: an inline example, left whole


def _end_mistral(s: Scanner, r: dict, final: bool):
    if r.get("start") is None:
        m = re.match(r"\s*(?:\[|[\w.-]+\s*(?:\[CALL_ID\][\w-]*)?\s*(?:\[ARGS\])?\s*\{)", s.buf)
        if m is None:
            if not final and len(s.buf) < 256 and re.fullmatch(r"\s*[\w.-]*\s*(\[[A-Z_]*\]?[\w-]*)*\s*", s.buf):
                return None
            return 0, 0, True              # a bare [TOOL_CALLS]: nothing to call
        r["start"] = m.end() - 1
        r["balance"] = Balance(r["start"])
    end = r["balance"].end(s.buf)
    if end is None:
        return (len(s.buf), len(s.buf), False) if final else None
    if end < 0:
        return r["balance"].pos, r["balance"].pos, True
    return end, end, True


def _end_fence(s: Scanner, r: dict, final: bool):
    if not r["checked"]:
        head = s.buf.lstrip(" \t\r\n")
        if not head and not final:
            return None
        if not (head[:1] in "{[" or re.match(r"[A-Za-z_][\w.]*\s*[(\[]?", head)) or head.startswith("`"):
            return "text"
        r["checked"] = True
    m = re.compile(r"(?:^|\n)[ \t]*(`{%d,})[ \t]*(?=\n|$)" % s.fence).search(s.buf, r["search"])
    if m is not None and (m.end() < len(s.buf) or final):
        return m.start(), m.end(), True
    r["search"] = max(r["search"], s.buf.rfind("\n", r["search"]))
    return (len(s.buf), len(s.buf), False) if final else None


_REGION_END = {"tool_call": _end_tool_call, "function": _end_function, "deepseek": _end_deepseek,
               "invoke": _end_deepseek,
               "python_tag": _end_python_tag, "bare": _end_bare, "tail": _end_tail, "mistral": _end_mistral, "fence": _end_fence}
