# syntax=docker/dockerfile:1
# One image, both entry points: probe-agent and probe-collector.
#
#   docker build -t probenet:0.1.0 .                        # with the embedded chDB store
#   docker build --build-arg EMBEDDED=false -t probenet:0.1.0-server .   # ClickHouse server only
#
# The Helm chart runs `probe-agent run --config /etc/probenet/agent.yaml` and
# `probe-collector serve --config /etc/probenet/collector.yaml` as uid 10001 on a read-only root.

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: build the wheel, install it with its dependencies into a self-contained venv ---
FROM ${PYTHON_IMAGE} AS builder
# true: the `embedded` extra (chDB engine with pandas and pyarrow, ~0.8 GB installed);
# false: the `collector` extra only, for installs whose store is a ClickHouse server.
# Agents need neither but run from the same image.
ARG EMBEDDED=true
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/probenet
COPY pyproject.toml README.md ./
COPY probenet ./probenet
COPY probe_agent ./probe_agent
COPY collector ./collector
RUN set -eu; \
    case "$EMBEDDED" in \
        true) extra=embedded ;; \
        false) extra=collector ;; \
        *) echo "EMBEDDED must be true or false, got '$EMBEDDED'" >&2; exit 2 ;; \
    esac; \
    /opt/probenet/bin/pip wheel --no-deps --wheel-dir /wheels .; \
    /opt/probenet/bin/pip install "$(ls /wheels/probenet-*.whl)[$extra]"; \
    /opt/probenet/bin/probe-agent --help >/dev/null; \
    /opt/probenet/bin/probe-collector --help >/dev/null

# --- runtime: the venv on a clean slim image, no build tools, non-root ---
FROM ${PYTHON_IMAGE}
ARG EMBEDDED=true
LABEL org.opencontainers.image.title="probenet" \
      org.opencontainers.image.description="Multi-region probe network: probe-agent and probe-collector" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.probenet.embedded-store="${EMBEDDED}"
# A fixed numeric uid/gid so Kubernetes can check runAsNonRoot without resolving names.
RUN groupadd --system --gid 10001 probenet \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/probenet --create-home \
        --shell /usr/sbin/nologin probenet \
    && mkdir -p /etc/probenet /var/lib/probenet/spool /data \
    && chown -R 10001:10001 /var/lib/probenet /data
COPY --from=builder /opt/probenet /opt/probenet
ENV PATH=/opt/probenet/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/probenet
# gRPC (agents -> collector), HTTP API/status page/metrics, agent metrics.
EXPOSE 4317 8080 9108
CMD ["probe-agent", "--help"]
