-- Cache stages: lookups, hits, hit rate, guard rejections, skips and the tokens hits saved (input + cached output).
SELECT
  stage_id,
  uses,
  count(*) FILTER (WHERE json_extract_string(detail, '$.result') IN ('hit', 'miss', 'reject', 'error')) AS lookups,
  count(*) FILTER (WHERE json_extract_string(detail, '$.result') = 'hit')                    AS hits,
  round(100.0 * count(*) FILTER (WHERE json_extract_string(detail, '$.result') = 'hit')
        / nullif(count(*) FILTER (WHERE json_extract_string(detail, '$.result') IN ('hit', 'miss', 'reject', 'error')), 0), 1) AS hit_rate,
  count(*) FILTER (WHERE json_extract_string(detail, '$.result') = 'reject')                 AS guard_rejected,
  count(*) FILTER (WHERE json_extract_string(detail, '$.result') = 'skip')                   AS skipped,
  count(*) FILTER (WHERE json_extract_string(detail, '$.result') = 'bypass')                 AS bypassed,
  count(*) FILTER (WHERE outcome IN ('error', 'failed_open'))                                AS errors,
  coalesce(sum(tokens_before - tokens_after) FILTER (WHERE json_extract_string(detail, '$.result') = 'hit'), 0) AS saved_tokens,
  round(median(duration_us) FILTER (WHERE json_extract_string(detail, '$.result') = 'hit') / 1000.0, 2) AS hit_p50_ms
FROM stage_events
WHERE phase = 'run' AND uses IN ('exact_cache', 'semantic_cache')
GROUP BY stage_id, uses
ORDER BY stage_id;
