"""OpenTelemetry traces of the requests, opt-in: `telemetry: {otlp: {endpoint: URL}}` (docs/tracing.md).

Each request is one span (kind SERVER) with the GenAI semantic conventions' attributes (operation,
provider, requested and answering model, usage with the prompt cache's reads and writes) and
Lynkr's own (tier, cache outcome, pipeline, the client key's name); under it one span per stage
that ran, named by the stage's id (outcome, tokens saved), and under the stage that called the
upstream one span per attempt (kind CLIENT), whose W3C `traceparent` goes upstream with the call.
A client's `traceparent` makes the request span its child.

What the request path does is small. The request span and each upstream attempt's span start on
the event loop, because their ids must exist before the upstream is called; a stage's start is a
time noted in a list. Everything else (the stages' spans, the tokens a saving stage measured, the
attributes, ending the spans) is done by this module's thread once the request finished (after the
last byte of a stream), and the SDK's BatchSpanProcessor exports in batches from its own thread over
OTLP/HTTP (protobuf). A collector that is down costs dropped spans (the SDK logs them), never a
request.

The engine imports this module only when `otlp` is set, so without it nothing of OpenTelemetry is
loaded. The packages are the `otel` extra (`pip install 'lynkr[otel]'`).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from urllib.parse import urlsplit

from lynkr.kit.tokens import count_texts

try:
    from opentelemetry import trace as otel
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as e:          # the `otel` extra is not installed
    _MISSING: ImportError | None = e
else:
    _MISSING = None

__all__ = ["Tracing", "start_tracing", "traces_url", "PROVIDER_NAMES"]

log = logging.getLogger("lynkr.telemetry")

# gen_ai.provider.name's well-known values, by provider kind; another kind is named as it is.
PROVIDER_NAMES = {"anthropic": "anthropic", "openai": "openai", "bedrock": "aws.bedrock",
                  "gemini": "gcp.gemini", "ollama": "ollama"}

# Finished requests are turned into spans this often (a wake-up per request would make the
# thread contend for the GIL once per request, as the telemetry writer found).
FINISH_INTERVAL_S = 0.2
MAX_PENDING = 10_000


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL: a bare collector address (`http://collector:4318`) gets the
    signal's path `/v1/traces`; a URL with a path is used as it is."""
    parts = urlsplit(endpoint)
    return endpoint.rstrip("/") + "/v1/traces" if parts.path in ("", "/") else endpoint


def start_tracing(cfg, *, worker: int = 0) -> "Tracing":
    """The tracer of one server process, from the loaded pipeline's (lynkr.config.LoadedConfig)
    `telemetry.otlp`; a ConfigError at its line when the `otel` extra is not installed."""
    if _MISSING is not None:
        raise cfg.error(f"the OpenTelemetry packages are not installed ({_MISSING}): "
                        f"pip install 'lynkr[otel]'", ("telemetry", "otlp"))
    return Tracing(cfg.data["telemetry"]["otlp"], worker=worker)


class Tracing:
    def __init__(self, otlp: dict, *, worker: int = 0):
        from lynkr import __version__

        resource = Resource.create({"service.name": otlp.get("service_name") or "lynkr",
                                    "service.version": __version__, "lynkr.worker": worker})
        exporter = OTLPSpanExporter(endpoint=traces_url(otlp["endpoint"]), headers=otlp.get("headers") or None,
                                    timeout=float(otlp.get("timeout_s", 10)))
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("lynkr", __version__)
        self.propagator = TraceContextTextMapPropagator()
        self.dropped = 0
        self._pending: deque = deque()
        self._wake = threading.Event()
        self._done = threading.Event()
        self._stop = False
        self._lock = threading.Lock()      # one finisher at a time: the thread, or flush()
        self._thread = threading.Thread(target=self._loop, name="lynkr-tracing", daemon=True)
        self._thread.start()

    # -- on the event loop ---------------------------------------------------------------------
    def start(self, x) -> None:
        """The request's span, a child of the client's `traceparent` when it sent one."""
        parent = self.propagator.extract(x.headers) if "traceparent" in x.headers else None
        span = self.tracer.start_span("chat", context=parent, kind=SpanKind.SERVER)
        x.trace = RequestTrace(self, span)

    def finish(self, x) -> None:
        """The request is finished (for a stream, its last byte is out): its spans are made and
        ended by this module's thread. Read now what the telemetry writer lets go of."""
        trace = x.trace
        if trace is None:
            return
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            trace.span.end()
            return
        original = x.original if isinstance(x.original, dict) else {}
        self._pending.append((x, trace, original.get("model"), time.time_ns()))

    # -- from any thread ---------------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> bool:
        """The finished requests' spans made and exported now (tests, shutdown). Blocks: never call
        it on the event loop."""
        self._finish_pending()
        return self.provider.force_flush(int(timeout * 1000))

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(30)
        self._finish_pending()
        self.provider.shutdown()

    # -- the thread ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(FINISH_INTERVAL_S)
            self._wake.clear()
            self._finish_pending()

    def _finish_pending(self) -> None:
        with self._lock:
            items = []
            try:
                while True:
                    items.append(self._pending.popleft())
            except IndexError:
                pass
            if not items:
                return
            measured = _count_measures([t for _x, t, _m, _e in items])
            for x, trace, model, end_ns in items:
                try:
                    trace.end(x, model, end_ns, measured)
                except Exception:
                    log.exception("tracing: the spans of %s failed", x.id)


