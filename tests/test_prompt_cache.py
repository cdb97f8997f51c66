"""Provider prompt caching end to end: the recorded Claude Code and Codex sessions, and each
converted to the other client protocols, through pipelines/default.yaml against doubles that model
the providers' documented prompt caches — from the third turn on (the second, for the two-turn
Codex session) at least 80 % of every turn's input is read from the cache, on every path; the
client sees the cache counts in its own protocol; `lynkr report savings` prices the traffic at
what the provider's usage says, to within 1 % of a hand computation."""
import asyncio
import json

import pytest

from lynkr.cli import main
from lynkr.kit.catalog import load_catalog
from lynkr.providers.cache_model import PromptCache
from tests.conftest import FIXTURES, ROOT, serving
from tests.helpers.cache_paths import converted, recorded, replay
from tests.helpers.provider_doubles import AnthropicDouble, BedrockDouble, OpenAIDouble

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="needs ../shared/fixtures")

CLAUDE_CODE = "claude-code/fix-negative-stock"
CODEX = "codex/list-files"

# upstream, recorded session, client protocol it is sent in
PATHS = [
    ("anthropic", CLAUDE_CODE, "anthropic"),      # Claude Code → Anthropic
    ("openrouter", CLAUDE_CODE, "anthropic"),     # Claude Code → an OpenAI-compatible host serving Claude
    ("bedrock", CLAUDE_CODE, "anthropic"),        # Claude Code → Bedrock
    ("anthropic", CLAUDE_CODE, "chat"),           # an OpenAI Chat client (Cursor, Cline) → Anthropic
    ("anthropic", CODEX, "responses"),            # Codex → Anthropic
    ("anthropic", CLAUDE_CODE, "responses"),
    ("anthropic", CODEX, "anthropic"),
    ("anthropic", CODEX, "chat"),
    ("bedrock", CLAUDE_CODE, "chat"),
    ("openrouter", CODEX, "responses"),
]

# What each double reports as output tokens per turn (tests/helpers/provider_doubles.py).
OUTPUT = {"anthropic": 5, "bedrock": 57, "openrouter": 12}


def _double(kind: str):
    if kind == "bedrock":
        return BedrockDouble(cache=PromptCache.explicit())
    if kind == "openrouter":
        return OpenAIDouble(cache=PromptCache.explicit(), markers=True)
    return AnthropicDouble(cache=PromptCache.explicit())


def _env(monkeypatch, kind: str, url: str, tmp_path) -> None:
    monkeypatch.setenv("LYNKR_STATE_DIR", str(tmp_path / "state"))
    if kind == "anthropic":
        monkeypatch.setenv("MODEL_PROVIDER", "anthropic")
        monkeypatch.setenv("ANTHROPIC_UPSTREAM_URL", url)
    elif kind == "bedrock":
        monkeypatch.setenv("MODEL_PROVIDER", "bedrock")
        monkeypatch.setenv("AWS_BEDROCK_ENDPOINT", url)
        monkeypatch.setenv("AWS_BEDROCK_API_KEY", "bedrock-test")
    else:
        monkeypatch.setenv("MODEL_PROVIDER", "openrouter")
        monkeypatch.setenv("OPENROUTER_ENDPOINT", url + "/v1")
        monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
        monkeypatch.setenv("OPENROUTER_MODEL", "anthropic/claude-sonnet-4.5")


def _hand_cost(usages: list[dict], model: str, output: int) -> float:
    """USD at the catalogue's list prices, from the usage the double reported, worked out here."""
    p = load_catalog(None).price(model)
    return sum(u["input"] * p["input"] + u["read"] * p["cache_read"] + u["write_5m"] * p["cache_write"]
               + u["write_1h"] * p["cache_write_1h"] + output * p["output"] for u in usages) / 1e6


