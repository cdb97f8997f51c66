-- Tokens and estimated USD saved, by stage and in total (baseline: the client's request sent to the model it asked for).
-- A cache hit's whole baseline goes to the stage that answered. On other requests a stage's token
-- savings are priced at the requested model's input price; "(model routing)" is the rest of the
-- dollar savings: a cheaper model than the one asked for (plus tokenizer rounding).
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
         count(*) AS requests, sum(r.tokens_saved) AS tokens_saved, sum(r.saved_usd) AS usd_saved
  FROM ok r LEFT JOIN answered_by a ON a.request_id = r.id
  WHERE r.cache_hit
  GROUP BY ALL
),
stage_rows AS (
  SELECT e.stage_id AS stage, e.uses, count(*) AS requests,
         sum(e.tokens_before - e.tokens_after) AS tokens_saved,
         sum((e.tokens_before - e.tokens_after) * r.usd_per_client_token) AS usd_saved
  FROM stage_events e JOIN ok r ON r.id = e.request_id
  WHERE e.phase = 'run' AND e.tokens_before IS NOT NULL AND e.tokens_after IS NOT NULL
    AND e.outcome IN ('ok', 'responded') AND NOT r.cache_hit
  GROUP BY ALL
),
routing AS (
  SELECT '(model routing)' AS stage, NULL AS uses,
         count(*) FILTER (WHERE model IS DISTINCT FROM requested_model) AS requests,
         0 AS tokens_saved,
         coalesce(sum(saved_usd), 0) - coalesce((SELECT sum(usd_saved) FROM stage_rows), 0) AS usd_saved
  FROM ok WHERE NOT cache_hit
),
total AS (
  SELECT 'TOTAL' AS stage, NULL AS uses, count(*) AS requests,
         sum(tokens_saved) AS tokens_saved, sum(saved_usd) AS usd_saved,
         sum(tokens_client) AS tokens_baseline, sum(baseline_usd) AS usd_baseline
  FROM ok
),
rows AS (
  SELECT 1 AS _o, * FROM cache_rows
  UNION ALL SELECT 2, * FROM stage_rows
  UNION ALL SELECT 3, * FROM routing WHERE requests > 0 OR abs(usd_saved) > 1e-12
  UNION ALL SELECT 4, stage, uses, requests, tokens_saved, usd_saved FROM total
)
SELECT
  stage, uses, requests, tokens_saved,
  round(100.0 * tokens_saved / nullif((SELECT tokens_baseline FROM total), 0), 1) AS tokens_saved_pct,
  round(usd_saved, 6)                                                               AS usd_saved,
  round(100.0 * usd_saved / nullif((SELECT usd_baseline FROM total), 0), 1)       AS usd_saved_pct
FROM rows
ORDER BY _o, usd_saved DESC NULLS LAST, tokens_saved DESC, stage;
