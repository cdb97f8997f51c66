"""The Exchange: one request's state as it moves through a pipeline (design.md §3)."""
from __future__ import annotations

import itertools
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping

from lynkr.body import Body

__all__ = ["Exchange", "Response", "Route", "StageEvent", "new_request_id"]


def new_request_id() -> str:
    # A random per-process prefix and a counter: unique like a uuid4 (the prefix is redrawn in
    # every forked worker), without a urandom syscall per request.
    return f"req_{_id_prefix}{next(_id_counter):012x}"


def _new_id_prefix() -> None:
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = uuid.uuid4().hex[:12], itertools.count()


_new_id_prefix()
os.register_at_fork(after_in_child=_new_id_prefix)


@dataclass(slots=True)
class Route:
    """Where provider_call sends the request: a provider name from the pipeline and a model id."""

    provider: str
    model: str
    tier: str | None = None
    reason: str = ""

    @classmethod
    def parse(cls, target: str, **kw: Any) -> "Route":
        # The first colon splits, so Ollama tags such as qwen2.5-coder:7b keep theirs.
        provider, sep, model = target.partition(":")
        if not sep or not provider or not model:
            raise ValueError(f"expected 'provider:model', got {target!r}")
        return cls(provider=provider, model=model, **kw)

    @staticmethod
    def problem(target: Any, providers: Mapping) -> tuple[str, str | None] | None:
        """(what is wrong, a hint) when `target` is not `provider:model` of one of `providers`."""
        from lynkr.errors import did_you_mean

        provider, sep, model = str(target).partition(":")
        if not sep or not provider or not model:
            return f"'{target}' is not 'provider:model'", None
        if provider not in providers:
            return f"unknown provider '{provider}'", (did_you_mean(provider, providers) or (
                f"providers defined: {', '.join(providers)}" if providers else "no providers are defined"))
        return None

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(slots=True)
class Response:
    """What a cache or provider_call produced.

    Exactly one of `message` (a complete canonical Anthropic message dict), `events` (an async
    iterator of canonical Anthropic-style stream events) or `error` is set.  `raw` is an
    optimisation for same-protocol passthrough: bytes already in the client's protocol, with
    `raw_protocol` naming it; renderers use it only when it matches the client.
    """

    status: int = 200
    message: dict | None = None
    events: AsyncIterator[dict] | None = None
    error: Any = None                       # a lynkr.errors.ProxyError
    headers: dict[str, str] = field(default_factory=dict)
    raw: AsyncIterator[bytes] | None = None
    raw_protocol: str | None = None
    raw_content_type: str | None = None
    source: str = "provider"                # provider | cache:exact | cache:semantic | stage:<id>
    usage: dict = field(default_factory=dict)   # provider-reported usage, filled when known
    final: dict | None = None               # the complete message once a stream has finished
    first_byte_at: float | None = None      # perf_counter of the upstream's first byte
    upstream_done_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status < 400

    @property
    def streaming(self) -> bool:
        return self.events is not None or self.raw is not None


@dataclass(slots=True)
class StageEvent:
    """What one stage did to one request; the engine fills timing and outcome."""

    stage_id: str
    uses: str
    phase: str = "run"                       # run | after
    outcome: str = "ok"                      # ok | skipped | error | failed_open | responded
    duration_us: int = 0
    tokens_before: int | None = None
    tokens_after: int | None = None
    # Text pairs whose token counts are computed later by the telemetry writer, so no
    # stage counts tokens on the request path.
    measure: tuple[str, str] | None = None
    detail: dict = field(default_factory=dict)
    # Keys of `detail` whose values quote the request's or answer's text (a score's evidence):
    # `lynkr explain` shows them, telemetry stores them only with `telemetry.content: true`.
    quotes: tuple[str, ...] = ()


@dataclass(slots=True, eq=False)
class Exchange:
    id: str
    client: str                              # anthropic | openai_chat | openai_responses
    request: dict                            # canonical; stages change it
    original: dict                           # the client's body as received; never changed
    headers: Mapping[str, str] = field(default_factory=dict)
    session: str | None = None
    vars: dict = field(default_factory=dict)
    route: Route | None = None
    response: Response | None = None
    events: list[StageEvent] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    ts: float = field(default_factory=time.time)
    stream: bool = False
    dry_run: bool = False                    # `lynkr explain`: no upstream calls
    pipeline: Any = None                     # the Pipeline serving this request
    # The canonical request as first parsed. Stages change `request` copy-on-write (replace the
    # list or dict they change, never mutate shared parts), so this stays the savings baseline.
    baseline: dict | None = None
    ran: list = field(default_factory=list)  # (plan step, its run event) of the steps that ran, for `after`
    upstream_request: dict | None = None     # the body provider_call sent, for token accounting
    error: BaseException | None = None       # what sent the request to an on_error stage
    # The client's own credential headers, kept apart from `headers` (which telemetry and stages
    # see) and out of repr; only an Anthropic provider with no key of its own uses them.
    client_auth: dict | None = field(default=None, repr=False)
    # Response interceptors, applied by provider_call to what the upstream answered:
    # `async hook(x, response, resend) -> Response`, where `resend(request_body)` calls the same
    # provider and model again. A stage installs one to answer tool calls the proxy itself added.
    interceptors: list = field(default_factory=list)
    # The StageEvent of the stage now running (its `run`, or its `after` hook), set by the engine.
    stage_event: StageEvent | None = None
    # The serialised JSON of the request's parts (lynkr.body): ask it, never keep a part's JSON elsewhere.
    body: Body = field(default_factory=Body, repr=False)
    # The request's OpenTelemetry spans (lynkr.telemetry.tracing.RequestTrace) when `telemetry.otlp`
    # is set, else None: told of each stage's start (`stage(ev)`) and each upstream attempt
    # (`upstream(provider, kind, model)`, `upstream_failed(err)`, `inject(headers)`).
    trace: Any = field(default=None, repr=False)

    @classmethod
    def new(cls, client: str, request: dict, original: dict | None = None, **kw: Any) -> "Exchange":
        return cls(
            id=kw.pop("id", None) or new_request_id(),
            client=client,
            request=request,
            baseline=request,
            original=original if original is not None else request,
            stream=bool(request.get("stream")),
            **kw,
        )

    def start_stage(self, stage_id: str, uses: str) -> StageEvent:
        """A new event for a stage about to run, recorded and made `stage_event` (the engine does
        this; so does code that runs one stage by hand)."""
        ev = self.stage_event = StageEvent(stage_id, uses)
        self.events.append(ev)
        if self.trace is not None:
            self.trace.stage(ev)
        return ev

    def event(self, stage_id: str) -> StageEvent | None:
        """The latest event of a stage, by id (for tests and tools; a stage uses `stage_event`)."""
        for ev in reversed(self.events):
            if ev.stage_id == stage_id:
                return ev
        return None
