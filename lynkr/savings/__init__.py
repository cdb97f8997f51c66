"""What the savings stages share: finding tool-result payloads, the lynkr_expand round trip."""
