"""Stages used only by the engine's tests (loaded by path: `uses: <this file>:Answer`)."""
import asyncio

from lynkr import ProxyError, Response, Stage
from tests.helpers import engine_state


def _text(text: str) -> dict:
    return {"id": "msg_test", "type": "message", "role": "assistant", "model": "test",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1}}


class Answer(Stage):
    name = "test_answer"
    options_schema = {"type": "object", "additionalProperties": False,
                      "properties": {"text": {"type": "string", "default": "answered"}}}

    async def run(self, x):
        x.response = Response(message=_text(self.options["text"]), source=f"stage:{self.id}")


class Tag(Stage):
    name = "test_tag"
    options_schema = {"type": "object", "additionalProperties": False,
                      "properties": {"key": {"type": "string"}, "value": {}}}

    async def run(self, x):
        x.vars[self.options["key"]] = self.options.get("value")
        x.vars.setdefault("order", []).append(self.id)


class Boom(Stage):
    name = "test_boom"
    options_schema = {"type": "object", "additionalProperties": False,
                      "properties": {"status": {"type": "integer"}, "critical": {"type": "boolean", "default": False}}}

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.critical = options["critical"]

    async def run(self, x):
        x.vars.setdefault("order", []).append(self.id)
        if self.options.get("status"):
            raise ProxyError(self.options["status"], "boom from test stage")
        raise RuntimeError("boom")


class CriticalBoom(Boom):
    name = "test_critical_boom"
    critical = True


class Gate(Stage):
    """Waits until the test opens the gate; counts its own closing. Its answer names its generation."""
    name = "test_gate"
    options_schema = {"type": "object", "additionalProperties": False,
                      "properties": {"label": {"type": "string", "default": "v1"}}}

    async def run(self, x):
        engine_state.entered.set()
        await engine_state.gate.wait()
        x.response = Response(message=_text(self.options["label"]))

    async def aclose(self):
        engine_state.closed.append(self.options["label"])


class After(Stage):
    name = "test_after"
    options_schema = {"type": "object", "additionalProperties": False, "properties": {}}

    async def run(self, x):
        x.vars["after_ran"] = False

    async def after(self, x):
        engine_state.after_calls.append((x.id, x.response.final is not None or x.response.message is not None))


class SlowStream(Stage):
    """Answers with a stream that waits on the gate between events (after-hook ordering tests)."""
    name = "test_slow_stream"
    options_schema = {"type": "object", "additionalProperties": False, "properties": {}}

    async def run(self, x):
        from lynkr.wire.events import message_to_events

        async def events():
            async for ev in message_to_events(_text("streamed")):
                if ev["type"] == "message_stop":
                    engine_state.entered.set()
                    await engine_state.gate.wait()
                yield ev
        x.response = Response(events=events())
        await asyncio.sleep(0)


class Notes(Stage):
    """Writes into the event it is handed, in `run` and in `after`; refuses `limit` below 1 at load."""
    name = "test_notes"
    options_schema = {"type": "object", "additionalProperties": False,
                      "properties": {"limit": {"type": "integer", "default": 1}}}

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        if options["limit"] < 1:
            raise ctx.error("limit must be at least 1", "limit")

    async def run(self, x):
        x.stage_event.detail["ran"] = self.id

    async def after(self, x):
        x.stage_event.detail["after"] = self.id
