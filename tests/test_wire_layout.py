"""The wire codecs stay readable: no function in lynkr/wire/ is over 60 lines, each OpenAI protocol
is a client half and an upstream half, and every upstream stream translator writes its events
through the one EventBuilder."""
from __future__ import annotations

import ast

from tests.conftest import ROOT

WIRE = ROOT / "lynkr" / "wire"


def test_no_function_in_wire_is_over_60_lines():
    long = []
    for path in sorted(WIRE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_openai_protocols_are_split_into_client_and_upstream_halves():
    from lynkr.wire import openai_chat, openai_responses
    from lynkr.wire.openai_chat import client as chat_client, upstream as chat_upstream
    from lynkr.wire.openai_responses import client as resp_client, upstream as resp_upstream

    assert openai_chat.to_canonical is chat_client.to_canonical and openai_chat.render is chat_client.render
    assert openai_chat.events_from_openai is chat_upstream.events_from_openai
    assert openai_responses.to_canonical is resp_client.to_canonical
    assert openai_responses.events_from_responses is resp_upstream.events_from_responses
    for half in (chat_client, resp_client):
        assert "EventBuilder" not in vars(half)
    for half in (chat_upstream, resp_upstream):
        assert "render" not in vars(half) and "to_canonical" not in vars(half)


def test_every_stream_translator_uses_the_one_event_builder():
    from lynkr.providers import bedrock, gemini, ollama
    from lynkr.wire.builder import EventBuilder
    from lynkr.wire.openai_chat import upstream as chat_upstream
    from lynkr.wire.openai_responses import upstream as resp_upstream

    for module in (chat_upstream, resp_upstream, bedrock, gemini, ollama):
        assert module.EventBuilder is EventBuilder, module.__name__
