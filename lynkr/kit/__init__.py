"""The stage kit: tools any layer above the contract may use (memos, token counts, the embedder, the model catalogue, handing memory back)."""
