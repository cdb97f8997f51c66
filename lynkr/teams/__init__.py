"""Per-key and per-team accounting: rate windows, concurrency, USD budgets (lynkr.teams.ledger)."""
