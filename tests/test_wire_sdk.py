"""The official anthropic and openai Python SDKs as clients of the proxy, each through an
Anthropic-speaking and an OpenAI-speaking scripted upstream."""
import asyncio

import anthropic
import openai
import pytest

from tests.conftest import start_app
from tests.helpers.wire_upstreams import OpenAIUpstream, ScriptedAnthropic

# Shedding off: the SDKs import their pydantic models lazily on the test's own event loop,
# which the shedder would rightly read as lag.
ANTHROPIC_PIPE = """
version: 1
server: {shed: {enabled: false}}
providers:
  up: {kind: anthropic, base_url: "%s"}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
"""
OPENAI_PIPE = """
version: 1
server: {shed: {enabled: false}}
providers:
  up: {kind: openai, base_url: "%s/v1", api_key: test}
stages:
  - {id: call, uses: provider_call, with: {to: "up:gpt-test"}}
"""

WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
STEPS = [[{"type": "text", "text": "Let me check the weather."},
          {"type": "tool", "name": "get_weather", "input": {"city": "Paris"}}],
         {"type": "text", "text": "It is sunny in Paris."}]


@pytest.fixture(params=["anthropic", "openai"])
async def proxy(request, write_pipeline, lynkr):
    if request.param == "anthropic":
        up = ScriptedAnthropic(STEPS, agent_tool="get_weather")
        pipe = ANTHROPIC_PIPE
    else:
        up = OpenAIUpstream(STEPS, agent_tool="get_weather")
        pipe = OPENAI_PIPE
    runner, url = await start_app(up.app())
    up.url = url
    _, proxy_url = await lynkr(write_pipeline(pipe % url))
    yield proxy_url, up
    await runner.cleanup()


async def test_messages_create_and_stream(proxy):
    url, up = proxy
    client = anthropic.AsyncAnthropic(base_url=url, api_key="test", max_retries=0)
    msgs = [{"role": "user", "content": "weather in Paris?"}]
    m = await client.messages.create(model="claude-x", max_tokens=100, messages=msgs, tools=[WEATHER])
    assert m.stop_reason == "tool_use"
    assert [b.type for b in m.content] == ["text", "tool_use"]
    tool = m.content[1]
    assert tool.name == "get_weather" and tool.input == {"city": "Paris"}
    msgs += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "sunny"}]}]
    async with client.messages.stream(model="claude-x", max_tokens=100, messages=msgs, tools=[WEATHER]) as s:
        final = await s.get_final_message()
    assert final.content[0].text == "It is sunny in Paris."
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


async def test_messages_stream_tool_use(proxy):
    url, up = proxy
    client = anthropic.AsyncAnthropic(base_url=url, api_key="test", max_retries=0)
    async with client.messages.stream(model="claude-x", max_tokens=100, tools=[WEATHER],
                                      messages=[{"role": "user", "content": "weather?"}]) as s:
        final = await s.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].text == "Let me check the weather."
    assert final.content[1].input == {"city": "Paris"}


OPENAI_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                                "parameters": WEATHER["input_schema"]}}


async def test_chat_completions_stream_with_tools(proxy):
    url, up = proxy
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="test", max_retries=0)
    stream = await client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "weather?"}],
                                                  tools=[OPENAI_TOOL], stream=True,
                                                  stream_options={"include_usage": True})
    text, args, finish, usage, names = "", {}, None, None, {}
    async for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            text += ch.delta.content or ""
            for tc in ch.delta.tool_calls or ():
                args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "")
                if tc.function.name:
                    names[tc.index] = tc.function.name
            finish = ch.finish_reason or finish
    assert text == "Let me check the weather."
    assert names == {0: "get_weather"} and args == {0: '{"city":"Paris"}'}
    assert finish == "tool_calls"
    assert usage is not None and usage.total_tokens > 0
    # and the non-streaming answer to the tool result
    resp = await client.chat.completions.create(model="gpt-x", tools=[OPENAI_TOOL], messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}])
    assert resp.choices[0].message.content == "It is sunny in Paris."
    assert resp.choices[0].finish_reason == "stop"


async def test_chat_completions_stream_helper(proxy):
    url, up = proxy
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="test", max_retries=0)
    async with client.chat.completions.stream(model="gpt-x", messages=[{"role": "user", "content": "weather?"}],
                                              tools=[OPENAI_TOOL]) as s:
        final = await s.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == '{"city":"Paris"}'


RESP_TOOL = {"type": "function", "name": "get_weather", "description": "Weather for a city",
             "parameters": WEATHER["input_schema"], "strict": False}


async def test_responses_stream(proxy):
    url, up = proxy
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="test", max_retries=0)
    async with client.responses.stream(model="gpt-5-codex", input="weather?", tools=[RESP_TOOL]) as s:
        final = await s.get_final_response()
    types = [o.type for o in final.output]
    assert types == ["message", "function_call"]
    assert final.output[0].content[0].text == "Let me check the weather."
    assert final.output[1].name == "get_weather" and final.output[1].arguments == '{"city":"Paris"}'
    assert final.usage.total_tokens > 0
    call_id = final.output[1].call_id
    resp = await client.responses.create(model="gpt-5-codex", tools=[RESP_TOOL], input=[
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
        {"type": "function_call", "call_id": call_id, "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call_output", "call_id": call_id, "output": "sunny"}])
    assert resp.output_text == "It is sunny in Paris."
    # the upstream saw one tool round trip, paired
    last = up.requests[-1]
    if "messages" in last and last["messages"] and "tool_call_id" in str(last["messages"]):
        assert any(m.get("role") == "tool" and m.get("tool_call_id") == call_id for m in last["messages"])
    else:
        blocks = [b for m in last["messages"] for b in (m["content"] if isinstance(m["content"], list) else [])]
        assert any(b.get("type") == "tool_result" and b.get("tool_use_id") == call_id for b in blocks)


async def test_count_tokens_and_models(proxy):
    url, up = proxy
    client = anthropic.AsyncAnthropic(base_url=url, api_key="test", max_retries=0)
    small = await client.messages.count_tokens(model="claude-x", messages=[{"role": "user", "content": "hi"}])
    big = await client.messages.count_tokens(model="claude-x", messages=[{"role": "user", "content": "hi"}],
                                             tools=[WEATHER], system="You are terse. " * 50)
    assert 0 < small.input_tokens < big.input_tokens
    oa = openai.AsyncOpenAI(base_url=url + "/v1", api_key="test", max_retries=0)
    listed = await oa.models.list()
    assert isinstance(listed.data, list)