async def _flushed(engine, n: int) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(200):
        if engine.writer.written >= n:
            return
        await loop.run_in_executor(None, engine.writer.flush)
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("kind,session,client", PATHS, ids=[f"{c}-{s.split('/')[0]}-to-{k}" for k, s, c in PATHS])
async def test_session_reads_most_of_its_input_from_the_provider_cache(lynkr, monkeypatch, tmp_path, capsys,
                                                                       kind, session, client):
    """Every turn after the first two (after the first, for Codex's two turns) reads ≥ 80 % of its
    input from the provider's cache, seen in the client's own usage fields; the double saw no
    malformed marker; and the savings report's cost is the hand-computed cost within 1 %."""
    proto, bodies, headers = recorded(FIXTURES / session)
    double = _double(kind)
    async with serving(double):
        _env(monkeypatch, kind, double.url, tmp_path)
        db = tmp_path / "t.duckdb"
        engine, url = await lynkr(ROOT / "pipelines" / "default.yaml", telemetry_path=str(db))
        rows = await replay(url, client, converted(proto, bodies, client), headers)
        await _flushed(engine, len(rows))
    assert double.problems == []
    steady = rows[2:] if len(rows) > 2 else rows[1:]
    assert steady and all(r["share"] >= 0.8 for r in steady), [round(r["share"], 3) for r in rows]
    assert rows[0]["share"] == 0.0              # nothing is cached before the first turn
    assert len(double.usages) == len(rows)
    model = {"anthropic": bodies[0]["model"] if proto == "anthropic" else "claude-sonnet-4-5",
             "bedrock": "claude-sonnet-4-5", "openrouter": "claude-sonnet-4-5"}[kind]
    if kind == "anthropic":
        model = converted(proto, bodies, client)[0].get("model") or model
    want = _hand_cost(double.usages, model, OUTPUT[kind])
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, lambda: main(["report", "savings", "--db", str(db), "--format", "json"])) == 0
    total = {r["stage"]: r for r in json.loads(capsys.readouterr().out)}["TOTAL"]
    assert total["usd_cost"] == pytest.approx(want, rel=0.01)


def _one_hour(body: dict) -> dict:
    """Claude Code's markers with `ttl: "1h"`, as it sends them with ENABLE_PROMPT_CACHING_1H."""
    def mark(v):
        if isinstance(v, dict):
            return {k: ({**x, "ttl": "1h"} if k == "cache_control" else mark(x)) for k, x in v.items()}
        return [mark(x) for x in v] if isinstance(v, list) else v
    return mark(body)


async def test_one_hour_writes_are_kept_apart_and_priced_at_their_own_rate(lynkr, monkeypatch, tmp_path, capsys):
    """Claude Code's 1-hour breakpoints reach Bedrock as 1-hour cachePoints; the 1-hour writes come
    back in cacheDetails, land in usage_cache_write_1h and are priced at 2x input (not 1.25x)."""
    import duckdb

    proto, bodies, headers = recorded(FIXTURES / CLAUDE_CODE)
    double = _double("bedrock")
    async with serving(double):
        _env(monkeypatch, "bedrock", double.url, tmp_path)
        db = tmp_path / "t.duckdb"
        engine, url = await lynkr(ROOT / "pipelines" / "default.yaml", telemetry_path=str(db))
        rows = await replay(url, "anthropic", [_one_hour(b) for b in bodies], headers)
        await _flushed(engine, len(rows))
    assert double.problems == []
    points = [c["cachePoint"] for c in double.requests[-1]["system"] if "cachePoint" in c]
    assert points and all(p.get("ttl") == "1h" for p in points)
    assert sum(u["write_1h"] for u in double.usages) > 0 and sum(u["write_5m"] for u in double.usages) == 0
    assert rows[0]["usage"]["cache_creation_input_tokens"] == double.usages[0]["write_1h"]
    with duckdb.connect(str(db), read_only=True) as con:
        w1 = con.execute("SELECT sum(usage_cache_write_1h), sum(usage_cache_write) FROM requests").fetchone()
    assert w1[0] == w1[1] == sum(u["write_1h"] for u in double.usages)
    want = _hand_cost(double.usages, "claude-sonnet-4-5", OUTPUT["bedrock"])
    assert main(["report", "savings", "--db", str(db), "--format", "json"]) == 0
    out = {r["stage"]: r for r in json.loads(capsys.readouterr().out)}
    assert out["TOTAL"]["usd_cost"] == pytest.approx(want, rel=0.01)
    # The prompt-cache lever: reads at 0.30 instead of 3.00, 1-hour writes at 6.00 instead of 3.00.
    lever = sum(u["read"] * (3.0 - 0.3) - u["write_1h"] * (6.0 - 3.0) for u in double.usages) / 1e6
    assert out["(provider prompt cache)"]["usd_saved"] == pytest.approx(lever, rel=0.01)
