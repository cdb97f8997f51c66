"""Tool calls that local models write as text: found, parsed, validated, streamed.

    from lynkr.toolcalls import extract, Recoverer
    x = extract(text, request["tools"])        # x.calls, x.prose, x.thinking, x.rejections
    r = Recoverer(request["tools"]); r.feed(chunk) … r.finish()   # pieces as they are decided

scan.py finds the regions (markup, fences, bare JSON) in one left-to-right pass that works the same
on a stream; formats.py reads each format's calls; validate.py keeps those a client can run;
stream.py turns it all into pieces. The provider integration is lynkr/providers/textcalls.py.
"""
from lynkr.toolcalls.stream import Extraction, Recoverer, extract
from lynkr.toolcalls.validate import Call, Rejection, Toolset

__all__ = ["extract", "Extraction", "Recoverer", "Call", "Rejection", "Toolset"]
