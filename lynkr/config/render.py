"""Render `{{ env.X }}` templates in every string of a parsed pipeline, with jinja2.

Rendering happens per string after parsing (not on the file text) so YAML lines and paths
stay exact, and a template can never inject YAML structure.
"""
from __future__ import annotations

import os
import re
from typing import Mapping

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lynkr.config.lynkr_env import LynkrEnv, LynkrEnvError, read_lynkr_env
from lynkr.errors import ConfigError, did_you_mean
from lynkr.config.yaml_lines import line_of

__all__ = ["render_templates", "jinja_env", "LazyLynkr", "FILTERS"]

_missing_attr = re.compile(r"has no attribute '([^']+)'")
_whole_expression = re.compile(r"\s*\{\{((?:(?!\}\}|\{\{).)*)\}\}\s*", re.S)


class _Env(dict):
    """`env` inside templates: os.environ, and a clear error for a variable that is not set."""


class LazyLynkr:
    """`lynkr` inside templates: what a Node.js Lynkr `.env` says (lynkr/config/lynkr_env.py),
    read on first use so a pipeline that never mentions it never fails on a Lynkr variable."""

    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ
        self.value = None

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if self.value is None:
            self.value = read_lynkr_env(self._environ)
        return getattr(self.value, name)


# The template vocabulary docs/engine.md documents, and nothing else: a pipeline is data, and
# `lynkr validate` renders pull requests' pipelines. Jinja's default globals (cycler, joiner,
# namespace, lipsum, range, dict) and its other filters are gone, and the sandbox refuses
# attribute paths like `x.__init__.__globals__` (SecurityError, a template error here).
FILTERS = ("default", "d", "lower", "upper", "trim", "replace", "int", "float", "string", "join", "length")


def _bool(v) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "on")


def jinja_env(**kw) -> jinja2.Environment:
    """The sandboxed environment every template and `if:` expression is compiled in."""
    env = ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=True, **kw)
    env.globals.clear()
    env.tests = {k: v for k, v in env.tests.items() if k in ("defined", "undefined", "none", "number", "string",
                                                               "in", "eq", "ne", "lt", "le", "gt", "ge")}
    env.filters = {k: env.filters[k] for k in FILTERS}
    env.filters["bool"] = _bool
    return env


_ENV = jinja_env(undefined=jinja2.StrictUndefined)


def render_templates(data, lines: dict, file: str | None, environ: Mapping[str, str] | None = None,
                     lynkr: LazyLynkr | None = None):
    """Render every string. The top-level `vars:` map is rendered first (with `env` only) and is
    then `vars` in every other template, so a value several options share is written once.
    A string that is one `{{ expression }}` whose value is a mapping or a list stands for that
    value (`providers: "{{ lynkr.providers }}"`)."""
    environ = os.environ if environ is None else environ
    ns = {"env": _Env(environ), "vars": {}, "lynkr": lynkr if lynkr is not None else LazyLynkr(environ)}
    if isinstance(data, dict) and isinstance(data.get("vars"), dict):
        ns["vars"] = _walk(data["vars"], ("vars",), lines, file, ns)
        return {k: (ns["vars"] if k == "vars" else _walk(v, (k,), lines, file, ns)) for k, v in data.items()}
    return _walk(data, (), lines, file, ns)


def _walk(value, path, lines, file, ns):
    if isinstance(value, dict):
        return {k: _walk(v, path + (k,), lines, file, ns) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, path + (i,), lines, file, ns) for i, v in enumerate(value)]
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        # `if:` expressions are compiled by the engine against request vars, not rendered here.
        if path and path[-1] == "if":
            return value
        try:
            whole = _whole_expression.fullmatch(value)
            if whole:
                native = _ENV.compile_expression(whole.group(1), undefined_to_none=False)(**ns)
                if isinstance(native, (dict, list)):
                    return native
            out = _ENV.from_string(value).render(ns)
        except LynkrEnvError as e:
            raise ConfigError(f"Lynkr variable {e}", file=file, line=line_of(lines, path), path=path,
                              hint="docs/lynkr-env.md lists every Lynkr variable and its values") from None
        except jinja2.UndefinedError as e:
            m = _missing_attr.search(str(e))
            name = m.group(1) if m else str(e)
            if re.search(r"\blynkr\.\s*" + re.escape(name) + r"\b", value):
                raise ConfigError(f"lynkr.{name} is not a Lynkr value", file=file, line=line_of(lines, path), path=path,
                                  hint=did_you_mean(name, LynkrEnv.__dataclass_fields__)) from None
            if re.search(r"\bvars\.\s*" + re.escape(name) + r"\b", value):
                raise ConfigError(f"vars.{name} is not defined", file=file, line=line_of(lines, path), path=path,
                                  hint=did_you_mean(name, ns["vars"]) or "define it under the top-level `vars:`") from None
            raise ConfigError(
                f"environment variable {name} is not set",
                file=file, line=line_of(lines, path), path=path,
                hint=f"set it, or write {{{{ env.{name} | default('…') }}}}",
            ) from None
        except jinja2.TemplateError as e:
            raise ConfigError(f"template error in {value!r}: {e}", file=file, line=line_of(lines, path), path=path) from None
        return _coerce(out, value)
    return value


def _coerce(rendered: str, template: str):
    # A value that is a single template ("{{ env.PORT }}") may stand for a number or boolean.
    if template.strip().startswith("{{") and template.strip().endswith("}}") and template.count("{{") == 1:
        low = rendered.strip().lower()
        if re.fullmatch(r"-?\d+", low):
            return int(low)
        if re.fullmatch(r"-?\d+\.\d*", low):
            return float(low)
        if low in ("true", "false"):
            return low == "true"
    return rendered

