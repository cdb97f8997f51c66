"""The pipeline's JSON Schema: a base for the file, assembled with every stage's options and every
provider kind's options.

`schemas/pipeline.schema.json` in the repository is this assembly for the built-in stages and
all provider kinds (`lynkr stages --schema` writes it; a test keeps it current).
"""
from __future__ import annotations

from typing import Mapping

from lynkr.config.registry import PROVIDER_KINDS as KINDS

__all__ = ["BASE_SCHEMA", "assemble_schema", "PROVIDER_KINDS"]

PROVIDER_KINDS = list(KINDS)

# A folder of pipelines (`lynkr run pipelines/`): the one(s) a key or team may use, its default first.
_PIPELINE = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
             "description": "The pipeline (by name) its requests go to, or a list: the first by default, any by "
                            "/p/NAME/ (docs/teams.md); omitted = the front pipeline, any by path."}
_LIMITS = {
    "type": "object",
    "additionalProperties": False,
    "description": "Per-key (or per-team) limits; each omitted one is unlimited.",
    "properties": {
        "rpm": {"type": "integer", "minimum": 0, "description": "Requests admitted in any 60 s window."},
        "tpm": {"type": "integer", "minimum": 0, "description": "Provider-reported tokens charged in any 60 s window."},
        "usd_per_day": {"type": "number", "minimum": 0, "description": "USD spent per UTC day."},
        "usd_per_month": {"type": "number", "minimum": 0, "description": "USD spent per UTC calendar month."},
        "max_concurrent": {"type": "integer", "minimum": 1, "description": "Requests in flight at once."},
    },
}

_STAGE_ID = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_-]*$"}

_MCP_SERVER = {
    "type": "object", "additionalProperties": False,
    "description": "One MCP server: a stdio `command` (run by Lynkr, only from this file) or a streamable HTTP `url`.",
    "properties": {
        "command": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
                    "description": "Program and arguments of a stdio server, e.g. [python, server.py]."},
        "env": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]},
                "description": "The server's whole environment (plus HOME, PATH, SHELL, TERM, USER, LOGNAME); "
                               "nothing else of Lynkr's is passed on."},
        "cwd": {"type": "string", "description": "Working directory of a stdio server."},
        "url": {"type": "string", "pattern": "^https?://", "description": "Endpoint of a streamable HTTP server."},
        "allow": {"type": "array", "items": {"type": "string"}, "uniqueItems": True,
                  "description": "Only these of the server's tools are offered (default: all)."},
        "start_timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 20,
                            "description": "Seconds to start the server and list its tools."},
    },
}

_MCP = {
    "type": "object", "additionalProperties": False,
    "description": "MCP servers whose tools the `mcp` stage offers to the model and runs in the proxy (docs/mcp.md).",
    "properties": {
        "servers": {"type": "object", "additionalProperties": _MCP_SERVER,
                    "propertyNames": {"pattern": "^[A-Za-z0-9-]+(_[A-Za-z0-9-]+)*$", "maxLength": 40},
                    "description": "NAME: {command: [prog, arg...], env: {...}, cwd: ...} | {url: http...}; "
                                   "its tools become mcp__NAME__tool (NAME: letters, digits, - and single _)."},
        "catalogue": {"enum": ["full", "compact"], "default": "full",
                      "description": "full: every tool's schema on every turn; compact: one mcp_call tool "
                                     "listing each tool's name and one line."},
        "timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 30,
                      "description": "Seconds one tool call may take."},
        "max_steps": {"type": "integer", "minimum": 1, "maximum": 50, "default": 8,
                      "description": "Continuations the proxy sends in one turn before it ends the turn as it stands."},
        "max_result_chars": {"type": "integer", "minimum": 100, "maximum": 2000000, "default": 100000,
                             "description": "A tool result longer than this is cut, with a note saying so."},
    },
}

_OTLP = {
    "type": "object", "additionalProperties": False, "required": ["endpoint"],
    "description": "OpenTelemetry traces of every request, exported over OTLP/HTTP (docs/tracing.md); "
                   "needs pip install 'lynkr[otel]'. Read when the server starts.",
    "properties": {
        "endpoint": {"type": "string", "pattern": r"^https?://[^\s/?#]+([/?#]\S*)?$",
                     "x-expected": "an http(s) URL: the collector (http://collector:4318, /v1/traces is added) "
                                   "or its full traces URL",
                     "description": "an http(s) URL: the collector (http://collector:4318, /v1/traces is added) "
                                    "or its full traces URL"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "sent with every export (a vendor's API key)"},
        "service_name": {"type": "string", "minLength": 1, "default": "lynkr",
                         "description": "the spans' service.name"},
        "timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 10,
                      "description": "seconds one export may take"},
    },
}

