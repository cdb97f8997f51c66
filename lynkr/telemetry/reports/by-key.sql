-- Per client key (keys:/teams: in the pipeline; "(none)" without client keys): requests, tokens,
-- USD spent and saved, cache hit rate, tier mix.
SELECT
  coalesce("key", '(none)')                                       AS "key",
  string_agg(DISTINCT team, ', ')                                 AS team,
  count(*)                                                        AS requests,
  count(*) FILTER (WHERE status >= 400)                           AS errors,
  sum(tokens_client)                                              AS tokens_client,
  sum(tokens_upstream)                                            AS tokens_upstream,
  sum(usage_input)                                                AS usage_input,
  sum(usage_output)                                               AS usage_output,
  round(sum(cost_usd), 6)                                         AS usd_spent,
  round(sum(saved_usd), 6)                                        AS usd_saved,
  round(100.0 * count(*) FILTER (WHERE cache_hit) / count(*), 1)  AS cache_hit_pct,
  string_agg(DISTINCT tier, ', ' ORDER BY tier)                   AS tiers
FROM requests
GROUP BY 1
ORDER BY usd_spent DESC NULLS LAST, requests DESC, "key";
