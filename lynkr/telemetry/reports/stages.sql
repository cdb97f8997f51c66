-- What each stage did: runs, outcomes, tokens before/after (cl100k estimates) and its cost in time.
SELECT
  stage_id,
  uses,
  count(*)                                                         AS runs,
  count(*) FILTER (WHERE outcome IN ('ok', 'responded'))           AS ok,
  count(*) FILTER (WHERE outcome IN ('error', 'failed_open'))      AS failed,
  count(*) FILTER (WHERE outcome = 'skipped')                      AS skipped,
  coalesce(sum(tokens_before), 0)                                  AS tokens_before,
  coalesce(sum(tokens_after), 0)                                   AS tokens_after,
  coalesce(sum(tokens_before), 0) - coalesce(sum(tokens_after), 0) AS tokens_saved,
  round(median(duration_us) FILTER (WHERE outcome <> 'skipped'), 1) AS p50_us
FROM stage_events
WHERE phase = 'run'
GROUP BY stage_id, uses
ORDER BY tokens_saved DESC, stage_id;
