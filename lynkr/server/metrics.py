"""`GET /metrics`: Prometheus text exposition of what this process served.

Counters are plain ints in dicts, updated on the event loop when a request finishes (the
engine's `on_finish` hook: a few dict increments, no locks) and, for token estimates, in the
telemetry writer's thread as it turns each request into rows (the writer's `on_rows` hook:
tokens are counted there, never on the request path). Each dict has exactly one writing thread,
and /metrics only reads them, so nothing needs a lock. Reloads and breaker states are read from
the engine when scraped.

With `lynkr run --workers N` each process keeps its own counters and a scrape reaches one of
them; scrape each worker's port or run one worker per port when that matters.
Open like /health (no prompt text, only names and counts); keep the port private.
"""
from __future__ import annotations

import asyncio
import time
from bisect import bisect_left

from aiohttp import web

from lynkr.server.provider_health import key_pools, served

__all__ = ["setup", "Metrics", "Histogram"]

# Seconds. A request spans milliseconds (a cache hit) to minutes (a long generation).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# What the proxy adds is meant to be well under a millisecond to a few milliseconds.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class Histogram:
    """Cumulative buckets as Prometheus wants them, kept as per-bucket counts until rendered."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)   # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.counts[bisect_left(self.bounds, v)] += 1
        self.sum += v
        self.count += 1

    def samples(self, name: str, labels: dict) -> list[str]:
        out, acc = [], 0
        for bound, n in zip(self.bounds + (float("inf"),), self.counts):
            acc += n
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            out.append(_sample(f"{name}_bucket", {**labels, "le": le}, acc))
        out.append(_sample(f"{name}_sum", labels, self.sum))
        out.append(_sample(f"{name}_count", labels, self.count))
        return out


_USAGE_KINDS = (("input", "input_tokens"), ("output", "output_tokens"),
                ("cache_read", "cache_read_input_tokens"), ("cache_write", "cache_creation_input_tokens"))
_LATENCY_VARS = (("total", "latency_ms"), ("upstream", "upstream_ms"), ("overhead", "overhead_ms"), ("ttfb", "ttfb_ms"))


def _inc(d: dict, key, n=1) -> None:
    d[key] = d.get(key, 0) + n


class Metrics:
    def __init__(self, engine):
        self.engine = engine
        self.started = time.time()
        # Event loop only.
        self.requests: dict[tuple, int] = {}       # (pipeline, client, provider, model, status)
        self.errors: dict[tuple, int] = {}         # (pipeline, provider, model, status)
        self.cache: dict[tuple, int] = {}          # (pipeline, outcome)
        self.tiers: dict[tuple, int] = {}          # (pipeline, tier)
        self.usage: dict[tuple, int] = {}          # (provider, model, kind)
        self.stage_runs: dict[tuple, int] = {}     # (pipeline, stage, uses, outcome)
        self.text_calls: dict[tuple, int] = {}     # (provider, model, "recovered" | rejection reason)
        self.latency: dict[str, dict[str, Histogram]] = {"total": {}, "upstream": {}, "overhead": {}, "ttfb": {}}
        self._histograms: dict[str, tuple] = {}    # pipeline -> ((var, Histogram), ...) of the four above
        self.reload_events: dict[str, int] = {}    # reload | reload_failed, as the listeners saw them
        self.http: dict[tuple, int] = {}           # (route, status) of every response, refusals included
        self.keys: dict[tuple, int] = {}           # (key, team, status): names from the config, bounded
        self.key_tokens: dict[tuple, int] = {}     # (key, kind)
        self.key_refusals: dict | None = None      # security's (key, outcome) counts, set by setup
        self.last_reload_ts: float | None = None
        # Writer thread only.
        self.tokens: dict[tuple, int] = {}         # (pipeline, kind: client | upstream | saved)
        self.stage_tokens: dict[tuple, int] = {}   # (pipeline, stage, uses, kind: before | after | saved)
        self._hooked_writer = None
        self._known: tuple = (None, frozenset())     # (pipeline, the model names its config knows)

    # -- hooks -------------------------------------------------------------------------------
    def on_finish(self, x) -> None:
        """A finished request (event loop): cheap increments only."""
        self._hook_writer()
        v = x.vars
        resp = x.response
        pipeline = x.pipeline.name if x.pipeline is not None else ""
        provider = x.route.provider if x.route else ""
        model = x.route.model if x.route else ""
        if model == "*":    # provider:* sends the client's own model
            model = x.request.get("model") or model
        model = self.model_label(x.pipeline, model)
        status = resp.status if resp is not None else 0
        if resp is not None and resp.error is not None and status < 400:
            status = getattr(resp.error, "status", 500)
        _inc(self.requests, (pipeline, x.client, provider, model, str(status)))
        if status >= 400:
            _inc(self.errors, (pipeline, provider, model, str(status)))
        if v.get("cache"):
            _inc(self.cache, (pipeline, str(v["cache"])))
        if v.get("tier"):
            _inc(self.tiers, (pipeline, str(v["tier"])))
        usage = resp.usage if resp is not None else None
        client_key = v.get("key")
        if client_key:
            _inc(self.keys, (client_key, v.get("team") or "", str(status)))
        if usage:
            for kind, key in _USAGE_KINDS:
                n = usage.get(key)
                if isinstance(n, int) and n:
                    _inc(self.usage, (provider, model, kind), n)
                    if client_key:
                        _inc(self.key_tokens, (client_key, kind), n)
        for ev in x.events:
            if ev.phase == "run":
                _inc(self.stage_runs, (pipeline, ev.stage_id, ev.uses, ev.outcome))
        text_calls = v.get("text_tool_calls")
        if text_calls:
            if text_calls.get("calls"):
                _inc(self.text_calls, (provider, model, "recovered"), text_calls["calls"])
            for r in text_calls.get("rejected") or ():
                _inc(self.text_calls, (provider, model, r.get("reason") or "unknown"))
        hists = self._histograms.get(pipeline) or self._add_histograms(pipeline)
        for var, h in hists:
            ms = v.get(var)
            if isinstance(ms, (int, float)):
                h.observe(ms / 1000.0)

    def model_label(self, pipeline, model) -> str:
        """`model` when the pipeline's config names it, else "other": label values come from the
        config, never from a client (20,000 made-up model names would be 20,000 series, and a
        name may carry anything)."""
        known = self._known
        if known[0] is not pipeline:
            known = self._known = (pipeline, _config_models(pipeline))
        return model if model in known[1] or not model else "other"

    def _add_histograms(self, pipeline: str) -> tuple:
        made = []
        for name, var in _LATENCY_VARS:
            h = self.latency[name][pipeline] = Histogram(OVERHEAD_BUCKETS if name == "overhead" else LATENCY_BUCKETS)
            made.append((var, h))
        self._histograms[pipeline] = tuple(made)
        return self._histograms[pipeline]

    def on_rows(self, row: dict, events: list[dict]) -> None:
        """A request's telemetry rows (writer thread): the token estimates."""
        pipeline = row.get("pipeline") or ""
        failed = (row.get("status") or 200) >= 400
        client, upstream = row.get("tokens_client") or 0, row.get("tokens_upstream") or 0
        _inc(self.tokens, (pipeline, "client"), client)
        _inc(self.tokens, (pipeline, "upstream"), upstream)
        if not failed:
            _inc(self.tokens, (pipeline, "saved"), max(0, client - upstream))
        for ev in events:
            before, after = ev.get("tokens_before"), ev.get("tokens_after")
            if ev.get("phase") != "run" or before is None or after is None:
                continue
            key = (pipeline, ev.get("stage_id") or "", ev.get("uses") or "")
            _inc(self.stage_tokens, key + ("before",), before)
            _inc(self.stage_tokens, key + ("after",), after)
            _inc(self.stage_tokens, key + ("saved",), before - after)

    def on_engine_event(self, event: str, pipeline) -> None:
        _inc(self.reload_events, event)
        if event == "reload":
            self.last_reload_ts = time.time()

    def _hook_writer(self) -> None:
        # The writer is made when the engine starts, which may be after the app was created.
        w = self.engine.writer
        if w is not self._hooked_writer:
            hooks = getattr(w, "on_rows", None)
            if hooks is not None and self.on_rows not in hooks:
                hooks.append(self.on_rows)
            self._hooked_writer = w

    # -- exposition --------------------------------------------------------------------------
    def _mcp_families(self, family) -> None:
        servers = _mcp_snapshot(self.engine)
        family("lynkr_mcp_server_up", "gauge", "MCP server run by the proxy: 1 ready, 0 not (idle, starting, backoff).",
               [_sample("lynkr_mcp_server_up", {"server": n}, int(s["state"] == "ready")) for n, s in servers.items()])
        family("lynkr_mcp_server_starts_total", "counter", "Times the proxy started each MCP server (restarts included).",
               [_sample("lynkr_mcp_server_starts_total", {"server": n}, s["starts"]) for n, s in servers.items()])
        family("lynkr_mcp_server_failures_total", "counter", "Failed starts, crashes and timeouts per MCP server.",
               [_sample("lynkr_mcp_server_failures_total", {"server": n}, s["failures"]) for n, s in servers.items()])
        family("lynkr_mcp_tool_calls_total", "counter",
               "MCP tool calls the proxy ran, by server and outcome (ok, tool_error, timeout, down, failed).",
               [_sample("lynkr_mcp_tool_calls_total", {"server": n, "outcome": o}, c)
                for n, s in servers.items() for o, c in sorted(s["calls"].items())])

    def _state_families(self, family) -> None:
        state = (getattr(self.engine, "shared", None) or {}).get("state")
        if state is None:
            return
        family("lynkr_shared_state_up", "gauge", "Redis (state.redis) answers: 1; 0 while this process uses its local state.",
               [_sample("lynkr_shared_state_up", {}, int(state.up))])
        family("lynkr_shared_state_errors_total", "counter", "Redis commands that failed (unreachable, timed out, refused), by operation.",
               [_sample("lynkr_shared_state_errors_total", {"op": op}, n) for op, n in sorted(state.errors.items())])
        family("lynkr_shared_state_fallbacks_total", "counter",
               "Operations answered from this process's local state instead of Redis, by operation.",
               [_sample("lynkr_shared_state_fallbacks_total", {"op": op}, n) for op, n in sorted(state.fallbacks.items())])
        family("lynkr_shared_state_reconnects_total", "counter", "Times Redis answered again after being unavailable.",
               [_sample("lynkr_shared_state_reconnects_total", {}, state.reconnects)])

    def render(self) -> str:
        e = self.engine
        p = e.current
        out: list[str] = []

        def family(name, kind, help_, samples):
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)

        family("lynkr_requests_total", "counter", "Requests answered, by pipeline, client protocol, provider, model and status.",
               [_sample("lynkr_requests_total", dict(zip(("pipeline", "client", "provider", "model", "status"), k)), n)
                for k, n in sorted(self.requests.items())])
        family("lynkr_http_responses_total", "counter",
               "Every HTTP response by route and status, including requests refused before the pipeline (401, 413, 429, 529).",
               [_sample("lynkr_http_responses_total", {"route": k[0], "status": k[1]}, n)
                for k, n in sorted(self.http.items())])
        family("lynkr_key_requests_total", "counter", "Requests answered per client key (its name in keys:), team and status.",
               [_sample("lynkr_key_requests_total", dict(zip(("key", "team", "status"), k)), n)
                for k, n in sorted(self.keys.items())])
        family("lynkr_key_usage_tokens_total", "counter", "Provider-reported tokens per client key and kind.",
               [_sample("lynkr_key_usage_tokens_total", {"key": k[0], "kind": k[1]}, n)
                for k, n in sorted(self.key_tokens.items())])
        family("lynkr_key_refusals_total", "counter",
               "Requests refused at the door per client key: unauthorized (key \"(none)\": missing, unknown or two keys), "
               "refused_rate (rpm, tpm, max_concurrent), refused_budget (usd_per_day, usd_per_month).",
               [_sample("lynkr_key_refusals_total", {"key": k[0], "outcome": k[1]}, n)
                for k, n in sorted((self.key_refusals or {}).items())])
        family("lynkr_errors_total", "counter", "Requests answered with an error status (>= 400).",
               [_sample("lynkr_errors_total", dict(zip(("pipeline", "provider", "model", "status"), k)), n)
                for k, n in sorted(self.errors.items())])
        for name, help_ in (("total", "Whole request, first byte in to last byte out"),
                            ("upstream", "The upstream call"),
                            ("ttfb", "Time to the first byte from the upstream"),
                            ("overhead", "What the proxy added: total minus upstream")):
            metric = f"lynkr_{'request' if name == 'total' else name}_duration_seconds"
            samples = []
            for pipeline, h in sorted(self.latency[name].items()):
                samples += h.samples(metric, {"pipeline": pipeline})
            family(metric, "histogram", help_ + " (seconds).", samples)
        family("lynkr_cache_requests_total", "counter", "Requests by cache outcome (exact, semantic, miss).",
               [_sample("lynkr_cache_requests_total", {"pipeline": k[0], "outcome": k[1]}, n)
                for k, n in sorted(self.cache.items())])
        family("lynkr_cache_hits_total", "counter", "Requests answered from a cache.",
               [_sample("lynkr_cache_hits_total", {"pipeline": k[0], "kind": k[1]}, n)
                for k, n in sorted(self.cache.items()) if k[1] in ("exact", "semantic", "hit")])
        family("lynkr_tier_requests_total", "counter", "Requests by routing tier.",
               [_sample("lynkr_tier_requests_total", {"pipeline": k[0], "tier": k[1]}, n)
                for k, n in sorted(self.tiers.items())])
        family("lynkr_usage_tokens_total", "counter", "Provider-reported tokens, by provider, model and kind.",
               [_sample("lynkr_usage_tokens_total", {"provider": k[0], "model": k[1], "kind": k[2]}, n)
                for k, n in sorted(self.usage.items())])
        tokens = dict(self.tokens)
        family("lynkr_tokens_total", "counter",
               "Estimated (cl100k) tokens: client = what clients sent, upstream = what went upstream, saved = the difference.",
               [_sample("lynkr_tokens_total", {"pipeline": k[0], "kind": k[1]}, n) for k, n in sorted(tokens.items())])
        stage_tokens = dict(self.stage_tokens)
        family("lynkr_stage_tokens_total", "counter", "Estimated tokens before and after each stage, and saved by it.",
               [_sample("lynkr_stage_tokens_total", {"pipeline": k[0], "stage": k[1], "uses": k[2], "kind": k[3]}, n)
                for k, n in sorted(stage_tokens.items())])
        family("lynkr_stage_runs_total", "counter", "Stage runs by outcome (ok, skipped, responded, error, failed_open).",
               [_sample("lynkr_stage_runs_total", {"pipeline": k[0], "stage": k[1], "uses": k[2], "outcome": k[3]}, n)
                for k, n in sorted(self.stage_runs.items())])
        family("lynkr_text_tool_calls_total", "counter",
               "Tool calls a model wrote as text (text_tool_calls): recovered, or rejected by reason "
               "(undeclared, schema, bad_arguments, empty_name, unclosed, unparseable).",
               [_sample("lynkr_text_tool_calls_total", {"provider": k[0], "model": k[1], "outcome": k[2]}, n)
                for k, n in sorted(self.text_calls.items())])
        breakers = _breaker_labels(_breaker_snapshot(e), lambda m: self.model_label(p, m))
        family("lynkr_breaker_state", "gauge", "Circuit breaker per provider:model: 0 closed, 1 half-open, 2 open.",
               [_sample("lynkr_breaker_state", k, BREAKER_STATES.get(b.get("state"), 0)) for k, b in breakers])
        family("lynkr_breaker_opens_total", "counter", "Times each breaker opened.",
               [_sample("lynkr_breaker_opens_total", k, b.get("opens", 0)) for k, b in breakers])
        self._mcp_families(family)
        pools = [({"provider": name, "key": m["key"]}, m) for name, members in sorted(key_pools(e).items())
                 for m in members]
        family("lynkr_upstream_key_available", "gauge",
               "Each key of a provider's pool (masked: its last 4 characters): 1 serving, 0 benched after a 429/401/403.",
               [_sample("lynkr_upstream_key_available", k, int(m["state"] == "ok")) for k, m in pools])
        family("lynkr_upstream_key_attempts_total", "counter", "Upstream attempts sent with each key of a pool.",
               [_sample("lynkr_upstream_key_attempts_total", k, m["served"]) for k, m in pools])
        family("lynkr_upstream_key_benched_total", "counter", "Times each key of a pool was benched.",
               [_sample("lynkr_upstream_key_benched_total", k, m["benched"]) for k, m in pools])
        self._state_families(family)
        family("lynkr_pipeline_reloads_total", "counter", "Successful hot reloads of the pipeline file.",
               [_sample("lynkr_pipeline_reloads_total", {}, getattr(e, "reloads", 0))])
        family("lynkr_pipeline_reload_failures_total", "counter", "Reloads refused (invalid file); the old pipeline kept serving.",
               [_sample("lynkr_pipeline_reload_failures_total", {}, getattr(e, "reload_failures", 0))])
        family("lynkr_pipeline_info", "gauge", "The pipelines being served (name and config hash; a folder's, one each).",
               [_sample("lynkr_pipeline_info", {"pipeline": q.name, "hash": q.hash}, 1) for q in served(e)])
        family("lynkr_pipeline_loaded_timestamp_seconds", "gauge", "When the current pipeline was loaded (unix time).",
               [_sample("lynkr_pipeline_loaded_timestamp_seconds", {}, getattr(p, "loaded_at", None) or self.started)]
               if p is not None else [])
        writer = e.writer
        family("lynkr_telemetry_rows_written_total", "counter", "Request rows the telemetry writer stored.",
               [_sample("lynkr_telemetry_rows_written_total", {}, getattr(writer, "written", 0))])
        family("lynkr_telemetry_rows_dropped_total", "counter", "Request rows lost (queue full or write failed).",
               [_sample("lynkr_telemetry_rows_dropped_total", {}, getattr(writer, "dropped", 0))])
        family("lynkr_telemetry_lake_spooled_rows", "gauge",
               "Request rows waiting in the local spool for the telemetry lake's catalog to return (this host's writer).",
               [_sample("lynkr_telemetry_lake_spooled_rows", {}, getattr(writer, "spooled", 0))])
        family("lynkr_telemetry_lake_failures_total", "counter",
               "Lake commits that failed (catalog or data path unreachable); each spooled its batch (this host's writer).",
               [_sample("lynkr_telemetry_lake_failures_total", {}, getattr(writer, "lake_failures", 0))])
        family("lynkr_telemetry_pending_requests", "gauge", "Finished requests waiting for their rows (each holds its parsed request).",
               [_sample("lynkr_telemetry_pending_requests", {}, len(getattr(writer, "_pending", ())))])
        family("lynkr_telemetry_pending_requests_peak", "gauge", "The most finished requests that waited at once since start.",
               [_sample("lynkr_telemetry_pending_requests_peak", {}, getattr(writer, "pending_peak", 0))])
        return "\n".join(out) + "\n"


