-- What was saved, in tokens and USD, split by lever (baseline: the client's request sent to the
-- model it asked for, with no provider prompt cache; each lever is that baseline with and without
-- the one lever — lynkr/telemetry/reports/_priced.sql has the formulas):
--   answer cache   a cache hit's whole baseline goes to the stage that answered (exact, semantic);
--   stages         tokens a stage removed (strip_tools, toon, crush), at the requested model's input price;
--   prompt cache   the provider's cache discount: reads at the read price instead of input, less
--                  the write premium (5-minute and 1-hour writes priced apart); tokens_cached are the reads;
--   routing        the same upstream tokens at the requested model's prices minus the called model's.
-- Rows of the stages lever are per stage (their token counts are estimates; the small difference to
-- the lever's exact total is in the routing row with tokenizer rounding). TOTAL carries usd_cost,
-- what the traffic cost at the pipeline's prices.
WITH ok AS (
  SELECT * FROM requests WHERE coalesce(status, 200) < 400
),
answered_by AS (            -- the stage that answered a cache hit
  SELECT request_id, any_value(stage_id) AS stage_id, any_value(uses) AS uses
  FROM stage_events WHERE phase = 'run' AND outcome = 'responded' AND uses <> 'provider_call'
  GROUP BY request_id
),
cache_rows AS (
  SELECT coalesce(a.stage_id, 'cache') AS stage, coalesce(a.uses, r.cache) AS uses,
         count(*) AS requests, sum(r.tokens_saved) AS tokens_saved, sum(r.saved_usd) AS usd_saved,
         'answer cache' AS lever, 0 AS tokens_cached
  FROM ok r LEFT JOIN answered_by a ON a.request_id = r.id
  WHERE r.cache_hit
  GROUP BY ALL
),
stage_rows AS (
  SELECT e.stage_id AS stage, e.uses, count(*) AS requests,
         sum(e.tokens_before - e.tokens_after) AS tokens_saved,
         sum((e.tokens_before - e.tokens_after) * r.usd_per_client_token) AS usd_saved,
         'stages' AS lever, 0 AS tokens_cached
  FROM stage_events e JOIN ok r ON r.id = e.request_id
  WHERE e.phase = 'run' AND e.tokens_before IS NOT NULL AND e.tokens_after IS NOT NULL
    AND e.outcome IN ('ok', 'responded') AND NOT r.cache_hit
  GROUP BY ALL
),
prompt_cache AS (
  SELECT '(provider prompt cache)' AS stage, NULL AS uses,
         count(*) FILTER (WHERE coalesce(usage_cache_read, 0) + coalesce(usage_cache_write, 0) > 0) AS requests,
         0 AS tokens_saved, coalesce(sum(saved_prompt_cache_usd), 0) AS usd_saved,
         'prompt cache' AS lever, coalesce(sum(usage_cache_read), 0) AS tokens_cached
  FROM ok WHERE NOT cache_hit
),
routing AS (
  SELECT '(model routing)' AS stage, NULL AS uses,
         count(*) FILTER (WHERE model IS DISTINCT FROM requested_model) AS requests,
         0 AS tokens_saved,
         coalesce(sum(saved_usd), 0) - coalesce(sum(saved_prompt_cache_usd), 0)
           - coalesce((SELECT sum(usd_saved) FROM stage_rows), 0) AS usd_saved,
         'routing' AS lever, 0 AS tokens_cached
  FROM ok WHERE NOT cache_hit
),
total AS (
  SELECT 'TOTAL' AS stage, NULL AS uses, count(*) AS requests,
         sum(tokens_saved) AS tokens_saved, sum(saved_usd) AS usd_saved,
         sum(tokens_client) AS tokens_baseline, sum(baseline_usd) AS usd_baseline,
         sum(cost_usd) AS usd_cost, coalesce(sum(usage_cache_read), 0) AS tokens_cached
  FROM ok
),
rows AS (
  SELECT 1 AS _o, *, NULL AS usd_cost FROM cache_rows
  UNION ALL SELECT 2, *, NULL FROM stage_rows
  UNION ALL SELECT 3, *, NULL FROM prompt_cache WHERE requests > 0 OR abs(usd_saved) > 1e-12
  UNION ALL SELECT 4, *, NULL FROM routing WHERE requests > 0 OR abs(usd_saved) > 1e-12
  UNION ALL SELECT 5, stage, uses, requests, tokens_saved, usd_saved, NULL, tokens_cached, usd_cost FROM total
)
SELECT
  stage, uses, requests, tokens_saved,
  round(100.0 * tokens_saved / nullif((SELECT tokens_baseline FROM total), 0), 1) AS tokens_saved_pct,
  round(usd_saved, 6)                                                               AS usd_saved,
  round(100.0 * usd_saved / nullif((SELECT usd_baseline FROM total), 0), 1)       AS usd_saved_pct,
  lever, tokens_cached, round(usd_cost, 6) AS usd_cost
FROM rows
ORDER BY _o, usd_saved DESC NULLS LAST, tokens_saved DESC, stage;
