-- Requests, tokens, estimated cost, errors and latency per provider/model called.
SELECT
  coalesce(provider, '(none)')                        AS provider,
  coalesce(model, '(none)')                           AS model,
  count(*)                                            AS requests,
  count(*) FILTER (WHERE status >= 400)               AS errors,
  count(*) FILTER (WHERE cache_hit)                   AS cache_hits,
  sum(tokens_upstream)                                AS tokens_upstream,
  sum(usage_input)                                    AS usage_input,
  sum(usage_output)                                   AS usage_output,
  sum(usage_cache_read)                               AS usage_cache_read,
  round(sum(cost_usd), 6)                             AS cost_usd,
  round(sum(saved_usd), 6)                            AS saved_usd,
  round(quantile_cont(latency_ms, 0.50), 1)           AS latency_p50_ms,
  round(quantile_cont(latency_ms, 0.95), 1)           AS latency_p95_ms,
  round(quantile_cont(upstream_ms, 0.50), 1)          AS upstream_p50_ms,
  bool_and(priced) FILTER (WHERE NOT cache_hit)       AS priced
FROM requests
GROUP BY ALL
ORDER BY requests DESC, provider, model;
