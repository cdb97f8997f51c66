"""Tools the proxy answers itself: a response interceptor (docs/engine.md) for tools a stage added
to the request, which the client never sees called.

    hook = answering({"lynkr_expand": answer}, counter="expand_calls")
    x.interceptors.append(hook)

`answer(x, block) -> tool_result block` (a coroutine function) is given each `tool_use` block
that names one of the tools. When the model's turn calls only such tools, the proxy answers
them, sends the continued conversation upstream (`resend`) and splices the continuation into the
same response, so the client sees one assistant message — complete or streamed, whatever its
protocol (the renderers work on the canonical events this yields). A turn that also calls client
tools is passed on with the proxy's calls removed: the client has to run its tools, and the model
can ask again on the next turn. After `max_rounds` continuations the turn ends as it stands, with
a visible note saying so. `x.vars[counter]` counts the calls answered (telemetry).

Several stages may each add such tools to one request (crush's `lynkr_expand`, the MCP tools, the
memory tools): `merged` makes their interceptors one loop that knows every proxy tool, so a turn
calling tools of two of them is answered whole, and a continuation may call any of them.
"""
from __future__ import annotations

from typing import Awaitable, Callable

from lynkr.exchange import Exchange, Response
from lynkr.wire.events import MessageAccumulator

__all__ = ["answering", "merged", "Answering", "tool_error", "MAX_ROUNDS"]

MAX_ROUNDS = 3

Answer = Callable[[Exchange, dict], Awaitable[dict]]


def answering(answers: dict[str, Answer], *, counter: str, max_rounds: int = MAX_ROUNDS) -> "Answering":
    """The interceptor answering `answers`' tools (name -> answer function)."""
    return Answering(_Tools({name: (fn, counter) for name, fn in answers.items()}, max_rounds))


class Answering:
    """A response interceptor (`hook(x, response, resend)`) for the tools the proxy answers."""

    __slots__ = ("tools",)

    def __init__(self, tools: "_Tools"):
        self.tools = tools

    async def __call__(self, x: Exchange, response: Response, resend) -> Response:
        if response.error is not None:
            return response
        if response.message is not None:
            return await self.tools.complete(x, response, resend)
        if response.events is not None:
            response.events = self.tools.spliced(x, response.events, resend)
        return response


def merged(hooks: list) -> list:
    """`hooks` with every Answering among them made one, in the place of the first."""
    ours = [h for h in hooks if isinstance(h, Answering)]
    if len(ours) < 2:
        return hooks
    one = Answering(_Tools({n: a for h in ours for n, a in h.tools.answers.items()},
                           max(h.tools.max_rounds for h in ours)))
    out: list = []
    for h in hooks:
        if not isinstance(h, Answering):
            out.append(h)
        elif h is ours[0]:
            out.append(one)
    return out


