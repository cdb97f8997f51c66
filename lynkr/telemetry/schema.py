"""Telemetry tables (design.md §6). Columns are added, never renamed: reports and users' own
SQL depend on them. Costs are not stored; reports price tokens at query time, so fixing a
price re-prices history."""

REQUEST_COLUMNS: list[tuple[str, str]] = [
    ("id", "VARCHAR"),
    ("ts", "TIMESTAMP"),
    ("pipeline", "VARCHAR"),
    ("pipeline_hash", "VARCHAR"),
    ("client", "VARCHAR"),
    ("user_agent", "VARCHAR"),
    ("session", "VARCHAR"),
    ("requested_model", "VARCHAR"),
    ("provider", "VARCHAR"),
    ("model", "VARCHAR"),
    ("tier", "VARCHAR"),
    ("score", "DOUBLE"),
    ("cache", "VARCHAR"),              # exact | semantic | miss | NULL (no cache stage)
    ("fallback", "VARCHAR"),
    ("stream", "BOOLEAN"),
    ("status", "INTEGER"),
    ("error", "VARCHAR"),
    ("latency_ms", "DOUBLE"),
    ("ttfb_ms", "DOUBLE"),
    ("upstream_ms", "DOUBLE"),
    ("overhead_ms", "DOUBLE"),
    ("tokens_client", "INTEGER"),      # estimated (cl100k) tokens of what the client sent
    ("tokens_upstream", "INTEGER"),    # estimated tokens of what went upstream (0 on a cache hit)
    ("usage_input", "INTEGER"),        # provider-reported
    ("usage_output", "INTEGER"),
    ("usage_cache_read", "INTEGER"),
    ("usage_cache_write", "INTEGER"),      # all cache writes (5-minute and 1-hour)
    ("usage_cache_write_1h", "INTEGER"),   # the 1-hour part of usage_cache_write (priced at 2x input)
    ("usage_detail", "VARCHAR"),           # JSON: usage fields the provider sent that are not mapped above
    ("worker", "INTEGER"),
    ("prompt", "VARCHAR"),             # only with telemetry.content: true
    ("response_text", "VARCHAR"),
    ("key", "VARCHAR"),                # the client key's name (keys:, api_keys[i]); never its secret
    ("team", "VARCHAR"),               # the key's team
    ("upstream_key", "VARCHAR"),       # which key of a provider's pool served: "…" + its last 4 characters
]

STAGE_EVENT_COLUMNS: list[tuple[str, str]] = [
    ("request_id", "VARCHAR"),
    ("ts", "TIMESTAMP"),
    ("pipeline", "VARCHAR"),
    ("pipeline_hash", "VARCHAR"),
    ("stage_id", "VARCHAR"),
    ("uses", "VARCHAR"),
    ("phase", "VARCHAR"),
    ("outcome", "VARCHAR"),
    ("duration_us", "BIGINT"),
    ("tokens_before", "INTEGER"),
    ("tokens_after", "INTEGER"),
    ("detail", "VARCHAR"),             # JSON
]


def ddl(schema: str = "") -> list[str]:
    """CREATE/ALTER statements; `schema` names the attached database the tables live in."""
    out = []
    for table, cols in (("requests", REQUEST_COLUMNS), ("stage_events", STAGE_EVENT_COLUMNS)):
        table = f"{schema}.{table}" if schema else table
        out.append(f"CREATE TABLE IF NOT EXISTS {table} (" + ", ".join(f"{c} {t}" for c, t in cols) + ")")
        # Older files gain new columns in place.
        for c, t in cols:
            out.append(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {c} {t}")
    return out
