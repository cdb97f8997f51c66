"""Token savings, measured with cl100k_base on what would actually be sent upstream.

    python benchmarks/savings.py            # all sections
    python benchmarks/savings.py --json out.json

Sections
1. The seed's workloads, rebuilt: the 14-tool read and write requests (Claude Code 2.1.328's real
   tool definitions from ../shared/fixtures plus Grep and Glob) and the 60-item JSON grep result
   (`file`, `line`, `match`, `context`; benchmarks/data/seed_grep_60.json, made by make_seed_grep.py),
   sent as compact JSON like the seed's benchmark did. Then crush on grep-like results of three other
   shapes (benchmarks/data/grep_shapes.json; `--only grep`): ripgrep with context lists, IDE search
   with nested ranges, a code-search API with nested repository/file objects.
2. Uniform arrays (≥ 5 objects) in real tool outputs collected in benchmarks/data/tool_outputs/
   (ruff, pyright, eslint, pytest-json-report, pip, npm): TOON against compact JSON, per array.
3. Every fixture session through pipelines/default.yaml and through an all-stages pipeline
   (crush with keep_last 0), per stage, with prefix-stability violations (`lynkr replay`).
4. Per-stage cost on the 62 KB Claude Code body: median µs, cold (first sight) and warm (a later
   turn, the payload memoised).
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
if SHARED.is_dir():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))
FIXTURES = Path(os.environ.get("LYNKR_FIXTURES", SHARED / "fixtures"))
DATA = Path(__file__).resolve().parent / "data"

from lynkr.exchange import Exchange  # noqa: E402
from lynkr.stage import BuildContext  # noqa: E402
from lynkr.cli.explain import load_request_file, protocol_for  # noqa: E402
from lynkr.stages.crush import Crush  # noqa: E402
from lynkr.stages.strip_tools import StripTools  # noqa: E402
from lynkr.stages.toon import Toon, encode  # noqa: E402
from lynkr.kit.tokens import count_request, count_text  # noqa: E402

GREP_TOOL = {"name": "Grep", "description": (
    "A powerful search tool built on ripgrep.\n\n- Supports full regex syntax (e.g. \"log.*Error\", \"function\\\\s+\\\\w+\").\n"
    "- Filter files with the glob parameter (e.g. \"*.js\", \"**/*.tsx\") or the type parameter (e.g. \"js\", \"py\").\n"
    "- Output modes: \"content\" shows matching lines, \"files_with_matches\" shows only file paths (default), "
    "\"count\" shows match counts.\n- Use Agent for open-ended searches that need several rounds of globbing and grepping."),
    "input_schema": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "properties": {
        "pattern": {"type": "string", "description": "The regular expression pattern to search for in file contents"},
        "path": {"type": "string", "description": "File or directory to search in. Defaults to the current working directory."},
        "glob": {"type": "string", "description": "Glob pattern to filter files (e.g. \"*.js\", \"*.{ts,tsx}\")"},
        "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"],
                        "description": "Output mode. Defaults to \"files_with_matches\"."},
        "-n": {"type": "boolean", "description": "Show line numbers in output. Requires output_mode: \"content\"."},
        "-C": {"type": "number", "description": "Number of lines to show before and after each match."},
        "head_limit": {"type": "number", "description": "Limit output to the first N lines/entries."}},
        "required": ["pattern"], "additionalProperties": False}}
GLOB_TOOL = {"name": "Glob", "description": (
    "Fast file pattern matching that works with any codebase size.\n\n- Supports glob patterns like \"**/*.js\" or "
    "\"src/**/*.ts\".\n- Returns matching file paths sorted by modification time.\n- Use this tool when you need to find "
    "files by name patterns."),
    "input_schema": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "properties": {
        "pattern": {"type": "string", "description": "The glob pattern to match files against"},
        "path": {"type": "string", "description": "The directory to search in. Defaults to the current working directory."}},
        "required": ["pattern"], "additionalProperties": False}}

READ_ASK = "Read src/server.js and explain how the rate limiter decides when to reject a request."
WRITE_ASK = "Create src/utils/slugify.js exporting slugify(text): lowercase, trim, join words with dashes. Add a test."


def default_keep() -> list[str]:
    import yaml
    cfg = yaml.safe_load((ROOT / "pipelines" / "default.yaml").read_text())
    return next((s.get("with") or {}).get("keep", []) for s in cfg["stages"] if s["uses"] == "strip_tools")


def stage(cls, **options):
    ctx = BuildContext(pipeline_name="bench", pipeline_hash="", config={}, stage_id=cls.name,
                       state_dir=tempfile.mkdtemp(prefix="lynkr-bench-"))
    return cls({**cls.defaults(), **options}, ctx)


def run(st, request: dict, session: str | None = None) -> Exchange:
    x = Exchange.new("anthropic", request, session=session)
    x.start_stage(st.id, st.name)
    asyncio.run(st.run(x))
    return x


def canonical(path: Path) -> dict:
    route, _h, body = load_request_file(str(path))
    return protocol_for(route).to_canonical(body)


def claude_code_base() -> dict:
    return canonical(next(FIXTURES.glob("claude-code/*/req_000.json")))


def fourteen_tool_request(ask: str) -> dict:
    base = copy.deepcopy(claude_code_base())
    base["tools"] = base["tools"] + [GREP_TOOL, GLOB_TOOL]
    assert len(base["tools"]) == 14
    first = base["messages"][0]
    base["messages"] = [{**first, "content": first["content"][:-1] + [{"type": "text", "text": ask}]}]
    return base


def pct(before: int, after: int) -> float:
    return round(100 * (before - after) / before, 1) if before else 0.0


# -- 1. the seed's workloads ---------------------------------------------------------------------

def seed_workloads() -> dict:
    out = {}
    keep = default_keep()
    for label, ask in (("read", READ_ASK), ("write", WRITE_ASK)):
        req = fourteen_tool_request(ask)
        tools_before = sum(count_text(json.dumps(t, separators=(",", ":"))) for t in req["tools"])
        x = run(stage(StripTools, keep=keep), req)
        tools_after = sum(count_text(json.dumps(t, separators=(",", ":"))) for t in x.request["tools"])
        minify_only = run(stage(StripTools, strip=False), req).request
        out[f"14-tool {label}"] = {
            "request_tokens": count_request(req), "request_tokens_after": count_request(x.request),
            "tool_tokens": tools_before, "tool_tokens_after": tools_after,
            "saved_pct_request": pct(count_request(req), count_request(x.request)),
            "saved_pct_tools": pct(tools_before, tools_after),
            "minify_only_saved_pct_request": pct(count_request(req), count_request(minify_only)),
            "dropped": x.event("strip_tools").detail.get("dropped"),
        }
    items = json.loads((DATA / "seed_grep_60.json").read_text())
    compact = json.dumps(items, separators=(",", ":"))
    toon_text, how = encode(compact)
    req = {"model": "m", "max_tokens": 100, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "which file has the rate-limiting TODO for carol?"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Grep", "input": {"pattern": "TODO"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": compact}]}]}
    cr = stage(Crush, keep_last=0)
    crushed = run(cr, req).request["messages"][2]["content"][0]["content"]
    every = all(f"{it['file']},{it['line']}," in crushed and it["match"] in crushed for it in items)
    import re
    handle = re.match(r"\[lynkr crush (c_[0-9a-f]{16})", crushed).group(1)
    out["60-item grep (compact JSON)"] = {
        "compact_json_tokens": count_text(compact), "pretty_json_tokens": count_text(json.dumps(items, indent=2)),
        "toon_tokens": count_text(toon_text), "toon_how": how, "toon_saved_pct": pct(count_text(compact), count_text(toon_text)),
        "crush_tokens": count_text(crushed), "crush_saved_pct": pct(count_text(compact), count_text(crushed)),
        "crush_keeps_every_file_line_todo_assignee": every,
        "expand_returns_original_bytes": cr.store.get(handle) == compact,
    }
    return out


def grep_shapes() -> dict:
    """crush on grep-like results of three shapes whose field names it was not written for
    (benchmarks/data/grep_shapes.json, made by make_grep_shapes.py): tokens saved, and whether
    every row's facts (path, line, matched text, ids) are in the crushed text — verbatim, or after
    a folder prefix the header states once."""
    import re
    out = {}
    for name, shape in json.loads((DATA / "grep_shapes.json").read_text()).items():
        compact = json.dumps(shape["result"], separators=(",", ":"))
        req = {"model": "m", "max_tokens": 100, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "list the TODOs"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Search", "input": {"q": "TODO"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": compact}]}]}
        cr = stage(Crush, keep_last=0)
        crushed = run(cr, req).request["messages"][2]["content"][0]["content"]
        prefixes = re.findall(r'= "([^"]*)…" in every row', crushed.split("\n", 1)[0])
        present = all(f in crushed or any(f.startswith(p) and f[len(p):] in crushed for p in prefixes)
                      for row in shape["facts"] for f in row)
        handle = re.match(r"\[lynkr crush (c_[0-9a-f]{16})", crushed).group(1)
        out[name] = {"rows": len(shape["facts"]), "compact_json_tokens": count_text(compact),
                     "crush_tokens": count_text(crushed), "crush_saved_pct": pct(count_text(compact), count_text(crushed)),
                     "every_fact_present": present, "expand_returns_original_bytes": cr.store.get(handle) == compact}
    return out


# -- 2. uniform arrays in real tool outputs --------------------------------------------------------

def uniform_arrays(value, path="$"):
    if isinstance(value, list):
        if len(value) >= 5 and all(isinstance(v, dict) for v in value):
            keys = [tuple(v) for v in value]
            if len(set(keys)) == 1:
                yield path, value
        for i, v in enumerate(value):
            yield from uniform_arrays(v, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from uniform_arrays(v, f"{path}.{k}")


def tool_outputs() -> dict:
    rows = []
    for f in sorted((DATA / "tool_outputs").glob("*.json")):
        value = json.loads(f.read_text())
        for path, arr in uniform_arrays(value):
            compact = json.dumps(arr, separators=(",", ":"), ensure_ascii=False)
            text, how = encode(compact)
            flat = all(not isinstance(v, (dict, list)) for r in arr for v in r.values())
            rows.append({"file": f.name, "path": path, "items": len(arr), "compact": count_text(compact),
                         "after": count_text(text), "how": how, "saved_pct": pct(count_text(compact), count_text(text)),
                         "flat": flat})
        whole = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        text, how = encode(f.read_text())
        rows.append({"file": f.name, "path": "(whole file, as the tool printed it)", "items": None,
                     "compact": count_text(f.read_text()), "after": count_text(text), "how": how,
                     "saved_pct": pct(count_text(f.read_text()), count_text(text)),
                     "vs_compact_pct": pct(count_text(whole), count_text(text))})
    arrays = [r for r in rows if r["items"]]
    return {"arrays": arrays, "files": [r for r in rows if not r["items"]],
            "median_saved_pct_vs_compact": statistics.median(r["saved_pct"] for r in arrays) if arrays else None,
            "median_saved_pct_flat_rows": statistics.median([r["saved_pct"] for r in arrays if r["flat"]] or [0]),
            "never_larger_than_compact": all(r["after"] <= r["compact"] for r in arrays)}


# -- 3. fixture sessions ---------------------------------------------------------------------------

ALL_STAGES = """
version: 1
name: all-savings
providers:
  up: {{kind: anthropic, base_url: "http://127.0.0.1:9"}}
