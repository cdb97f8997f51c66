-- Errors by status, provider/model and message.
SELECT status, provider, model, error, count(*) AS requests, min(ts) AS first_seen, max(ts) AS last_seen
FROM requests
WHERE status >= 400
GROUP BY ALL
ORDER BY requests DESC, status;
