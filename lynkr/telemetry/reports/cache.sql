-- Cache outcomes: share of requests, tokens and estimated USD saved by hits, latency.
SELECT
  coalesce(cache, 'miss')                                         AS cache,     -- NULL: no cache answered
  count(*)                                                        AS requests,
  round(100.0 * count(*) / sum(count(*)) OVER (), 1)              AS share_pct,
  bool_or(cache_hit)                                              AS hit,
  sum(tokens_saved) FILTER (WHERE cache_hit)                      AS tokens_saved,
  round(sum(saved_usd) FILTER (WHERE cache_hit), 6)               AS usd_saved,
  round(quantile_cont(latency_ms, 0.50), 2)                       AS latency_p50_ms
FROM requests
GROUP BY 1
ORDER BY hit DESC, requests DESC, cache;