class _Tools:
    def __init__(self, answers: dict[str, tuple[Answer, str]], max_rounds: int):
        self.answers = answers          # name -> (answer function, the x.vars counter it counts in)
        self.max_rounds = max_rounds

    def ours(self, block: dict) -> bool:
        return block.get("type") == "tool_use" and block.get("name") in self.answers

    def count(self, x: Exchange, calls: list[dict]) -> None:
        for b in calls:
            counter = self.answers[b["name"]][1]
            x.vars[counter] = x.vars.get(counter, 0) + 1

    def stopped(self) -> str:
        return (f"[Lynkr answered its own tools for {self.max_rounds} rounds and stopped there; "
                f"ask again to go on.]")

    async def continuation(self, x: Exchange, request: dict, content: list[dict]) -> dict:
        results = []
        for b in content:
            if self.ours(b):
                try:
                    results.append(await self.answers[b["name"]][0](x, b))
                except Exception as e:      # an answer that failed is the model's tool error, not a 5xx
                    results.append(tool_error(b, f"{b['name']} failed: {type(e).__name__}"))
        messages = list(request.get("messages") or []) + [
            {"role": "assistant", "content": content}, {"role": "user", "content": results}]
        return {**request, "messages": messages}

    async def complete(self, x: Exchange, response: Response, resend) -> Response:
        request = x.request
        shown: list[dict] = []
        for round_no in range(self.max_rounds + 1):
            msg = response.message
            content = list(msg.get("content") or [])
            calls = [b for b in content if self.ours(b)]
            visible = [b for b in content if not self.ours(b)]
            client_calls = any(b.get("type") == "tool_use" for b in visible)
            self.count(x, calls)
            if not calls or client_calls or round_no == self.max_rounds:
                final = {**msg, "content": shown + visible}
                if calls and not client_calls:
                    final["stop_reason"] = "end_turn"
                    final["content"] = final["content"] + [{"type": "text", "text": self.stopped()}]
                response.message = final
                return response
            shown += visible
            request = await self.continuation(x, request, content)
            nxt = await resend(request)
            if nxt.error is not None or nxt.message is None:
                return nxt
            response = nxt
        return response

    async def spliced(self, x: Exchange, events, resend):
        """Forward the stream; hide the proxy's tool blocks; continue the turn after them,
        renumbering the continuation's blocks so the client sees one message with contiguous
        block indexes."""
        request = x.request
        state = {"next": 0, "started": False}
        for round_no in range(self.max_rounds + 1):
            acc = MessageAccumulator()
            held: list[dict] = []       # message_delta / message_stop, sent once we know the turn ends
            hidden: set[int] = set()
            client_calls = False
            async for ev in self._forward(events, acc, held, hidden, state):
                if ev is None:
                    client_calls = True
                    continue
                yield ev
            content = (acc.message or {}).get("content") or []
            calls = [b for b in content if self.ours(b)]
            self.count(x, calls)
            if not hidden or client_calls or round_no == self.max_rounds or not calls:
                if calls and not client_calls:
                    i = state["next"]
                    yield {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}
                    yield {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": self.stopped()}}
                    yield {"type": "content_block_stop", "index": i}
                for ev in held:
                    if ev.get("type") == "message_delta" and hidden and not client_calls:
                        ev = {**ev, "delta": {**(ev.get("delta") or {}), "stop_reason": "end_turn"}}
                    yield ev
                return
            request = await self.continuation(x, request, content)
            nxt = await resend(request)
            if nxt.error is not None or nxt.events is None:
                err = nxt.error
                yield {"type": "error", "error": {"type": getattr(err, "type", None) or "api_error",
                                                  "message": getattr(err, "message", None) or "the proxy's tool call failed"}}
                return
            events = nxt.events

    async def _forward(self, events, acc, held, hidden, state):
        """One upstream stream, renumbered; yields None when a client tool call starts."""
        index_map: dict[int, int] = {}
        async for ev in events:
            acc.feed(ev)
            t = ev.get("type")
            if t == "message_start":
                if not state["started"]:
                    state["started"] = True
                    yield ev
            elif t == "content_block_start":
                block = ev.get("content_block") or {}
                if self.ours(block):
                    hidden.add(ev.get("index"))
                    continue
                if block.get("type") == "tool_use":
                    yield None
                index_map[ev.get("index")] = state["next"]
                state["next"] += 1
                yield {**ev, "index": index_map[ev.get("index")]}
            elif t in ("content_block_delta", "content_block_stop"):
                if ev.get("index") in hidden:
                    continue
                yield {**ev, "index": index_map.get(ev.get("index"), ev.get("index"))}
            elif t in ("message_delta", "message_stop"):
                held.append(ev)
            else:
                yield ev                # ping, error


def tool_error(block: dict, message: str) -> dict:
    """The tool_result that tells the model its call failed, and why."""
    return {"type": "tool_result", "tool_use_id": block.get("id"), "is_error": True, "content": message}
