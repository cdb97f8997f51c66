-- Savings per pipeline version (name and config hash): which config change saved what.
SELECT
  pipeline,
  pipeline_hash,
  min(ts)                                                         AS first_seen,
  max(ts)                                                         AS last_seen,
  count(*)                                                        AS requests,
  count(*) FILTER (WHERE status >= 400)                           AS errors,
  sum(tokens_client)                                              AS tokens_client,
  sum(tokens_saved)                                               AS tokens_saved,
  round(100.0 * sum(tokens_saved) / nullif(sum(tokens_client) FILTER (WHERE coalesce(status, 200) < 400), 0), 1) AS tokens_saved_pct,
  round(sum(cost_usd), 6)                                         AS cost_usd,
  round(sum(saved_usd), 6)                                        AS saved_usd,
  round(100.0 * sum(saved_usd) / nullif(sum(baseline_usd), 0), 1) AS usd_saved_pct
FROM requests
GROUP BY pipeline, pipeline_hash
ORDER BY first_seen;
