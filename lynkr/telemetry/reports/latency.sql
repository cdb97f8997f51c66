-- Latency percentiles (ms) of the whole request, time to first byte, the upstream call, and what the proxy added.
WITH m AS (
  SELECT 'total' AS measure, 1 AS _o, latency_ms AS ms FROM requests
  UNION ALL SELECT 'ttfb',     2, ttfb_ms     FROM requests
  UNION ALL SELECT 'upstream', 3, upstream_ms FROM requests
  UNION ALL SELECT 'overhead', 4, overhead_ms FROM requests
)
SELECT
  measure,
  count(ms)                                  AS requests,
  round(quantile_cont(ms, 0.50), 3)          AS p50,
  round(quantile_cont(ms, 0.95), 3)          AS p95,
  round(quantile_cont(ms, 0.99), 3)          AS p99,
  round(max(ms), 3)                          AS max
FROM m
GROUP BY measure, _o
ORDER BY _o;
