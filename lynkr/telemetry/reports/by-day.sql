-- Requests, errors, tokens and estimated USD (cost, baseline, saved) per day.
SELECT
  CAST(ts AS DATE)                                    AS day,
  count(*)                                            AS requests,
  count(*) FILTER (WHERE status >= 400)               AS errors,
  sum(tokens_client)                                  AS tokens_client,
  sum(tokens_upstream)                                AS tokens_upstream,
  sum(tokens_saved)                                   AS tokens_saved,
  round(100.0 * sum(tokens_saved) / nullif(sum(tokens_client) FILTER (WHERE coalesce(status, 200) < 400), 0), 1) AS saved_pct,
  round(sum(cost_usd), 6)                             AS cost_usd,
  round(sum(baseline_usd), 6)                         AS baseline_usd,
  round(sum(saved_usd), 6)                            AS saved_usd
FROM requests
GROUP BY day
ORDER BY day;
