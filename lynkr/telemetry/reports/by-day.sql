-- Requests, errors and tokens per day.
SELECT
  CAST(ts AS DATE)                                   AS day,
  count(*)                                           AS requests,
  count(*) FILTER (WHERE status >= 400)              AS errors,
  sum(tokens_client)                                 AS tokens_client,
  sum(tokens_upstream)                               AS tokens_upstream,
  sum(tokens_client) - sum(tokens_upstream)          AS tokens_saved,
  round(100.0 * (sum(tokens_client) - sum(tokens_upstream)) / nullif(sum(tokens_client), 0), 1) AS saved_pct
FROM requests
GROUP BY day
ORDER BY day;