def _count_measures(traces: list) -> dict:
    """Tokens of the text pairs saving stages measured (the telemetry writer counts the same texts
    for its rows; the counts are remembered, so a text is tokenized once), by text."""
    texts = {t for trace in traces for ev, _t, _s in trace.stages if ev.measure is not None
             and ev.tokens_before is None for t in ev.measure}
    if not texts:
        return {}
    texts = list(texts)
    return dict(zip(texts, count_texts(texts)))


class RequestTrace:
    """One request's spans while it runs (`Exchange.trace`): the engine notes each stage's start,
    the provider call each upstream attempt."""

    __slots__ = ("tracing", "span", "stages", "attempts", "kind")

    def __init__(self, tracing: Tracing, span):
        self.tracing = tracing
        self.span = span
        self.stages: list = []        # [StageEvent, start ns, its span once an upstream call needed it]
        self.attempts: list = []      # [span, end ns or None]
        self.kind: str | None = None  # the provider kind of the last attempt

    def stage(self, ev) -> None:
        self.stages.append([ev, time.time_ns(), None])

    def upstream(self, provider: str, kind: str, model: str | None) -> None:
        """An upstream attempt starts: its span (under the stage making it) ends the one before."""
        now = time.time_ns()
        if self.attempts and self.attempts[-1][1] is None:
            self.attempts[-1][1] = now
        name = PROVIDER_NAMES.get(kind, kind)
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": name, "gen_ai.system": name,
                 "lynkr.provider": provider}
        if model:
            attrs["gen_ai.request.model"] = model
        span = self.tracing.tracer.start_span(f"chat {model}" if model else "chat", context=self._parent(),
                                              kind=SpanKind.CLIENT, attributes=attrs, start_time=now)
        self.attempts.append([span, None])
        self.kind = kind

    def upstream_failed(self, err) -> None:
        """The attempt under way failed (`err`: a ProxyError)."""
        if not self.attempts:
            return
        att = self.attempts[-1]
        att[1] = time.time_ns()
        span = att[0]
        span.set_attribute("error.type", str(getattr(err, "type", None) or type(err).__name__))
        span.set_attribute("http.response.status_code", int(getattr(err, "status", 0) or 0))
        span.set_status(Status(StatusCode.ERROR, str(getattr(err, "message", err))[:200]))

    def inject(self, headers: dict) -> dict:
        """`headers` with the W3C trace context of the upstream attempt under way."""
        if not self.attempts:
            return headers
        out = dict(headers)
        self.tracing.propagator.inject(out, context=otel.set_span_in_context(self.attempts[-1][0]))
        return out

    def _parent(self):
        """The context of the stage running now (its span made early, with the start noted), or
        of the request when no stage runs."""
        if not self.stages:
            return otel.set_span_in_context(self.span)
        rec = self.stages[-1]
        if rec[2] is None:
            ev = rec[0]
            rec[2] = self.tracing.tracer.start_span(ev.stage_id, context=otel.set_span_in_context(self.span),
                                                    start_time=rec[1])
        return otel.set_span_in_context(rec[2])

    # -- the tracing thread ------------------------------------------------------------------------
    def end(self, x, requested_model: str | None, end_ns: int, measured: dict) -> None:
        parent = otel.set_span_in_context(self.span)
        saved_total = 0
        for ev, start_ns, span in self.stages:
            if span is None:
                span = self.tracing.tracer.start_span(ev.stage_id, context=parent, start_time=start_ns)
            saved_total += _stage_attributes(span, ev, measured)
            span.end(end_time=start_ns + ev.duration_us * 1000)
        for span, ended in self.attempts:
            span.end(end_time=ended or _upstream_end(x, end_ns))
        span = self.span
        span.update_name(f"chat {requested_model}" if requested_model else "chat")
        span.set_attributes(_request_attributes(x, requested_model, self.kind))
        if saved_total:
            span.set_attribute("lynkr.tokens_saved", saved_total)
        resp = x.response
        if resp is not None and resp.error is not None and resp.status >= 500:
            span.set_status(Status(StatusCode.ERROR, str(getattr(resp.error, "message", ""))[:200]))
        span.end(end_time=end_ns)
        x.trace = None       # the spans hold nothing of the request any longer


