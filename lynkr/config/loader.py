"""Load a pipeline file: YAML → templates → JSON Schema → graph checks.

Every failure is a ConfigError naming the file, the YAML path and the line. The result is
plain data (a LoadedConfig); building stage objects is the engine's job.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import graphlib

import jsonschema
import orjson

from lynkr.errors import ConfigError, did_you_mean
from lynkr.redact import redact
from lynkr.exchange import Route
from lynkr.stage import Stage
from lynkr.config.registry import (PROVIDER_KINDS, load_path_stage, load_registry, provider_class, stage_path,
                                   unloaded_stage)
from lynkr.config.render import LazyLynkr, render_templates
from lynkr.config.keys import check_keys
from lynkr.config.schema import assemble_schema
from lynkr.config.yaml_lines import line_of, load_yaml_with_lines

__all__ = ["LoadedConfig", "load_config", "TIERS", "SECRET_KEYS"]

TIERS = ("SIMPLE", "MEDIUM", "COMPLEX", "REASONING")
# `catalog` (telemetry.lake): a connection string that holds the catalog's password.
SECRET_KEYS = {"secret", "api_key", "admin_token", "api_keys", "secret_access_key", "session_token", "aws_secret_access_key", "token",
               "catalog"}


@dataclass
class LoadedConfig:
    file: str
    data: dict
    lines: dict
    hash: str
    stage_classes: dict[str, type[Stage]] = field(default_factory=dict)   # stage id -> class
    edges: list[tuple[str, str, str]] = field(default_factory=list)   # (from, to, 'needs' | 'on_error')
    off: dict[str, str] = field(default_factory=dict)     # stage id -> why `enabled:` is false
    lynkr: object = None       # the LynkrEnv its templates read, when they read one

    @property
    def name(self) -> str:
        return self.data.get("name") or Path(self.file).stem

    def line(self, path) -> int | None:
        return line_of(self.lines, path)

    def error(self, message: str, path=(), hint: str | None = None) -> ConfigError:
        return ConfigError(message, file=self.file, line=self.line(path), path=path, hint=hint)


def redacted(value):
    """The config with secrets replaced, for hashing, `explain` and the admin endpoint."""
    if isinstance(value, dict):
        return {k: ("***" if k in SECRET_KEYS and v else redacted(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value


def load_config(path: str | Path, environ: Mapping[str, str] | None = None, text: str | None = None, *,
                load_stages: bool = True) -> LoadedConfig:
    """`load_stages=False` checks a project's stage files are where they may be but does not
    import them (their code would run): `lynkr validate` on a pull request."""
    from lynkr.redact import register_secrets, secrets_in_config

    file = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read pipeline: {e.strerror}", file=file) from None
    raw, lines = load_yaml_with_lines(text, file)
    if not isinstance(raw, dict):
        raise ConfigError("a pipeline file is a mapping with `version:` and `stages:`", file=file, line=1)
    lynkr = LazyLynkr(os.environ if environ is None else environ)
    data = render_templates(raw, lines, file, environ, lynkr)
    # Before validation: a schema error may quote a value, and keys must be masked from the first message on.
    register_secrets(secrets_in_config(data))
    cfg = LoadedConfig(file=file, data=data, lines=lines, hash="", lynkr=lynkr.value)

    # Resolve `uses` first, so the schema can include each stage's own options. Every error in
    # the file is collected (sorted by line, capped) so `lynkr validate` can report them all at once.
    errors: list[ConfigError] = []
    registry = load_registry()
    known = {name: info.cls for name, info in registry.items()}
    stages = data.get("stages") if isinstance(data.get("stages"), list) else []
    base_dir = Path(file).resolve().parent
    for i, st in enumerate(stages):
        if not isinstance(st, dict) or not isinstance(st.get("uses"), str):
            continue
        uses = st["uses"]
        if uses.startswith((".", "/")) and ".py:" in uses:
            try:
                if load_stages:
                    known[uses] = load_path_stage(uses, base_dir)
                else:
                    stage_path(uses, base_dir)
                    known[uses] = unloaded_stage(uses)
            except Exception as e:  # a user's file may raise anything while importing
                errors.append(cfg.error(f"cannot load stage {uses}: {e}", ("stages", i, "uses")))
        elif uses not in known:
            errors.append(cfg.error(f"unknown stage '{uses}'", ("stages", i, "uses"), did_you_mean(uses, registry)))

    schema_errors = _schema_errors(cfg, assemble_schema(known, _provider_classes(data)))
    errors += schema_errors
    for check in (_check_graph, _check_routing, _check_keys, _check_state):
        try:
            check(cfg, errors)
        except (KeyError, TypeError, AttributeError):
            if not schema_errors:     # a malformed file the schema already reported
                raise
    if errors:
        raise ConfigError.several(errors)
    cfg.stage_classes = {st["id"]: known[st["uses"]] for st in stages}
    cfg.off = _switched_off(cfg, raw.get("stages") or [])
    cfg.hash = hashlib.sha256(orjson.dumps(redacted(data), option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
    return cfg


def _check_keys(cfg: LoadedConfig, errors: list) -> None:
    try:
        check_keys(cfg)
    except ConfigError as e:
        errors.append(e)


def _check_state(cfg: LoadedConfig, errors: list) -> None:
    url = (cfg.data.get("state") or {}).get("redis")
    if isinstance(url, str):
        from lynkr.config.urls import redis_url_problem
        problem = redis_url_problem(url)
        if problem:
            errors.append(cfg.error(problem, ("state", "redis")))


def _switched_off(cfg: LoadedConfig, raw_stages: list) -> dict[str, str]:
    """Stages whose `enabled:` came out false, and why: the Lynkr switch that did it
    (`SEMANTIC_CACHE_ENABLED=false`) or the line that says so."""
    off = {}
    for i, st in enumerate(cfg.data["stages"]):
        if st.get("enabled", True) is not False:
            continue
        template = raw_stages[i].get("enabled") if i < len(raw_stages) else None
        why = cfg.lynkr.why_off.get(st["uses"]) if cfg.lynkr and "lynkr." in str(template) else None
        off[st["id"]] = why or f"enabled: false at {Path(cfg.file).name}:{cfg.line(('stages', i, 'enabled'))}"
    return off


def _provider_classes(data: dict) -> dict:
    """The adapter class of each provider kind the file uses (their options schemas)."""
    providers = data.get("providers")
    kinds = {p.get("kind") for p in providers.values() if isinstance(p, dict)} if isinstance(providers, dict) else ()
    return {k: provider_class(k) for k in kinds if isinstance(k, str) and k in PROVIDER_KINDS}


def _schema_errors(cfg: LoadedConfig, schema: dict) -> list[ConfigError]:
    validator = jsonschema.Draft202012Validator(schema)
    out: dict[tuple, ConfigError] = {}
    for err in validator.iter_errors(cfg.data):
        e = _schema_error(cfg, _leaf(err))
        out.setdefault((e.path, e.message), e)
    # A deeper error is the more specific one: drop an error whose path holds another's.
    found = list(out.values())
    return [e for e in found if not any(o is not e and len(o.path) > len(e.path) and o.path[:len(e.path)] == e.path
                                        for o in found)]


def _schema_error(cfg: LoadedConfig, err) -> ConfigError:
    path = tuple(err.absolute_path)
    hint = None
    message = err.message
    if err.validator == "additionalProperties":
        extra = [k for k in err.instance if k not in err.schema.get("properties", {})]
        if extra:
            path = path + (extra[0],)
            message = f"unknown option '{extra[0]}'"
            hint = did_you_mean(extra[0], err.schema.get("properties", {}))
            if hint is None:
                hint = "valid: " + ", ".join(sorted(err.schema.get("properties", {}))) if err.schema.get("properties") else None
    elif err.validator == "enum":
        hint = did_you_mean(str(err.instance), [str(v) for v in err.validator_value])
    elif err.validator == "pattern" and err.schema.get("x-expected"):
        message = f"{err.instance!r} is not {err.schema['x-expected']}"
    return cfg.error(redact(message), path, hint)     # a refused value is quoted back: a DSN's password too


def _leaf(err):
    while err.context:
        err = min(err.context, key=lambda e: -len(e.absolute_path))
    return err


def _check_graph(cfg: LoadedConfig, errors: list) -> None:
    stages = cfg.data["stages"]
    ids: dict[str, int] = {}
    edges: list[tuple[str, str, str]] = []
    for i, st in enumerate(stages):
        if st["id"] in ids:
            errors.append(cfg.error(f"duplicate stage id '{st['id']}' (first at stages[{ids[st['id']]}])",
                                    ("stages", i, "id")))
            continue
        ids[st["id"]] = i
    for i, st in enumerate(stages):
        for j, dep in enumerate(st.get("needs", [])):
            if dep not in ids:
                errors.append(cfg.error(f"needs unknown stage '{dep}'", ("stages", i, "needs", j), did_you_mean(dep, ids)))
                continue
            edges.append((dep, st["id"], "needs"))
        target = st.get("on_error")
        if target is not None:
            if target not in ids:
                errors.append(cfg.error(f"on_error names unknown stage '{target}'", ("stages", i, "on_error"),
                                        did_you_mean(target, ids)))
            elif target == st["id"]:
                errors.append(cfg.error("a stage cannot be its own on_error handler", ("stages", i, "on_error")))
            else:
                edges.append((st["id"], target, "on_error"))
    graph = graphlib.TopologicalSorter({sid: () for sid in ids})
    for u, v, _kind in edges:
        graph.add(v, u)
    try:
        graph.prepare()
    except graphlib.CycleError as e:
        names = e.args[1]            # each one before the next; the first repeated at the end
        errors.append(cfg.error("cycle: " + " → ".join(names), ("stages", ids[names[1]], "needs")))
    cfg.edges = edges


def _check_routing(cfg: LoadedConfig, errors: list) -> None:
    providers = cfg.data.get("providers") or {}
    tiers = cfg.data.get("tiers") or {}
    set_tiers = {k: v for k, v in tiers.items() if v}
    if set_tiers and len(set_tiers) != len(TIERS):
        missing = [t for t in TIERS if t not in set_tiers]
        errors.append(cfg.error(f"tier routing needs all four tiers; missing {', '.join(missing)}", ("tiers",)))
    targets = [(target, ("tiers", tier)) for tier, target in set_tiers.items()]
    targets += [(m["route"], ("models", name, "route")) for name, m in (cfg.data.get("models") or {}).items()
                if isinstance(m, dict) and m.get("route")]
    for target, path in targets:
        try:
            _check_target(cfg, target, providers, path)
        except ConfigError as e:
            errors.append(e)


def _check_target(cfg: LoadedConfig, target, providers: dict, path) -> None:
    problem = Route.problem(target, providers)
    if problem is not None:
        raise cfg.error(problem[0], path, problem[1])
