"""`lynkr run | validate | explain | stages | providers | report` — the command line."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from lynkr import __version__
from lynkr.errors import ConfigError

__all__ = ["main"]

COMMANDS: dict[str, "callable"] = {}


def command(fn):
    COMMANDS[fn.__name__.removeprefix("cmd_").replace("_", "-")] = fn
    return fn


def print_report(args, produce, fmt, *, about: str = "") -> dict | None:
    """`produce()`'s report printed as JSON (`--json`) or through `fmt`; a pipeline that does not
    load, or an input that cannot be read, is one ✗ line on stderr and None."""
    try:
        report = produce()
    except ConfigError as e:
        print(f"✗ {e}", file=sys.stderr)
        return None
    except (OSError, ValueError) as e:
        print(f"✗ {about}{e}", file=sys.stderr)
        return None
    print(json.dumps(report, indent=2, default=str) if args.json else fmt(report))
    return report


# -- run -------------------------------------------------------------------------------------

@command
def cmd_run(args) -> int:
    """Serve a pipeline, or every pipeline of a folder."""
    _load_dotenv()
    from lynkr.config.lynkr_env import hot_reload
    from lynkr.server.run import serve_forever

    path = pipeline_path(args.pipeline, folder_ok=True)
    if path is None:
        return 1
    for line in lynkr_env_warnings(path):
        logging.getLogger("lynkr").warning(line)
    return serve_forever(path, port=args.port, host=args.host, workers=args.workers,
                         watch=not args.no_reload and hot_reload(os.environ), log_level=args.log_level,
                         log_format=args.log_format)


def shipped_pipelines() -> Path:
    """The pipelines that come with Lynkr: lynkr/pipelines/ in the wheel, pipelines/ of a checkout."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "pipelines"
    return installed if installed.is_dir() else package.parent / "pipelines"


def pipeline_path(arg: str, folder_ok: bool = False) -> str | None:
    """A pipeline argument as a file to load: a path as given, else a shipped pipeline by name
    (`lynkr run default`, `lynkr validate demo`); a folder of pipelines where `folder_ok`
    (`lynkr run pipelines/`). Prints the one-line error and returns None when neither is usable."""
    p = Path(arg)
    if p.is_dir() and not folder_ok:
        print(f"✗ {arg}: is a directory; give a pipeline file (e.g. {arg.rstrip('/')}/default.yaml)", file=sys.stderr)
        return None
    if p.exists() or os.sep in arg or "/" in arg:
        return arg
    shipped = shipped_pipelines() / (arg if arg.endswith((".yaml", ".yml")) else arg + ".yaml")
    return str(shipped) if shipped.is_file() else arg


def _load_dotenv() -> None:
    if Path(".env").is_file():
        from dotenv import load_dotenv
        load_dotenv(".env", override=False)


# Variables this server reads itself, outside any pipeline template.
_OWN_VARIABLES = ("LYNKR_ADMIN_TOKEN", "LYNKR_DB_SERVICE", "LYNKR_EMBED_CACHE_DIR", "LYNKR_EMBED_MODEL_PATH",
                  "LYNKR_EMBED_PRECISION", "LYNKR_LOAD_PLUGINS", "LYNKR_WORKER", "TIKTOKEN_CACHE_DIR")


def lynkr_env_warnings(pipeline: str, dotenv: str = ".env") -> list[str]:
    """One line naming the Node.js Lynkr variables set here that mean nothing to this server, and
    one per `.env` name that is no variable at all (with the one it probably meant)."""
    import re

    from lynkr.config.lynkr_env import ignored, unknown_in_dotenv

    out = []
    unused = ignored(os.environ)
    if unused:
        out.append(f"Node.js Lynkr variable{'s' if len(unused) > 1 else ''} with no meaning here, ignored: "
                   f"{', '.join(unused)} (docs/lynkr-env.md)")
    if Path(dotenv).is_file():
        from dotenv import dotenv_values
        try:
            text = Path(pipeline).read_text(encoding="utf-8")
        except OSError:
            text = ""
        used = set(re.findall(r"\benv\.([A-Za-z_][A-Za-z0-9_]*)", text)) | set(_OWN_VARIABLES)
        for name, guess in unknown_in_dotenv(dotenv_values(dotenv), used):
            out.append(f"{dotenv}: {name} is not a Lynkr variable{f' ({guess})' if guess else ''}; it is ignored")
    return out