def _upstream_end(x, end_ns: int) -> int:
    """When the answering attempt ended: a whole answer's last read, else (a stream) the request's end."""
    resp = x.response
    done = resp.upstream_done_at if resp is not None else None
    if done is None:
        return end_ns
    return min(end_ns, time.time_ns() - int((time.perf_counter() - done) * 1e9))


def _stage_attributes(span, ev, measured: dict) -> int:
    before, after = ev.tokens_before, ev.tokens_after
    if before is None and ev.measure is not None:
        before, after = measured.get(ev.measure[0]), measured.get(ev.measure[1])
    attrs = {"lynkr.stage.id": ev.stage_id, "lynkr.stage.uses": ev.uses, "lynkr.stage.phase": ev.phase,
             "lynkr.stage.outcome": ev.outcome}
    saved = 0
    if before is not None and after is not None:
        saved = before - after
        attrs.update({"lynkr.stage.tokens_before": before, "lynkr.stage.tokens_after": after,
                      "lynkr.stage.tokens_saved": saved})
    error = ev.detail.get("error") if ev.outcome in ("error", "failed_open") else None
    if error:
        attrs["error.type"] = str(error)[:200]
        span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
    span.set_attributes(attrs)
    return saved if ev.phase == "run" else 0


def _request_attributes(x, requested_model: str | None, kind: str | None) -> dict:
    v = x.vars
    resp = x.response
    attrs = {"gen_ai.operation.name": "chat", "lynkr.request.id": x.id, "lynkr.client": x.client,
             "lynkr.stream": bool(x.stream), "lynkr.cache": str(v.get("cache") or "miss")}
    if kind is not None:
        attrs["gen_ai.provider.name"] = attrs["gen_ai.system"] = PROVIDER_NAMES.get(kind, kind)
    if requested_model:
        attrs["gen_ai.request.model"] = str(requested_model)
    pipeline = x.pipeline
    for key, value in (("lynkr.pipeline", pipeline.name if pipeline is not None else None),
                       ("lynkr.pipeline.hash", pipeline.hash if pipeline is not None else None),
                       ("lynkr.tier", v.get("tier")), ("lynkr.score", v.get("score")),
                       ("lynkr.key", v.get("key")), ("lynkr.team", v.get("team")),
                       ("lynkr.route", str(x.route) if x.route is not None else None),
                       ("lynkr.fallback", v.get("fallback"))):
        if value is not None:
            attrs[key] = value if isinstance(value, (int, float, bool)) else str(value)
    if resp is None:
        return attrs
    attrs["http.response.status_code"] = int(resp.status)
    if resp.error is not None:
        attrs["error.type"] = str(getattr(resp.error, "type", None) or resp.status)
    message = resp.final or resp.message
    model = (message.get("model") if isinstance(message, dict) else None) or v.get("upstream_model")
    if model:
        attrs["gen_ai.response.model"] = str(model)
    if isinstance(message, dict) and message.get("id"):
        attrs["gen_ai.response.id"] = str(message["id"])
    if isinstance(message, dict) and message.get("stop_reason"):
        attrs["gen_ai.response.finish_reasons"] = [str(message["stop_reason"])]
    attrs.update(usage_attributes(resp.usage or {}))
    return attrs


def usage_attributes(usage: dict) -> dict:
    """The canonical (Anthropic-shaped) usage as GenAI attributes. Anthropic's `input_tokens`
    leaves out the prompt cache's reads and writes; the convention's input count includes them."""
    if not usage:
        return {}
    read = int(usage.get("cache_read_input_tokens") or 0)
    write = int(usage.get("cache_creation_input_tokens") or 0)
    out = {"gen_ai.usage.input_tokens": int(usage.get("input_tokens") or 0) + read + write,
           "gen_ai.usage.output_tokens": int(usage.get("output_tokens") or 0)}
    if "cache_read_input_tokens" in usage:
        out["gen_ai.usage.cache_read.input_tokens"] = read
    if "cache_creation_input_tokens" in usage:
        out["gen_ai.usage.cache_creation.input_tokens"] = write
    return out
