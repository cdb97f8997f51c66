-- Errors by status and message.
SELECT status, provider, model, error, count(*) AS requests, max(ts) AS last_seen
FROM requests
WHERE status >= 400
GROUP BY ALL
ORDER BY requests DESC;