# -- validate --------------------------------------------------------------------------------

@command
def cmd_validate(args) -> int:
    """Check pipeline files, or folders of them (for CI in a GitOps repo): exit 0 when all are valid."""
    from lynkr.config.folder import load_front, pipeline_files

    _load_dotenv()     # validate what `run` would serve: a Lynkr .env decides the providers
    failed = 0
    for arg in args.pipelines:
        path = pipeline_path(arg, folder_ok=True)
        if path is None:
            failed += 1
            continue
        if not Path(path).is_dir():
            failed += not _validate_file(path, arg, args.load_stages)
            continue
        files = pipeline_files(path)
        ok = all([_validate_file(f, f, args.load_stages) for f in files])
        # What `lynkr run FOLDER` checks across its files (the front pipeline, keys' pipelines).
        if ok and not _print_errors(load_front, path):
            ok = False
        if ok:
            print(f"✓ {arg}: {len(files)} pipelines served together")
        failed += not ok
    return 1 if failed else 0


def _validate_file(path: str, arg: str, load_stages: bool) -> bool:
    from lynkr.config import load_config
    from lynkr.engine.pipeline import build_pipeline

    def build():
        cfg = load_config(path, load_stages=load_stages)
        asyncio.run(build_pipeline(cfg, dry_run=True).aclose())
        return cfg
    cfg = _print_errors(build)
    if cfg is not None:
        print(f"✓ {arg}: pipeline '{cfg.name}' ({len(cfg.data['stages'])} stages, hash {cfg.hash})")
    return cfg is not None


def _print_errors(fn, *args):
    """fn(*args), or None with each of its ConfigError's problems printed as one line."""
    try:
        return fn(*args)
    except ConfigError as e:
        for err in e.all():
            print(f"✗ {err.one()}", file=sys.stderr)
        return None


# -- explain ---------------------------------------------------------------------------------

@command
def cmd_explain(args) -> int:
    """Dry-run a request through a pipeline: the plan, which stages run and why, what each changed."""
    from lynkr.cli.explain import explain, format_report

    _load_dotenv()
    path = pipeline_path(args.pipeline)
    if path is None:
        return 1
    report = print_report(args, lambda: asyncio.run(explain(path, args.request, args.against)), format_report,
                          about=f"{args.request}: ")
    return 0 if report is not None else 1


# -- stages ----------------------------------------------------------------------------------

@command
def cmd_stages(args) -> int:
    """List every registered stage with its options and defaults (from their schemas)."""
    from lynkr.config.registry import PROVIDER_KINDS, load_registry, provider_class
    from lynkr.config.schema import assemble_schema

    registry = load_registry()
    if args.schema:
        schema = assemble_schema({n: i.cls for n, i in registry.items()},
                                 {kind: provider_class(kind) for kind in PROVIDER_KINDS})
        text = json.dumps(schema, indent=2, sort_keys=False) + "\n"
        if args.schema == "-":
            sys.stdout.write(text)
        else:
            Path(args.schema).write_text(text)
        return 0
    for name in sorted(registry):
        info = registry[name]
        cls = info.cls
        print(f"{name}  [{cls.status}{', ' + info.source if info.source != 'builtin' else ''}]")
        if cls.summary:
            print(f"    {cls.summary}")
        _print_options(cls.options_schema, "    ")
        print()
    return 0


@command
def cmd_providers(args) -> int:
    """List every provider kind with its options and defaults (from their schemas)."""
    from lynkr.config.registry import PROVIDER_KINDS, provider_class
    from lynkr.providers.base import COMMON_OPTIONS

    print("every kind  (a `providers:` entry: `kind:` and these options, then its kind's own)")
    _print_options({"properties": COMMON_OPTIONS}, "    ", skip=("kind",))
    print()
    for kind in sorted(PROVIDER_KINDS):
        cls = provider_class(kind)
        print(f"{kind}  [{PROVIDER_KINDS[kind]}]")
        if cls.summary:
            print(f"    {cls.summary}")
        _print_options(cls.options_schema, "    ", skip=tuple(COMMON_OPTIONS))
        print()
    return 0


