-- Latency percentiles (ms): total, time to first byte, upstream, and what the proxy added.
SELECT
  count(*)                                              AS requests,
  round(quantile_cont(latency_ms, 0.50), 2)             AS total_p50,
  round(quantile_cont(latency_ms, 0.95), 2)             AS total_p95,
  round(quantile_cont(latency_ms, 0.99), 2)             AS total_p99,
  round(quantile_cont(ttfb_ms, 0.50), 2)                AS ttfb_p50,
  round(quantile_cont(upstream_ms, 0.50), 2)            AS upstream_p50,
  round(quantile_cont(upstream_ms, 0.99), 2)            AS upstream_p99,
  round(quantile_cont(overhead_ms, 0.50), 3)            AS overhead_p50,
  round(quantile_cont(overhead_ms, 0.95), 3)            AS overhead_p95,
  round(quantile_cont(overhead_ms, 0.99), 3)            AS overhead_p99
FROM requests;
