"""Provider prompt-cache hit rates per client → upstream path, from `lynkr replay`.

    python benchmarks/prompt_cache.py [FIXTURES]        # default: ../shared/fixtures

Each recorded session (Claude Code, Codex) is replayed through pipelines/default.yaml as each
client protocol would have sent it (`lynkr replay --as`), routed to each upstream kind (Anthropic,
OpenRouter serving Claude, Bedrock) by Lynkr's environment variables, and the body the provider
would receive goes through the model of that provider's documented prompt cache
(lynkr/providers/cache_model.py). Printed per path: the share of each turn's input tokens read from
the cache, and the share over turns 3+ — with Lynkr's breakpoints (the default) and without them
(`provider_call: {prompt_cache: {breakpoints: false}}`), where a client that sets no markers of
its own gets no cache at all. Nothing is sent anywhere: replay stubs the upstream.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lynkr.cli.replay import replay_sessions  # noqa: E402

UPSTREAMS = {
    "anthropic": {"MODEL_PROVIDER": "anthropic", "ANTHROPIC_UPSTREAM_URL": "http://127.0.0.1:9"},
    "openrouter (Claude)": {"MODEL_PROVIDER": "openrouter", "OPENROUTER_ENDPOINT": "http://127.0.0.1:9/v1",
                            "OPENROUTER_API_KEY": "x", "OPENROUTER_MODEL": "anthropic/claude-sonnet-4.5"},
    "bedrock": {"MODEL_PROVIDER": "bedrock", "AWS_BEDROCK_ENDPOINT": "http://127.0.0.1:9", "AWS_BEDROCK_API_KEY": "x"},
}
CLIENTS = ("anthropic", "chat", "responses")


def _without_breakpoints(tmp: Path) -> Path:
    text = (ROOT / "pipelines" / "default.yaml").read_text()
    marker = '      to: "{{ lynkr.target }}"\n'
    assert marker in text, "default.yaml's provider_call changed; update this script"
    out = tmp / "no-breakpoints.yaml"
    out.write_text(text.replace(marker, marker + "      prompt_cache: {breakpoints: false}\n"))
    return out


def _row(session: dict) -> tuple[list[float], float | None]:
    caches = [r["cache"] for r in session["requests"]]
    later = caches[2:] if len(caches) > 2 else caches[1:]
    total = sum(c["total"] for c in later)
    return [c["share"] for c in caches], (sum(c["read"] for c in later) / total if total else None)


def main(fixtures: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        plain = _without_breakpoints(Path(tmp))
        os.environ["LYNKR_STATE_DIR"] = str(Path(tmp) / "state")
        print(f"{'session':<32}{'client':<11}{'upstream':<21}{'turns 3+ (2+ for 2 turns)':>27}{'no breakpoints':>16}"
              "   per turn")
        for upstream, env in UPSTREAMS.items():
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                for client in CLIENTS:
                    a = replay_sessions(fixtures, str(ROOT / "pipelines" / "default.yaml"), str(plain),
                                        as_proto=client)
                    for sa, sb in zip(a["a"]["sessions"], a["b"]["sessions"]):
                        turns, later = _row(sa)
                        _, later_b = _row(sb)
                        name = "/".join(Path(sa["session"]).parts[-2:])
                        print(f"{name:<32}{client:<11}{upstream:<21}{100 * later:>26.1f}%{100 * later_b:>15.1f}%   "
                              + " ".join(f"{100 * t:.0f}%" for t in turns))
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT.parent / "shared" / "fixtures"))
