-- Tier mix: requests, share, models, score and estimated cost per routing tier.
WITH t AS (
  SELECT
    coalesce(tier, '(none)')                                        AS tier,
    count(*)                                                        AS requests,
    round(100.0 * count(*) / sum(count(*)) OVER (), 1)              AS share_pct,
    string_agg(DISTINCT provider || ':' || model, ', ' ORDER BY provider || ':' || model) AS models,
    round(avg(score), 3)                                            AS avg_score,
    sum(tokens_upstream)                                            AS tokens_upstream,
    round(sum(cost_usd), 6)                                         AS cost_usd,
    round(sum(baseline_usd), 6)                                     AS baseline_usd,
    round(sum(saved_usd), 6)                                        AS saved_usd
  FROM requests
  GROUP BY 1
)
SELECT * FROM t
ORDER BY CASE tier WHEN 'SIMPLE' THEN 1 WHEN 'MEDIUM' THEN 2 WHEN 'COMPLEX' THEN 3 WHEN 'REASONING' THEN 4 ELSE 5 END, tier;
