"""`/v1/embeddings` in OpenAI's shape, served by the local fastembed model (Cursor's codebase search)."""
import os

import openai
import pytest

PIPE = """
version: 1
server: {shed: {enabled: false}}
providers:
  up: {kind: anthropic, base_url: "http://127.0.0.1:9"}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
"""

needs_model = pytest.mark.skipif(not os.path.isdir(os.environ.get("LYNKR_EMBED_MODEL_PATH", "/nonexistent")),
                                 reason="LYNKR_EMBED_MODEL_PATH (all-MiniLM-L6-v2 ONNX) not available offline")


@needs_model
async def test_embeddings_with_the_openai_sdk(write_pipeline, lynkr):
    _, url = await lynkr(write_pipeline(PIPE))
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    r = await client.embeddings.create(model="text-embedding-3-small",
                                       input=["def add(a, b): return a + b", "sum two numbers", "the weather in Paris"])
    vecs = [d.embedding for d in r.data]
    assert [d.index for d in r.data] == [0, 1, 2] and len(vecs[0]) == 384
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))
    assert dot(vecs[0], vecs[1]) > dot(vecs[0], vecs[2])
    assert r.usage.prompt_tokens > 0


async def test_embeddings_bad_input(write_pipeline, lynkr):
    _, url = await lynkr(write_pipeline(PIPE))
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        await client.embeddings.create(model="m", input=[])
    assert "input" in str(e.value)