def _mcp_snapshot(engine) -> dict:
    pool = (getattr(engine, "shared", None) or {}).get("mcp_servers")
    return pool.snapshot() if pool is not None else {}


def _breaker_snapshot(engine) -> list[tuple[str, dict]]:
    b = (getattr(engine, "shared", None) or {}).get("provider_breakers")
    snap = getattr(b, "snapshot", None)
    if snap is None:
        return []
    try:
        return sorted(snap().items())
    except Exception:
        return []


def _config_models(pipeline) -> frozenset:
    from lynkr.server.client_routes import model_ids

    names = set(model_ids(pipeline))
    for entry in ((pipeline.config or {}).get("models") or {}).values() if pipeline is not None else ():
        aliases = entry.get("aliases") if isinstance(entry, dict) else None
        names.update(a for a in aliases or () if isinstance(a, str))
    return frozenset(names)


def _breaker_labels(breakers: list[tuple[str, dict]], label) -> list[tuple[dict, dict]]:
    """Breakers keyed by their labels, the models no config names merged into "other" (its worst
    state, its opens summed): one series per label set."""
    out: dict[tuple, dict] = {}
    for key, b in breakers:
        provider, _, model = str(key).partition(":")
        k = (provider, label(model))
        seen = out.get(k)
        if seen is None:
            out[k] = {"state": b.get("state"), "opens": b.get("opens", 0)}
        else:
            if BREAKER_STATES.get(b.get("state"), 0) > BREAKER_STATES.get(seen["state"], 0):
                seen["state"] = b.get("state")
            seen["opens"] += b.get("opens", 0)
    return [({"provider": p, "model": m}, b) for (p, m), b in sorted(out.items())]


