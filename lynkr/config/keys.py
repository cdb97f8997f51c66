"""The `keys:` and `teams:` blocks of a pipeline, checked beyond what the schema can say.

    keys:
      alice:
        secret_sha256: "9f86d0…"          # or secret: "{{ env.ALICE_KEY }}"
        team: payments
        limits: {rpm: 60, tpm: 400000, usd_per_day: 20, usd_per_month: 300, max_concurrent: 8}
        models: ["anthropic:claude-sonnet-*", "ollama:*"]
    teams:
      payments: {limits: {usd_per_month: 500}}

`client_keys(config)` is the one reading of them the server and `lynkr keys check` share:
every key as a `ClientKey` (the sha256 of its secret, its name, team, limits and model globs),
`server.api_keys` included as keys with no limits named `api_keys[0]`, `api_keys[1]`, ….
"""
from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass, field

from lynkr.errors import did_you_mean

__all__ = ["ClientKey", "client_keys", "team_limits", "check_keys", "check_globs", "model_allowed", "key_pipelines"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ClientKey:
    name: str
    digest: bytes                       # sha256 of the secret
    team: str | None = None
    limits: dict = field(default_factory=dict)
    models: tuple[str, ...] = ()        # globs over provider:model; empty = all
    pipelines: tuple[str, ...] = ()     # the pipelines it may use, its default first; empty = any (lynkr.config.folder)


def model_allowed(globs: tuple[str, ...] | list[str], target: str) -> bool:
    return not globs or any(fnmatch.fnmatchcase(target, g) for g in globs)


def key_pipelines(key: dict, teams: dict) -> tuple[str, ...]:
    """The pipelines a `keys:` entry may use, its default first: its own `pipeline:` (a name or a
    list), else its team's; () = any."""
    own = key.get("pipeline")
    if own is None and key.get("team"):
        own = ((teams or {}).get(key["team"]) or {}).get("pipeline")
    if own is None:
        return ()
    return (own,) if isinstance(own, str) else tuple(own)


def client_keys(config: dict) -> list[ClientKey]:
    out = []
    teams = config.get("teams") or {}
    for name, k in (config.get("keys") or {}).items():
        if k.get("secret_sha256"):
            digest = bytes.fromhex(k["secret_sha256"].lower())
        elif k.get("secret"):
            digest = hashlib.sha256(k["secret"].encode()).digest()
        else:
            continue     # check_keys refused it at load; a key without a secret admits no one
        out.append(ClientKey(name, digest, k.get("team"), dict(k.get("limits") or {}), tuple(k.get("models") or ()),
                             key_pipelines(k, teams)))
    for i, secret in enumerate((config.get("server") or {}).get("api_keys") or ()):
        if isinstance(secret, str) and secret:
            out.append(ClientKey(f"api_keys[{i}]", hashlib.sha256(secret.encode()).digest()))
    return out


def team_limits(config: dict, team: str | None) -> dict:
    t = (config.get("teams") or {}).get(team) if team else None
    return dict((t or {}).get("limits") or {})


def check_keys(cfg) -> None:
    """Load-time errors (file:line) for what the schema lets through: a malformed hash, a key
    with no secret or two, a team that does not exist, a model glob no provider can match, two
    keys with one secret."""
    data = cfg.data
    teams = data.get("teams") or {}
    providers = list((data.get("providers") or {}).keys())
    seen: dict[bytes, str] = {}
    for name, k in (data.get("keys") or {}).items():
        has_hash, has_secret = bool(k.get("secret_sha256")), bool(k.get("secret"))
        if has_hash == has_secret:
            raise cfg.error(f"key '{name}' needs exactly one of secret_sha256 or secret", ("keys", name),
                            "`lynkr keys new NAME` prints a secret and its secret_sha256 line")
        if has_hash and not _HEX64.match(k["secret_sha256"].lower()):
            raise cfg.error(f"key '{name}': secret_sha256 must be 64 hex digits (a sha256), got "
                            f"{len(k['secret_sha256'])} characters", ("keys", name, "secret_sha256"),
                            "`lynkr keys new NAME` prints it; or: printf %s \"$KEY\" | sha256sum")
        team = k.get("team")
        if team is not None and team not in teams:
            raise cfg.error(f"key '{name}' names team '{team}', which is not under teams:", ("keys", name, "team"),
                            did_you_mean(team, teams) or ("declare it: teams: {" + team + ": {}}"))
        named = key_pipelines(k, teams)
        if not named or cfg.name in named:
            # A key of other pipelines only: lynkr.config.folder checks its globs against theirs.
            check_globs(cfg, name, k.get("models") or (), providers)
        digest = bytes.fromhex(k["secret_sha256"].lower()) if has_hash else hashlib.sha256(k["secret"].encode()).digest()
        if digest in seen:
            raise cfg.error(f"keys '{seen[digest]}' and '{name}' have the same secret", ("keys", name))
        seen[digest] = name


def check_globs(cfg, name: str, globs, providers: list, where: str = "this pipeline") -> None:
    """A ConfigError at the first of a key's model globs whose provider part matches none of `providers`."""
    for i, glob in enumerate(globs):
        prov = glob.split(":", 1)[0]
        if ":" not in glob or not any(fnmatch.fnmatchcase(p, prov) for p in providers):
            raise cfg.error(f"key '{name}': model glob '{glob}' matches no provider of {where} "
                            "(globs are over provider:model)", ("keys", name, "models", i),
                            did_you_mean(prov, providers) or ("providers: " + ", ".join(providers)))
