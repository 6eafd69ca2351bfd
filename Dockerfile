# syntax=docker/dockerfile:1
#
# One image for all six services and the local model server. The image has no service of its
# own: compose.yaml and deploy/k8s/ choose the console script as the command, e.g.
#
#   docker build -t agent-orchestrator:0.1.0 .
#   docker run --rm -e DATABASE_URL=... -e NATS_URL=... -p 8080:8080 agent-orchestrator:0.1.0 orchestrator-gateway
#
# The worker's image (one agent run per container, e.g. a Fly Machine) is the `worker` target,
# whose command is orchestrator-worker:
#
#   docker build --target worker -t agent-orchestrator-worker:0.1.0 .
#   docker run --rm -e ORCHESTRATOR_AGENT_URL=... -e ORCHESTRATOR_SESSION_TOKEN=... agent-orchestrator-worker:0.1.0
#
# Console scripts: orchestrator-gateway, orchestrator-stream, orchestrator-runtime, orchestrator-planner,
# orchestrator-executor, orchestrator-review, orchestrator-cost-ledger, orchestrator-intake,
# orchestrator-model-server, orchestrator-worker.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: resolve the locked dependencies and the project into /app/.venv ---------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install uv==0.13.9

WORKDIR /app

# Dependencies first, from the lock alone: this layer is rebuilt only when uv.lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Then the project's source. --no-editable installs the project into the venv's
# site-packages, so the runtime stage needs the venv alone.
COPY contracts ./contracts
COPY libs ./libs
COPY services ./services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# --- runtime: the venv on a clean slim image, run as a non-root user ----------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="agent-orchestrator" \
      org.opencontainers.image.description="Event-sourced orchestrator for AI coding agents (six services, one image)"

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it (USER below is numeric).
RUN groupadd --system --gid 10001 orchestrator \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin orchestrator

WORKDIR /app
# Owned by root and read-only to the service user: the code cannot be changed at run time.
COPY --from=builder /app/.venv /app/.venv
# The example orchestration definitions (spec 004); mount another folder at ORCHESTRATIONS_DIR for your own.
COPY orchestrations ./orchestrations

ENV PATH=/app/.venv/bin:$PATH \
    HTTP_HOST=0.0.0.0 \
    ORCHESTRATIONS_DIR=/app/orchestrations \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001

# gateway 8080, stream 8081, runtime 8082, planner 9101, executor 9102, review 9103, cost-ledger 9104,
# model server 8900. Each service reads its port from HTTP_PORT.
EXPOSE 8080 8081 8082 9101 9102 9103 9104 8900

# --- worker: the same image, whose command is the worker (docker build --target worker) -----
FROM runtime AS worker

LABEL org.opencontainers.image.description="The agent worker of the event-sourced orchestrator: claims one run, works it, reports it"

CMD ["orchestrator-worker"]

# --- services: the default target, the image as the services use it (no command of its own) -
# Last, so that a build without --target (compose.yaml's, deploy/k8s's) is the one it always was.
FROM runtime AS services
