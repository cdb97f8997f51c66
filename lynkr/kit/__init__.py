"""The stage kit: tools any layer above the contract may use — the one bounded cache (cache.py),
per-session state (session.py), token counts, the embedder, the model catalogue, handing memory back."""
