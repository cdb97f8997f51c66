"""Helpers of the `score` and `tier_route` stages: what the user asked (text.py), the scored
dimensions (signals.py), Claude Code's background calls (side.py), per-session tier memory
(sessions.py). Pure functions over the canonical request, so they are cheap to test."""
