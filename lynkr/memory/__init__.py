"""Per-project long-term memory (the `memory` stage, docs/memory.md): what to remember
(extract), where it is kept (store), what to bring back (rank), where it goes in the request
without moving the prompt-cache prefix (inject), and the tools the model uses (tools)."""
