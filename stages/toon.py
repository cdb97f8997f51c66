"""toon: re-encode JSON tool results losslessly, in whichever form costs the fewest tokens.

    - {id: json, uses: toon, with: {min_chars: 200}}

For each tool_result payload that is a JSON object or array, the candidates are the text as it is,
compact JSON and TOON with each of its three delimiters; TOON only when it decodes back to exactly
the same value, with a one-line header. The smallest by cl100k tokens wins, so the result is never
larger (lynkr/savings/toon.py).

The choice depends only on the payload's text, so a payload gets the same bytes on every turn and
the provider's prompt cache keeps hitting. Results are remembered by text: on turn n+1 every payload
but the newest is a dictionary lookup, and only new payloads are encoded, in a worker thread.
"""
from __future__ import annotations

import asyncio

from lynkr.exchange import Exchange
from lynkr.kit.tokens import warm
from lynkr.savings.payloads import replace_payloads, tool_results
# looks_binary and parse_json are re-exported for crush until it imports lynkr.savings.toon.
from lynkr.savings.toon import Encoder, encode, looks_binary, parse_json  # noqa: F401
from lynkr.stage import Stage

class Toon(Stage):
    name = "toon"
    edits = "copy-on-write"
    summary = "Re-encodes JSON tool results as compact JSON or TOON when that is smaller; lossless, verified."
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "min_chars": {"type": "integer", "minimum": 0, "default": 200,
                          "description": "payloads shorter than this are left alone (not worth a header)"},
            "max_chars": {"type": "integer", "minimum": 1, "default": 2_000_000,
                          "description": "payloads longer than this are left alone (bounded CPU per request)"},
            "max_depth": {"type": "integer", "minimum": 1, "default": 32,
                          "description": "JSON nested deeper than this is left alone"},
            "header": {"type": "boolean", "default": True,
                       "description": "prefix TOON payloads with a one-line note telling the model the format"},
        },
    }
    examples = ["- {id: json, uses: toon}"]

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.encoder = Encoder(max_depth=options["max_depth"], max_chars=options["max_chars"],
                               use_header=options["header"])
        if not ctx.dry_run:
            warm()          # load cl100k_base now, not inside the first request that needs it

    async def run(self, x: Exchange) -> None:
        ev = x.stage_event
        todo = [p for p in tool_results(x.request) if len(p.text) >= self.options["min_chars"]]
        if not todo:
            ev.detail["payloads"] = 0
            return
        results = {}
        missing = []
        for p in todo:
            hit = self.encoder.known(p.text)
            if hit is None:
                missing.append(p)
            else:
                results[p] = hit
        if missing:
            # Parsing, encoding and counting are CPU work: keep them off the event loop.
            done = await asyncio.to_thread(self.encoder.encode_many, [p.text for p in missing])
            results.update(zip(missing, done))
        changed, how = {}, {}
        for p, (text, label) in results.items():
            how[label] = how.get(label, 0) + 1
            if text != p.text:
                changed[(p.msg, p.block, p.inner)] = text
        if changed:
            x.request = replace_payloads(x.request, changed)
        ev.detail.update({"payloads": len(todo), "changed": len(changed), "how": how})
        if changed:
            before = "\n".join(p.text for p in todo if (p.msg, p.block, p.inner) in changed)
            ev.measure = (before, "\n".join(changed.values()))