stages:
  - {{id: tools, uses: strip_tools, with: {{keep: {keep}}}}}
  - {{id: crush, uses: crush, with: {{keep_last: 0}}}}
  - {{id: json, uses: toon}}
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
"""


def sessions() -> dict:
    from lynkr.cli.replay import replay_sessions
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "all.yaml"
        p.write_text(ALL_STAGES.format(keep=json.dumps(default_keep())))
        rep = replay_sessions(str(FIXTURES), str(ROOT / "pipelines" / "default.yaml"), str(p))
    out = {}
    for label, r in (("default.yaml", rep["a"]), ("all stages (crush keep_last 0)", rep["b"])):
        out[label] = {"total": r["total"], "sessions": {
            Path(s["session"]).parent.name + "/" + Path(s["session"]).name: {
                "client": sum(q["client_tokens"] for q in s["requests"]),
                "upstream": sum(q["upstream_tokens"] for q in s["requests"]),
                "violations": sum(1 for q in s["requests"] if q["violations"])} for s in r["sessions"]}}
    return out


# -- 4. per-stage cost -----------------------------------------------------------------------------

def stage_costs(repeat: int = 25) -> dict:
    path = next(FIXTURES.glob("claude-code/*/req_004.json"))      # the longest body of the session
    _route, headers, body = load_request_file(str(path))
    req = canonical(path)
    size = int(headers.get("Content-Length") or len(json.dumps(body, separators=(",", ":")).encode()))
    keep = default_keep()
    makers = {"strip_tools": lambda: stage(StripTools, keep=keep), "toon": lambda: stage(Toon),
              "crush (keep_last 0)": lambda: stage(Crush, keep_last=0)}
    out = {"body_bytes": size}
    from lynkr.kit.tokens import count_text as warm_up
    warm_up("warm the tokenizer")
    async def timed(st) -> float:
        x = Exchange.new("anthropic", req, session="bench")
        x.start_stage(st.id, st.name)
        t0 = time.perf_counter()
        await st.run(x)
        return (time.perf_counter() - t0) * 1e6

    async def measure():
        for name, make in makers.items():
            cold, warm = [], []
            for _ in range(repeat):
                st = make()                     # a fresh stage: nothing memoised (first sight)
                cold.append(await timed(st))
                warm.append(await timed(st))    # the same body again: a later turn's old payloads
            out[name] = {"cold_median_us": round(statistics.median(cold)),
                         "warm_median_us": round(statistics.median(warm))}
    asyncio.run(measure())
    from lynkr.kit import tokens
    cold, warm = [], []
    for _ in range(repeat):
        tokens.TEXT_COUNTS.clear()
        t0 = time.perf_counter()
        count_request(req)
        cold.append((time.perf_counter() - t0) * 1e6)
        again = canonical(path)                 # a new parse of the same body: the next turn's case
        t0 = time.perf_counter()
        count_request(again)
        warm.append((time.perf_counter() - t0) * 1e6)
    out["count_request (telemetry thread)"] = {"cold_median_us": round(statistics.median(cold)),
                                               "warm_median_us": round(statistics.median(warm))}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--only", choices=["grep"], help="only the grep-like shapes (fast)")
    args = ap.parse_args(argv)
    if args.only == "grep":
        res = {"grep_shapes": grep_shapes()}
    else:
        res = {"seed": seed_workloads(), "grep_shapes": grep_shapes(), "tool_outputs": tool_outputs(),
               "sessions": sessions(), "cost": stage_costs()}
    print("== seed workloads (cl100k tokens)")
    for k, v in res.get("seed", {}).items():
        print(f"  {k}: " + ", ".join(f"{a}={b}" for a, b in v.items()))
    print("== crush on grep-like results of three other shapes (cl100k tokens, compact JSON in)")
    for k, v in res["grep_shapes"].items():
        print(f"  {k}: " + ", ".join(f"{a}={b}" for a, b in v.items()))
    if args.only:
        return 0
    t = res["tool_outputs"]
    print(f"== uniform arrays (≥5 objects, same keys) in real tool outputs: {len(t['arrays'])} arrays, median saving "
          f"vs compact JSON {t['median_saved_pct_vs_compact']}% (rows of scalars only: "
          f"{t['median_saved_pct_flat_rows']}%), never larger: {t['never_larger_than_compact']}")
    for r in t["arrays"]:
        print(f"  {r['file']:<22} {r['path']:<34} {r['items']:>4} items  {r['compact']:>6} → {r['after']:>6}  "
              f"{r['saved_pct']:>5}%  {r['how']}{'' if r['flat'] else '  (nested values)'}")
    for r in t["files"]:
        print(f"  {r['file']:<22} {r['path']:<34}       {r['compact']:>6} → {r['after']:>6}  {r['saved_pct']:>5}%  "
              f"(vs compact {r['vs_compact_pct']}%) {r['how']}")
    print("== fixture sessions (lynkr replay)")
    for label, v in res["sessions"].items():
        tot = v["total"]
        print(f"  {label}: client {tot['client_tokens']} → upstream {tot['upstream_tokens']} ({tot['saved_pct']}% saved); "
              f"per stage {tot['stages']}; prefix violations {tot['violations']}")
        for s, r in v["sessions"].items():
            print(f"    {s}: {r['client']} → {r['upstream']} ({pct(r['client'], r['upstream'])}%), violations {r['violations']}")
    c = res["cost"]
    print(f"== per-stage cost on the {c['body_bytes'] / 1000:.0f} KB Claude Code body (median µs, cold / warm)")
    for k, v in c.items():
        if isinstance(v, dict):
            print(f"  {k:<20} {v['cold_median_us']:>8} / {v['warm_median_us']:>6}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
