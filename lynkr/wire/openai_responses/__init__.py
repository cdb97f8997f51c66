"""OpenAI Responses: the client half (`client.py`: Codex CLI calls `/v1/responses`; its requests →
canonical, canonical answers → response objects and Responses events) and the upstream half
(`upstream.py`: a Responses upstream's requests and answers). `common.py` holds what both read
the same way."""
from lynkr.wire.openai_responses.client import (CLIENT, error_body, error_response, message_to_response, render,
                                                to_canonical)
from lynkr.wire.openai_responses.common import EXTRA
from lynkr.wire.openai_responses.upstream import events_from_responses, from_canonical, message_from_responses

__all__ = ["CLIENT", "EXTRA", "to_canonical", "from_canonical", "message_from_responses", "events_from_responses",
           "render", "error_response", "error_body", "message_to_response"]
