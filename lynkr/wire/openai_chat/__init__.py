"""OpenAI Chat Completions: the client half (`client.py`: Cursor, Cline, Continue call
`/v1/chat/completions`; their requests → canonical, canonical answers → chat completions and
chunks) and the upstream half (`upstream.py`: the OpenAI-compatible providers' requests and
answers). `common.py` holds what both read the same way."""
from lynkr.wire.openai_chat.client import (CLIENT, error_body, error_response, message_to_completion, render,
                                           to_canonical)
from lynkr.wire.openai_chat.common import EXTRA
from lynkr.wire.openai_chat.upstream import events_from_openai, from_canonical, message_from_openai

__all__ = ["CLIENT", "EXTRA", "to_canonical", "from_canonical", "message_from_openai", "events_from_openai",
           "render", "error_response", "error_body", "message_to_completion"]
