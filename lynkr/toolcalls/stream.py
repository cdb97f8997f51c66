"""From scanner segments to what the client gets: prose, thinking, validated calls, rejections.

`Recoverer.feed(text)` returns pieces as soon as they are decided; `finish()` the rest. A whole
answer is one feed and a finish (`extract`), so streamed and whole answers go through the same
decisions. Pieces:
    ("text", str) · ("thinking", str) · ("call", Call) · ("rejected", Rejection)

What a region becomes:
- explicit markup (`<tool_call>`, `[TOOL_CALLS]`, …) is always consumed: its valid calls are
  emitted, the others recorded as rejections; markup that does not parse at all stays visible;
- a fenced or bare JSON/pythonic value counts as a call attempt only when one of its names resolves
  to a declared tool; otherwise it is the user's text (an example config, a JSON Schema);
- a region that never closed is released as text unless it yields a valid call once repaired
  (generation stopped on a stop sequence before the final `}`), and then only if it holds no blank
  line (a JSON string that never closed and swallowed the prose after it).
Prose pieces around removed regions are joined by one blank line; leading/trailing whitespace of
the answer is dropped. Trailing whitespace is held until more prose comes, so a stream and a whole
answer produce the same text.
"""
from __future__ import annotations

from lynkr.toolcalls.formats import parse_region
from lynkr.toolcalls.scan import Scanner, Segment
from lynkr.toolcalls.validate import Call, Rejection, Toolset

__all__ = ["Recoverer", "Extraction", "extract"]


class Recoverer:
    def __init__(self, tools):
        self.tools = tools if isinstance(tools, Toolset) else Toolset(tools)
        self.scanner = Scanner()
        self.ws = ""              # trailing whitespace of the prose, held
        self.any = False          # some prose was emitted
        self.cut = False          # a region was removed since the last prose
        self.calls = 0
        self.formats: list[str] = []      # region kinds that gave calls
        self.rejections: list[Rejection] = []

    def feed(self, text: str) -> list[tuple]:
        return self._pieces(self.scanner.feed(text)) if text else []

    def finish(self) -> list[tuple]:
        return self._pieces(self.scanner.finish())

    def _pieces(self, segments: list[Segment]) -> list[tuple]:
        out: list[tuple] = []
        for seg in segments:
            if seg.kind == "text":
                self._text(seg.text, out)
            elif seg.kind == "thinking":
                if seg.text:
                    out.append(("thinking", seg.text))
                self.cut = True
            elif seg.kind == "region":
                self._region(seg, out)
            else:                          # cut, thinking_close: markup that is not prose
                self.cut = True
        return out

    def _text(self, s: str, out: list) -> None:
        if self.cut:
            s = s.lstrip()
            if not s:
                return
            lead, self.cut = ("\n\n" if self.any else ""), False
        else:
            lead = self.ws if self.any else ""
            if not self.any:
                s = s.lstrip()
        core = s.rstrip()
        if not core:
            self.ws = lead + s if self.any else ""
            return
        out.append(("text", lead + core))
        self.ws, self.any = s[len(core):], True

    def _region(self, seg: Segment, out: list) -> None:
        candidates = parse_region(seg.region, seg.body)
        if not seg.closed and "\n\n" in seg.body.strip():
            candidates = []
        checked = [self.tools.check(c) for c in candidates]
        good = [c for c in checked if isinstance(c, Call)]
        bad = [c for c in checked if isinstance(c, Rejection)]
        if not seg.explicit and not good and not any(r.declared for r in bad):
            self._text(seg.text, out)      # not a call: the user's JSON or code
            return
        if seg.explicit and not candidates and not seg.body.replace("<tool_call>", "").strip():
            self.cut = True                # empty markup (a stray or doubled tag)
            return
        if not good and (not seg.closed or not candidates):
            self.rejections += bad or [Rejection("unclosed" if not seg.closed else "unparseable", "",
                                                 "the call markup holds no call that can be read")]
            for r in bad or self.rejections[-1:]:
                out.append(("rejected", r))
            self._text(seg.text, out)      # visible, as the model wrote it
            return
        for r in bad:
            self.rejections.append(r)
            out.append(("rejected", r))
        for c in good:
            self.calls += 1
            out.append(("call", c))
        if good and seg.region not in self.formats:
            self.formats.append(seg.region)
        self.cut = True


class Extraction:
    """A whole answer, recovered: `prose`, `thinking`, `calls`, `rejections`, and `pieces` in order."""

    __slots__ = ("pieces", "rejections")

    def __init__(self, pieces: list[tuple], rejections: list[Rejection]):
        self.pieces = pieces
        self.rejections = rejections

    @property
    def calls(self) -> list[Call]:
        return [p[1] for p in self.pieces if p[0] == "call"]

    @property
    def prose(self) -> str:
        return "".join(p[1] for p in self.pieces if p[0] == "text")

    @property
    def thinking(self) -> str:
        return "".join(p[1] for p in self.pieces if p[0] == "thinking")


def extract(text: str, tools) -> Extraction:
    """Recover the calls in a whole answer. Unlike a stream, a whole answer can be re-read: text
    before a `</think>` that has no opening tag (the template opened it in the prompt) is thinking."""
    pieces: list[tuple] = []
    close = text.find("</think>")
    if close >= 0 and "<think>" not in text[:close]:
        head, text = text[:close].strip(), text[close + len("</think>"):]
        if head:
            pieces.append(("thinking", head))
    r = Recoverer(tools)
    pieces += r.feed(text) + r.finish()
    return Extraction(pieces, r.rejections)
