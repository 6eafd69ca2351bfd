# Agent orchestrator: run `./just --list` for the recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]

# uv must use the machine's Python 3.11, never download one
export UV_PYTHON_DOWNLOADS := "never"

default:
    @just --list

# Install the locked dependencies into .venv
sync:
    uv sync --frozen --quiet

# Start the whole system on its embedded defaults (PostgreSQL, NATS, six services)
up: sync
    uv run --frozen orchestrator-up

# Lint, then every test: unit, integration (real NATS + PostgreSQL) and end-to-end
test *args: sync
    uv run --frozen ruff check .
    uv run --frozen ruff format --check .
    uv run --frozen pytest {{args}}

# Reference workloads RW-1 and RW-2 against the embedded system (N tasks each, C in flight)
bench n="400" concurrency="20": sync
    uv run --frozen python -m libs.bench.rw1 --tasks {{n}} --concurrency {{concurrency}} --workload both

# RW-1 on this checkout and on another commit at the same time, ROUNDS times: the means and the change
bench-compare against n="400" rounds="2": sync
    uv run --frozen python -m libs.bench.compare --against {{against}} --tasks {{n}} --rounds {{rounds}}

# Spec 002's leases under load: AGENTS agent processes claim and complete N runs over HTTP; claims/s, hand-over latency, no double claim
bench-leases n="10000" agents="8": sync
    uv run --frozen python -m libs.bench.leases --tasks {{n}} --agents {{agents}}

# What PostgreSQL and NATS cost per RW-1 task for its appends and fsynced publishes alone
bench-floor n="400": sync
    uv run --frozen python -m libs.bench.floor --tasks {{n}}

# What one RW-1 task costs: events and bytes appended, PostgreSQL transactions and statements, NATS messages, wake-ups
bench-census n="200": sync
    uv run --frozen python -m libs.bench.census --tasks {{n}}

# Export JSON Schema for every contract, the OpenAPI and the AsyncAPI documents into contracts/schemas
contracts: sync
    uv run --frozen python -m exports

# Format the code
fmt: sync
    uv run --frozen ruff format .
    uv run --frozen ruff check --fix .
