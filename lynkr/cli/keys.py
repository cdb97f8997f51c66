"""`lynkr keys new NAME [--team T]` and `lynkr keys check PIPELINE`: client keys for a GitOps repo.

    $ lynkr keys new alice --team payments
    secret (shown once; give it to alice, keep it out of git):
      lk-6q0…
    pipeline lines:
      keys:
        alice:
          secret_sha256: "9f86d0…"
          team: payments

    $ lynkr keys check pipelines/team.yaml      # keys, teams and limits as the proxy reads them
"""
from __future__ import annotations

import hashlib
import secrets
import sys

from lynkr.cli import command
from lynkr.errors import ConfigError

__all__ = ["cmd_keys"]

_LIMITS = ("rpm", "tpm", "usd_per_day", "usd_per_month", "max_concurrent")


@command
def cmd_keys(args) -> int:
    """Make a client key (`new NAME`) or list a pipeline's keys, teams and limits (`check PIPELINE`)."""
    if args.action == "new":
        return _new(args.name, args.team)
    return _check(args.name)


def _new(name: str, team: str | None) -> int:
    secret = "lk-" + secrets.token_urlsafe(32)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    print(f"secret (shown once; give it to {name}, keep it out of git):\n  {secret}\n")
    print("pipeline lines:\n  keys:")
    print(f"    {name}:\n      secret_sha256: \"{digest}\"")
    if team:
        print(f"      team: {team}")
    return 0


def _fmt(limits: dict) -> str:
    parts = [f"{k} {'$%.2f' % limits[k] if k.startswith('usd') else limits[k]}" for k in _LIMITS if k in limits]
    return ", ".join(parts) or "no limits"


def _check(path: str) -> int:
    from lynkr.config.folder import load_front
    from lynkr.config.keys import client_keys, team_limits

    try:
        cfg = load_front(path)       # a folder: its front pipeline's keys, checked against its pipelines
    except ConfigError as e:
        print(f"✗ {e}", file=sys.stderr)
        return 1
    keys = client_keys(cfg.data)
    if not keys:
        print(f"{path}: no client keys (keys:, server.api_keys): every client is admitted, without limits")
        return 0
    print(f"{path}: {len(keys)} client key(s)")
    for k in keys:
        models = ", ".join(k.models) if k.models else "all models"
        team = f" team {k.team}" if k.team else ""
        where = f"; pipeline {', '.join(k.pipelines)}" if k.pipelines else ""
        print(f"  {k.name}{team}: {_fmt(k.limits)}; {models}{where}; sha256 {k.digest.hex()[:12]}…")
    teams = cfg.data.get("teams") or {}
    if teams:
        print(f"{len(teams)} team(s)")
        for t in teams:
            members = [k.name for k in keys if k.team == t]
            print(f"  {t}: {_fmt(team_limits(cfg.data, t))}; keys: {', '.join(members) or '(none)'}")
    return 0


def _configure(p) -> None:
    p.add_argument("action", choices=["new", "check"])
    p.add_argument("name", help="new: the key's name; check: the pipeline file, or a folder served as one")
    p.add_argument("--team", help="new: the team the key belongs to")


cmd_keys.configure = _configure
