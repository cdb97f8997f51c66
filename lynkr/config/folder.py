"""A folder of pipelines served by one proxy (`lynkr run pipelines/`): which file holds what the
whole process shares, and the checks across files (docs/teams.md, "A pipeline per project").

Each `*.yaml` / `*.yml` of the folder is a pipeline, named by its `name:` (else its file name);
names are unique. What belongs to the process, not to a pipeline — `server:` (one port, one set
of client keys at the door), `keys:` and `teams:` (a key's budget is one budget whichever pipeline
it calls), `telemetry:` (one file) and `dashboard:` — is written in one file only, the *front*
pipeline, which also serves the requests that name no pipeline. No file writes them: the front is
the first file by name.

    keys:
      alice: {secret_sha256: "…", pipeline: payments}        # or a list: [payments, search]
    teams:
      search-team: {pipeline: search}

A key's pipelines are its own `pipeline:`, else its team's; the first is where its requests go,
and `/p/NAME/…` may pick any of them. A key that names none uses the front pipeline and may pick
any by path.
"""
from __future__ import annotations

from pathlib import Path

from lynkr.config.keys import check_globs, key_pipelines
from lynkr.errors import ConfigError, did_you_mean

__all__ = ["PROCESS_SECTIONS", "pipeline_files", "front_of", "check_key_pipelines", "load_front"]

PROCESS_SECTIONS = ("server", "keys", "teams", "telemetry", "dashboard", "state")


def pipeline_files(folder: str | Path) -> list[str]:
    """The pipeline files of a folder (absolute paths), by name; not its subfolders. Symlinks are
    not resolved: a ConfigMap volume's files are links into a folder the kubelet replaces, and a
    pipeline is known (and its errors named) by the path a person sees."""
    return sorted(str(p.absolute()) for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix in (".yaml", ".yml") and not p.name.startswith("."))


def load_front(path: str | Path, environ=None):
    """The config whose `server:` a process serving `path` (a pipeline file or a folder) reads:
    the file's own, or the folder's front pipeline after the checks across its files."""
    from lynkr.config.loader import load_config

    if not Path(path).is_dir():
        cfg = load_config(path, environ)
        check_key_pipelines(cfg, {cfg.name: cfg})
        return cfg
    return front_of([load_config(f, environ) for f in pipeline_files(path)], folder=str(path))


def _written(cfg, section: str) -> bool:
    return (section,) in cfg.lines


def front_of(cfgs: list, folder: str = "the folder") -> object:
    """The pipeline that holds the process's sections (else the first); a ConfigError naming both
    files and lines when two pipelines are named alike or two write a process section."""
    if not cfgs:
        raise ConfigError(f"{folder}: no pipeline files (*.yaml, *.yml) to serve")
    names: dict[str, object] = {}
    for c in cfgs:
        if c.name in names:
            raise c.error(f"pipeline name '{c.name}' is also {names[c.name].file}'s; a folder's pipelines are picked "
                          "by name (keys.NAME.pipeline, /p/NAME/…), so each needs its own", ("name",),
                          "set a different `name:` in one of them")
        names[c.name] = c
    holders = [c for c in cfgs if any(_written(c, s) for s in PROCESS_SECTIONS)]
    if len(holders) > 1:
        a, b = holders[0], holders[1]
        raise _conflict(a, b)
    front = holders[0] if holders else cfgs[0]
    check_key_pipelines(front, {c.name: c for c in cfgs})
    return front


def _conflict(a, b) -> ConfigError:
    """The error for two files that both write process sections, naming the most precise path."""
    for s in PROCESS_SECTIONS:
        if _written(a, s) and _written(b, s):
            # The same setting in both (server.port twice) is named as such; else the section.
            both = [k for k in (a.data.get(s) or {}) if k in (b.data.get(s) or {})] if isinstance(a.data.get(s), dict) else []
            path = (s, both[0]) if both else (s,)
            return b.error(f"set here and in {a.file}:{a.line(path)}; {_ONE_FILE}", path,
                           f"keep it in {Path(a.file).name} only; docs/teams.md, a pipeline per project")
    sa = next(s for s in PROCESS_SECTIONS if _written(a, s))
    sb = next(s for s in PROCESS_SECTIONS if _written(b, s))
    return b.error(f"written here, and {sa}: in {a.file}:{a.line((sa,))}; {_ONE_FILE}", (sb,),
                   f"move {sb}: to {Path(a.file).name}; docs/teams.md, a pipeline per project")


_ONE_FILE = (f"when a folder is served, {', '.join(s + ':' for s in PROCESS_SECTIONS)} belong to one file "
             "(the front pipeline)")


def check_key_pipelines(front, pipelines: dict) -> None:
    """Every pipeline a key or team names is served; each model glob of a key that names pipelines
    matches a provider of one of them."""
    data = front.data
    teams = data.get("teams") or {}
    for section, who in (("teams", "team"), ("keys", "key")):
        for name, entry in (data.get(section) or {}).items():
            own = (entry or {}).get("pipeline")
            for i, p in enumerate([own] if isinstance(own, str) else own or ()):
                path = (section, name, "pipeline") + (() if isinstance(own, str) else (i,))
                _known(front, p, pipelines, path, f"{who} '{name}'")
    for kname, k in (data.get("keys") or {}).items():
        named = key_pipelines(k, teams)
        if not named or front.name in named:
            continue       # its globs were checked against this file's providers at load
        providers = [p for n in named for p in (pipelines[n].data.get("providers") or {})]
        check_globs(front, kname, k.get("models") or (), providers, "its pipeline " + ", ".join(named))


def _known(front, name: str, pipelines: dict, path: tuple, who: str) -> None:
    if name not in pipelines:
        served = ", ".join(pipelines)
        raise front.error(f"{who} names pipeline '{name}', which is not served here (served: {served})", path,
                          did_you_mean(name, pipelines) or "a pipeline's name is its `name:`, else its file's name")