BASE_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://lynkr.dev/schemas/pipeline.schema.json",
    "title": "Lynkr pipeline",
    "type": "object",
    "required": ["version", "stages"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": 1, "description": "Pipeline file format version."},
        "name": {"type": "string", "description": "Shown in telemetry and reports; defaults to the file name."},
        "description": {"type": "string"},
        "server": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "host": {"type": "string", "default": "127.0.0.1"},
                "port": {"type": "integer", "minimum": 0, "maximum": 65535, "default": 8081},
                "api_keys": {"type": "array", "items": {"type": "string"},
                             "description": "Client keys accepted in x-api-key / Authorization: Bearer; empty = no client auth."},
                "admin_token": {"type": "string", "description": "Token for /v1/admin/*, /dashboard and report endpoints (or LYNKR_ADMIN_TOKEN)."},
                "max_body_bytes": {"type": "integer", "minimum": 1024, "default": 33554432},
                "max_messages": {"type": "integer", "minimum": 1, "default": 10000},
                "max_concurrent_per_key": {"type": "integer", "minimum": 1},
                "max_connections": {"type": "integer", "minimum": 1,
                                    "description": "Open client connections in all; more are closed as they are accepted. Default: the fd limit less a reserve."},
                "max_connections_per_peer": {"type": "integer", "minimum": 1, "default": 256,
                                             "description": "Open connections from one address."},
                "max_in_flight_per_peer": {"type": "integer", "minimum": 1, "default": 256,
                                           "description": "Client requests in progress from one address (429 beyond)."},
                "timeouts": {"type": "object", "additionalProperties": False,
                             "description": "Client-side deadlines: a request's headers once begun, its body once the headers are in (408), an idle keep-alive connection.",
                             "properties": {"headers_s": {"type": "number", "exclusiveMinimum": 0, "default": 10},
                                            "body_s": {"type": "number", "exclusiveMinimum": 0, "default": 60},
                                            "idle_s": {"type": "number", "exclusiveMinimum": 0, "default": 60}}},
                "allowed_hosts": {"type": "array", "items": {"type": "string"},
                                  "description": "Host header names served (\"*\" = any). Default: loopback names when bound to loopback (refuses DNS rebinding), any otherwise. LYNKR_ALLOWED_HOSTS adds more."},
                "allowed_origins": {"type": "array", "items": {"type": "string"},
                                    "description": "Browser Origins served; `http://host:*` matches any port, \"*\" any origin. Default: localhost origins only. LYNKR_ORIGINS adds more (like OLLAMA_ORIGINS)."},
                "shed": {"type": "object", "additionalProperties": False,
                         "description": "Load shedding by measured pressure: past a bound, new client requests get 529 (Anthropic) / 503 (OpenAI) and /health/ready 503.",
                         "properties": {"enabled": {"type": "boolean", "default": True, "description": "Shed load at all."},
                                        "max_in_flight": {"type": "integer", "minimum": 1, "default": 2048,
                                                          "description": "Client requests in flight in this process (streams included)."},
                                        "max_loop_lag_ms": {"type": "number", "minimum": 1, "default": 500,
                                                            "description": "Event-loop lag (decaying peak, sampled every 50 ms)."},
                                        "retry_after_s": {"type": "number", "minimum": 0, "default": 2,
                                                          "description": "retry-after sent with a shed request."}}},
                "shutdown_grace_s": {"type": "number", "minimum": 0, "default": 30},
                "ping_interval_s": {"type": "number", "minimum": 0.01, "default": 10},
            },
        },
        "keys": {
            "type": "object",
            "description": "Client keys by name (docs/teams.md): who may call, within which limits, which models.",
            "propertyNames": {"pattern": "^[A-Za-z0-9_.@-]+$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "secret_sha256": {"type": "string", "description": "sha256 of the key, 64 hex digits (`lynkr keys new`)."},
                    "secret": {"type": "string", "description": "The key itself, from the environment: \"{{ env.ALICE_KEY }}\"."},
                    "team": {"type": "string", "description": "A name under `teams:`; its limits apply too."},
                    "limits": _LIMITS,
                    "models": {"type": "array", "items": {"type": "string"},
                               "description": "Globs over provider:model this key may use; omitted = all."},
                    "pipeline": _PIPELINE,
                    "description": {"type": "string"},
                },
            },
        },
        "teams": {
            "type": "object",
            "description": "Teams by name: limits shared by all their keys.",
            "additionalProperties": {"type": "object", "additionalProperties": False,
                                     "properties": {"limits": _LIMITS, "pipeline": _PIPELINE,
                                                    "description": {"type": "string"}}},
        },
        "providers": {
            "type": "object",
            "description": "Upstreams by name. `kind` picks the adapter.",
            "additionalProperties": {
                "type": "object",
                "required": ["kind"],
                # Each kind's options schema (its adapter's `options_schema`) is laid over this
                # entry by assemble_schema: the load checks every option of the kinds a file uses.
                "properties": {"kind": {"enum": PROVIDER_KINDS}},
                "additionalProperties": True,
            },
        },
        "tiers": {
            "type": "object",
            "additionalProperties": False,
            "properties": {t: {"type": ["string", "null"], "description": f"provider:model for {t}"}
                           for t in ("SIMPLE", "MEDIUM", "COMPLEX", "REASONING")},
        },
        "models": {
            "type": "object",
            "description": "Per-model facts: prices per million tokens, context window, and aliases a client may send.",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": True,
                "properties": {
                    "input": {"type": "number", "minimum": 0},
                    "output": {"type": "number", "minimum": 0},
                    "cache_read": {"type": "number", "minimum": 0},
                    "cache_write": {"type": "number", "minimum": 0},
                    "context_window": {"type": "integer", "minimum": 1},
                    "max_output": {"type": "integer", "minimum": 1},
                    "route": {"type": "string", "description": "provider:model a client's model name maps to"},
                },
            },
        },
        "stages": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "uses"],
                "additionalProperties": False,
                "properties": {
                    "id": _STAGE_ID,
                    "uses": {"type": "string", "description": "A registered stage name, or ./path.py:Class"},
                    "with": {"type": "object"},
                    "needs": {"type": "array", "items": _STAGE_ID, "uniqueItems": True},
                    "if": {"type": "string", "description": "jinja2 expression over x.vars; the stage runs when true"},
                    "on_error": _STAGE_ID,
                    "enabled": {"type": "boolean", "default": True,
                                "description": "false leaves the stage out of the plan (a load-time switch; "
                                               "`lynkr explain` says what turned it off)"},
                    "description": {"type": "string"},
                },
            },
        },
        "telemetry": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean", "default": True},
                "path": {"type": "string", "default": ".lynkr/telemetry.duckdb"},
                "content": {"type": "boolean", "default": False, "description": "Store prompt and response text."},
                "flush_interval_s": {"type": "number", "minimum": 0.01, "default": 2.0,
                                     "description": "Seconds between two batches of rows (sooner once batch_size rows wait)."},
                "batch_size": {"type": "integer", "minimum": 1, "default": 5000},
                "lake": {
                    "type": "object", "additionalProperties": False, "required": ["catalog", "data_path"],
                    "description": "Fleet telemetry: every replica writes its rows into one DuckLake, and "
                                   "`lynkr report --config` reads them all (docs/reports.md).",
                    "properties": {
                        "catalog": {"type": "string", "pattern": "^postgres:",
                                    "description": "postgres:<libpq DSN> of the DuckLake catalog database, e.g. "
                                                   "\"postgres:host=db dbname=lake user=lynkr password=…\""},
                        "data_path": {"type": "string", "minLength": 1,
                                      "description": "Where the Parquet files go: a folder every replica mounts, or s3://…"},
                        "spool_path": {"type": "string",
                                       "description": "Local folder for batches while the catalog is unreachable "
                                                      "(default: lake-spool/ beside telemetry.path)."},
                        "spool_max_mb": {"type": "number", "minimum": 1, "default": 256,
                                         "description": "Past this, new batches are dropped (and counted) until the catalog returns."},
                    },
                },
                "otlp": _OTLP,
            },
        },
        "mcp": _MCP,
        "dashboard": {"type": "object", "additionalProperties": False,
                      "properties": {"enabled": {"type": "boolean", "default": False}}},
        "state_dir": {"type": "string", "default": ".lynkr"},
        "state": {
            "type": "object", "additionalProperties": False, "required": ["redis"],
            "description": "State shared by the replicas of a fleet (docs/cache.md \"Shared across replicas\"): "
                           "the exact and semantic caches, key and team counters, breakers, session tier floors. "
                           "Unset: every process keeps its own (the default).",
            "properties": {
                "redis": {"type": "string", "minLength": 1,
                          "description": "redis://[:password@]host:port/db, rediss://… (TLS), unix:///path.sock; "
                                         "valkey:// and valkeys:// for Valkey."},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 10, "default": 0.5,
                              "description": "Longest wait for one Redis command; past it the process uses its "
                                             "local state and reconnects in the background."},
                "key_prefix": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$", "default": "lynkr",
                               "description": "Prefix of every key, so several fleets can share one Redis."},
            },
        },
        "vars": {"type": "object",
                 "description": "Values rendered first and shared by every other template as {{ vars.NAME }}."},
    },
}


def assemble_schema(stage_classes: Mapping[str, type], provider_classes: Mapping[str, type] | None = None) -> dict:
    """The base schema with each stage's `with:` validated by that stage's own options schema, and
    each `providers:` entry by its kind's (`provider_classes`: kind -> adapter class)."""
    import copy

    schema = copy.deepcopy(BASE_SCHEMA)
    item = schema["properties"]["stages"]["items"]
    item["allOf"] = [
        {
            "if": {"properties": {"uses": {"const": name}}, "required": ["uses"]},
            "then": {"properties": {"with": cls.options_schema}},
        }
        for name, cls in sorted(stage_classes.items())
    ]
    if provider_classes:
        entry = schema["properties"]["providers"]["additionalProperties"]
        entry["allOf"] = [
            {"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]}, "then": cls.options_schema}
            for kind, cls in sorted(provider_classes.items())
        ]
    return schema
