"""A large synthetic telemetry file, for timing the reports and the dashboard's data endpoint.

    python -m tests.helpers.reports_synth /tmp/t100k.duckdb 100000
    time lynkr report savings --db /tmp/t100k.duckdb

Rows are made in SQL (seconds for 100k requests and 3 stage events each): 30 days, two
pipeline hashes, a third of the requests routed to a local model, 10% exact-cache hits, 2% 529s.
"""
from __future__ import annotations

import sys
from pathlib import Path


def make(path: str, n: int = 100_000) -> None:
    import duckdb

    from lynkr.telemetry.schema import ddl

    Path(path).unlink(missing_ok=True)
    con = duckdb.connect(path)
    for stmt in ddl():
        con.execute(stmt)
    con.execute(f"""
    INSERT INTO requests (id, ts, pipeline, pipeline_hash, client, requested_model, provider, model, tier, cache,
      status, latency_ms, ttfb_ms, upstream_ms, overhead_ms, tokens_client, tokens_upstream, usage_input, usage_output)
    SELECT 'r' || i, now()::TIMESTAMP - INTERVAL (i % 30) DAY - INTERVAL (i % 86400) SECOND, 'default',
      CASE WHEN i % 2 = 0 THEN 'aaa' ELSE 'bbb' END, 'anthropic', 'claude-sonnet-4-5',
      CASE WHEN i % 3 = 0 THEN 'ollama' ELSE 'anthropic' END,
      CASE WHEN i % 3 = 0 THEN 'qwen2.5-coder:7b' ELSE 'claude-sonnet-4-5' END,
      ['SIMPLE', 'MEDIUM', 'COMPLEX', 'REASONING'][1 + i % 4],
      CASE WHEN i % 10 = 7 THEN 'exact' ELSE 'miss' END,
      CASE WHEN i % 50 = 1 THEN 529 ELSE 200 END,
      100 + i % 900, 50, 90 + i % 800, 1 + (i % 7) / 10.0,
      5000 + i % 3000,
      CASE WHEN i % 10 = 7 THEN 0 ELSE 3500 + i % 3000 END,
      CASE WHEN i % 10 = 7 THEN NULL ELSE 3500 + i % 3000 END, 300
    FROM range({int(n)}) t(i)""")
    con.execute("""
    INSERT INTO stage_events (request_id, ts, pipeline, pipeline_hash, stage_id, uses, phase, outcome, duration_us,
      tokens_before, tokens_after)
    SELECT id, ts, pipeline, pipeline_hash, s.stage, s.stage, 'run', 'ok', 40,
      tokens_client - s.k * 500, tokens_client - (s.k + 1) * 500
    FROM requests, (VALUES ('trim', 0), ('toon', 1), ('strip_tools', 2)) s(stage, k)
    WHERE tokens_upstream > 0""")
    con.close()


if __name__ == "__main__":
    make(sys.argv[1] if len(sys.argv) > 1 else "t100k.duckdb", int(sys.argv[2]) if len(sys.argv) > 2 else 100_000)
