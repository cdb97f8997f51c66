# Lynkr as a container: `docker build -t lynkr .` then
#   docker run --rm -p 8081:8081 -e ANTHROPIC_API_KEY lynkr                      # the shipped default pipeline
#   docker run --rm -p 8081:8081 -v "$PWD/team.yaml:/etc/lynkr/pipeline.yaml:ro" lynkr   # your own
# Kubernetes manifests: deploy/kubernetes/ (README there). tests/test_deploy.py lints this file with
# hadolint and checks it against the code (port, health path, entrypoint, variables).
#
# The embedding model (all-MiniLM-L6-v2, ONNX, with its int8 copy) and the tokenizer's BPE file are
# baked in at build time (network needed once, by deploy/docker/bake_models.py), so a container starts
# offline. To mount them instead: build with `--build-arg BAKE_MODELS=false` and mount the folders at
# LYNKR_EMBED_MODEL_PATH and TIKTOKEN_CACHE_DIR (or point those variables where you mount them; then
# give LYNKR_EMBED_CACHE_DIR a writable folder for the int8 copy, made once on first start).

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY lynkr ./lynkr
COPY stages ./stages
COPY pipelines ./pipelines
COPY schemas ./schemas
RUN /opt/venv/bin/pip install --no-cache-dir .

ARG BAKE_MODELS=true
ENV LYNKR_EMBED_MODEL_PATH=/opt/lynkr/models/all-MiniLM-L6-v2-onnx \
    LYNKR_EMBED_CACHE_DIR=/opt/lynkr/embed-cache
# DL3064 reads "TOKEN" in TIKTOKEN_CACHE_DIR as a secret; it is a folder (tiktoken's own variable).
# hadolint ignore=DL3064
ENV TIKTOKEN_CACHE_DIR=/opt/lynkr/tiktoken
COPY deploy/docker/bake_models.py /tmp/bake_models.py
# The int8 copy is written 0600 (a temporary file renamed into place): readable by the runtime user only after chmod.
RUN mkdir -p "$LYNKR_EMBED_MODEL_PATH" "$LYNKR_EMBED_CACHE_DIR" "$TIKTOKEN_CACHE_DIR" \
    && if [ "$BAKE_MODELS" = "true" ]; then /opt/venv/bin/python /tmp/bake_models.py; fi \
    && chmod -R a+rX /opt/lynkr


FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="lynkr" \
      org.opencontainers.image.description="A configuration-as-code LLM proxy" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
RUN groupadd --system --gid 10001 lynkr \
    && useradd --system --uid 10001 --gid lynkr --home-dir /var/lib/lynkr --shell /usr/sbin/nologin lynkr \
    && mkdir -p /var/lib/lynkr /etc/lynkr \
    && chown lynkr:lynkr /var/lib/lynkr

COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/lynkr /opt/lynkr
COPY pipelines/default.yaml /etc/lynkr/pipeline.yaml

# The state folder and telemetry file of the default pipeline (and the working directory, where a
# pipeline's relative paths such as `.lynkr/` land) is the one folder the process writes.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    LYNKR_EMBED_MODEL_PATH=/opt/lynkr/models/all-MiniLM-L6-v2-onnx \
    LYNKR_EMBED_CACHE_DIR=/opt/lynkr/embed-cache \
    LYNKR_STATE_DIR=/var/lib/lynkr/state \
    LYNKR_TELEMETRY=/var/lib/lynkr/telemetry.duckdb
# hadolint ignore=DL3064
ENV TIKTOKEN_CACHE_DIR=/opt/lynkr/tiktoken
WORKDIR /var/lib/lynkr
USER 10001:10001

EXPOSE 8081
# /health/ready answers 503 while starting or shedding load; urlopen raises on it (exit 1).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/health/ready', timeout=2)"]

# SIGTERM (docker stop, Kubernetes) drains in-flight requests up to server.shutdown_grace_s (30 s),
# then flushes telemetry: give `docker stop -t 45` or more.
ENTRYPOINT ["lynkr", "run"]
CMD ["/etc/lynkr/pipeline.yaml", "--host", "0.0.0.0", "--port", "8081"]