_CONTROL = {c: "?" for c in range(32) if c != 10} | {127: "?"}


def _escape(v) -> str:
    # Label values are the config's names, but a name may still hold a control character: a NUL
    # or CR in the exposition breaks every scraper.
    return str(v).translate(_CONTROL).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample(name: str, labels: dict, value) -> str:
    if labels:
        name += "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"
    if isinstance(value, float):
        text = repr(value) if value == value and value not in (float("inf"), float("-inf")) else str(value)
    else:
        text = str(value)
    return f"{name} {text}"


async def get_metrics(request: web.Request) -> web.Response:
    text = request.app["metrics"].render()
    return web.Response(body=text.encode(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8",
                                                     "Cache-Control": "no-store"})


def _counting_middleware(m: Metrics):
    @web.middleware
    async def count_responses(request: web.Request, handler):
        info = request.match_info
        route = info.route.resource.canonical if info.route.resource is not None else "(unmatched)"
        try:
            resp = await handler(request)
        except web.HTTPException as e:
            _inc(m.http, (route, str(e.status)))
            raise
        except asyncio.CancelledError:     # the client went away mid-request
            _inc(m.http, (route, "499"))
            raise
        except Exception:
            _inc(m.http, (route, "500"))
            raise
        _inc(m.http, (route, str(resp.status)))
        return resp
    return count_responses


def setup(app: web.Application) -> None:
    engine = app["engine"]
    m = Metrics(engine)
    app["metrics"] = m
    m.key_refusals = app.get("key_refusals")
    # Outermost, so it also sees what other middlewares refuse (client keys, limits, shedding).
    app.middlewares.insert(0, _counting_middleware(m))
    hooks = getattr(engine, "on_finish", None)
    if hooks is not None:
        hooks.append(m.on_finish)
    engine.listeners.append(m.on_engine_event)
    app.router.add_get("/metrics", get_metrics)