def _print_options(schema: dict, indent: str, skip: tuple = ()) -> None:
    """One line an option (type, default, required, description); an object's own options below it."""
    for opt, spec in (schema.get("properties") or {}).items():
        if opt in skip:
            continue
        typ = spec.get("type") or ("enum" if "enum" in spec else "any")
        if isinstance(typ, list):
            typ = "|".join(typ)
        if "enum" in spec:
            typ += " (" + ", ".join(map(str, spec["enum"])) + ")"
        default = f" = {json.dumps(spec['default'])}" if "default" in spec else ""
        req = " (required)" if opt in (schema.get("required") or ()) else ""
        desc = f" — {spec['description']}" if spec.get("description") else ""
        print(f"{indent}{opt}: {typ}{default}{req}{desc}")
        if spec.get("type") == "object" and spec.get("properties"):
            _print_options(spec, indent + "    ")


# -- report ----------------------------------------------------------------------------------

@command
def cmd_report(args) -> int:
    """Built-in telemetry reports, or your own SQL (read-only; works while the server runs)."""
    from lynkr.telemetry.reports import run_report_cli

    return run_report_cli(args)


def add_log_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "info"))
    p.add_argument("--log-format", choices=["text", "json"], default=os.environ.get("LYNKR_LOG_FORMAT", "text"),
                   help="every log line as text or as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no line per request (warnings and errors still show)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lynkr", description="A configuration-as-code LLM proxy.")
    p.add_argument("--version", action="version", version=f"lynkr {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help=cmd_run.__doc__)
    r.add_argument("pipeline")
    r.add_argument("--port", type=int, help="overrides server.port")
    r.add_argument("--host", help="overrides server.host")
    r.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    r.add_argument("--no-reload", action="store_true", help="do not watch the pipeline file")
    add_log_arguments(r)

    v = sub.add_parser("validate", help=cmd_validate.__doc__)
    v.add_argument("pipelines", nargs="+", help="pipeline files, or folders served as `lynkr run FOLDER` would")
    v.add_argument("--load-stages", action="store_true",
                   help="import the pipelines' own stage files (./x.py:Class) to check their options; "
                        "off by default: their code would run")

    e = sub.add_parser("explain", help=cmd_explain.__doc__)
    e.add_argument("pipeline")
    e.add_argument("request", help="a request body as JSON, or a fixture file {path, headers, body}")
    e.add_argument("--json", action="store_true")
    e.add_argument("--against", action="append", metavar="QUESTION",
                   help="a question with a stored answer (repeatable): would the semantic cache serve it "
                        "for this request, and if not, which rule refused it on which tokens")

    s = sub.add_parser("stages", help=cmd_stages.__doc__)
    s.add_argument("--schema", nargs="?", const="-", help="write the assembled pipeline JSON Schema (to a file or -)")

    sub.add_parser("providers", help=cmd_providers.__doc__)

    rep = sub.add_parser("report", help=cmd_report.__doc__)
    from lynkr.telemetry.reports import add_report_arguments
    add_report_arguments(rep)

    for name, fn in COMMANDS.items():
        if name not in sub.choices:
            extra = sub.add_parser(name, help=fn.__doc__)
            if hasattr(fn, "configure"):
                fn.configure(extra)
    return p


def main(argv: list[str] | None = None) -> int:
    _load_plugin_commands()
    args = _parser().parse_args(argv)
    from lynkr.server.logs import configure_logging
    configure_logging(getattr(args, "log_level", "info"), getattr(args, "log_format", "text"),
                      getattr(args, "quiet", False))
    try:
        return COMMANDS[args.command](args) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _load_plugin_commands() -> None:
    """Commands other modules add (replay lives with the savings tools)."""
    for mod in ("lynkr.cli.replay", "lynkr.cli.memory", "lynkr.cli.demo", "lynkr.cli.keys"):
        try:
            __import__(mod)
        except ImportError:
            pass


if __name__ == "__main__":
    sys.exit(main())
