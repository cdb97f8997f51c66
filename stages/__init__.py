"""Built-in stages, one per module. Registered by `lynkr.config.registry.load_registry()`
through the same path third-party stages take; nothing registers on import."""

DEFAULT_STAGES: tuple[str, ...] = (
    "provider_call",
    "fallback",
    "score",
    "tier_route",
    "strip_tools",
    "toon",
    "crush",
    "exact_cache",
    "semantic_cache",
    "memory",
    "mcp",
)
