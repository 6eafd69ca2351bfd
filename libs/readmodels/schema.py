"""The read-model tables. Dropping them all and replaying the log rebuilds them exactly."""

from __future__ import annotations

import psycopg

from libs.readmodels import channels, orchestration_runs, task_history, worker_machines

TABLES = (
    "rm_tasks",
    "rm_charges",
    "rm_feed",
    "rm_position",
    "rm_workspaces",
    "rm_api_keys",
    "rm_workspace_secrets",
    "rm_tool_calls",
    "rm_questions",
    "rm_run_usage",
    "rm_purged_tasks",
    "rm_task_log",
    "rm_run_queue",
    "rm_leases",
    "rm_agent_sessions",
    orchestration_runs.TABLE,
    task_history.TABLE,
    worker_machines.TABLE,
    *channels.TABLES,
)

# A task's served state as one document: the row's `state` with its `request` put back.
TASK_STATE = "CASE WHEN request IS NULL THEN state ELSE state || jsonb_build_object('request', request) END"

DDL = """
CREATE TABLE IF NOT EXISTS rm_tasks (
    task_id uuid PRIMARY KEY,
    workspace_id text NOT NULL,
    status text NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    state jsonb NOT NULL,
    subtask_costs jsonb NOT NULL
);
-- The request as submitted (its files by digest), apart from `state`, which every step of the
-- task rewrites: a repository's file map is written once, not with each step. NULL in a row
-- written before the column existed, whose `state` still holds its request (`TASK_STATE`).
ALTER TABLE rm_tasks ADD COLUMN IF NOT EXISTS request jsonb;
CREATE INDEX IF NOT EXISTS rm_tasks_workspace ON rm_tasks (workspace_id, created_at);
CREATE TABLE IF NOT EXISTS rm_charges (
    run_id uuid PRIMARY KEY,
    seq bigint NOT NULL,
    workspace_id text NOT NULL,
    task_id uuid NOT NULL,
    subtask_id text NOT NULL,
    occurred_at bigint NOT NULL,
    model text NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cache_read_tokens bigint NOT NULL,
    cache_write_tokens bigint NOT NULL,
    cost_usd double precision NOT NULL,
    cpu_time_ms bigint NOT NULL,
    subrequests bigint NOT NULL,
    priced boolean NOT NULL,
    estimated boolean NOT NULL DEFAULT false
);
-- A table created before `estimated` existed gets it, last as above (a rebuild compares rows as
-- text); looked up first, since the ALTER would lock the table at every start.
DO $$ BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute WHERE attrelid = 'rm_charges'::regclass AND attname = 'estimated'
    ) THEN
        ALTER TABLE rm_charges ADD COLUMN estimated boolean NOT NULL DEFAULT false;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS rm_charges_workspace ON rm_charges (workspace_id, occurred_at);
CREATE TABLE IF NOT EXISTS rm_feed (
    seq bigint PRIMARY KEY,
    workspace_id text NOT NULL,
    type text NOT NULL,
    aggregate_id text NOT NULL,
    occurred_at bigint NOT NULL,
    payload jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_feed_workspace ON rm_feed (workspace_id, seq);
CREATE TABLE IF NOT EXISTS rm_workspaces (
    workspace_id text PRIMARY KEY,
    name text NOT NULL,
    created_at bigint NOT NULL,
    config jsonb NOT NULL,
    purged_through bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS rm_api_keys (
    key_id text PRIMARY KEY,
    workspace_id text NOT NULL,
    key_hash text NOT NULL,
    label text,
    created_at bigint NOT NULL,
    revoked_at bigint
);
-- A workspace's stored credentials, as a read may show them: never the value, sealed or not.
CREATE TABLE IF NOT EXISTS rm_workspace_secrets (
    workspace_id text NOT NULL,
    name text NOT NULL,
    last4 text NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (workspace_id, name)
);
CREATE TABLE IF NOT EXISTS rm_tool_calls (
    seq bigint PRIMARY KEY,
    workspace_id text NOT NULL,
    session_id text NOT NULL,
    task_id uuid NOT NULL,
    subtask_id text NOT NULL,
    call_id text NOT NULL,
    tool text NOT NULL,
    status text NOT NULL,
    agent_name text NOT NULL,
    occurred_at bigint NOT NULL,
    duration_ms bigint NOT NULL,
    title text NOT NULL,
    target text,
    error text
);
-- The log is read newest first within a workspace, narrowed by any one of these.
CREATE INDEX IF NOT EXISTS rm_tool_calls_workspace ON rm_tool_calls (workspace_id, seq);
CREATE INDEX IF NOT EXISTS rm_tool_calls_tool ON rm_tool_calls (workspace_id, tool, seq);
CREATE INDEX IF NOT EXISTS rm_tool_calls_status ON rm_tool_calls (workspace_id, status, seq);
CREATE INDEX IF NOT EXISTS rm_tool_calls_session ON rm_tool_calls (workspace_id, session_id, seq);
CREATE INDEX IF NOT EXISTS rm_tool_calls_agent ON rm_tool_calls (workspace_id, agent_name, seq);
CREATE INDEX IF NOT EXISTS rm_tool_calls_time ON rm_tool_calls (workspace_id, occurred_at);
-- The tasks a purge dropped from `rm_tasks` (and the orchestration runs it dropped from
-- `rm_orchestration_runs`: the task of their steps' Runs): what their runs record as they stop,
-- after the purge, is kept out of every read model (the feed, the tool log, the dump).
CREATE TABLE IF NOT EXISTS rm_purged_tasks (
    task_id uuid PRIMARY KEY,
    workspace_id text NOT NULL,
    purged_at_seq bigint NOT NULL
);
-- Stopped by the purge (unfinished then): the only ones whose runs may still record something,
-- which the live feed leaves out too, after a restart as before it (`purged_stopped`).
ALTER TABLE rm_purged_tasks ADD COLUMN IF NOT EXISTS stopped boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS rm_purged_tasks_stopped ON rm_purged_tasks (workspace_id) WHERE stopped;
CREATE TABLE IF NOT EXISTS rm_questions (
    question_id text PRIMARY KEY,
    workspace_id text NOT NULL,
    task_id text NOT NULL,
    session_id text NOT NULL,
    questions jsonb NOT NULL,
    tool jsonb NOT NULL,
    status text NOT NULL,
    asked_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    resolved_at bigint
);
CREATE INDEX IF NOT EXISTS rm_questions_open ON rm_questions (workspace_id, status, asked_at);
CREATE INDEX IF NOT EXISTS rm_questions_expiry ON rm_questions (status, expires_at);
CREATE INDEX IF NOT EXISTS rm_questions_session ON rm_questions (session_id) WHERE status = 'open';
-- What runs not charged yet have used so far, from their saved model calls: budget checks count
-- it, so runs going on at once see each other's calls before the ledger charges them.
CREATE TABLE IF NOT EXISTS rm_run_usage (
    run_id uuid PRIMARY KEY,
    workspace_id text NOT NULL,
    task_id uuid NOT NULL,
    model text NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cache_read_tokens bigint NOT NULL,
    cache_write_tokens bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_run_usage_workspace ON rm_run_usage (workspace_id);
-- Each task's live log (spec 000's WebSocket), one row per line derived from an event
-- (`task_log.log_entries`): the backlog a client gets first is one indexed read.
-- `task_id` as the events spell it (text: an id that is no UUID must not stop the projector).
CREATE TABLE IF NOT EXISTS rm_task_log (
    task_id text NOT NULL,
    seq bigint NOT NULL,
    ordinal integer NOT NULL,
    workspace_id text NOT NULL,
    entry jsonb NOT NULL,
    PRIMARY KEY (seq, ordinal)
);
CREATE INDEX IF NOT EXISTS rm_task_log_task ON rm_task_log (task_id, seq, ordinal);
-- Spec 002's queue: the dispatched runs nobody has claimed yet. Oldest task first, then oldest
-- dispatch: a run given back (or retried) keeps its task's place instead of going to the back.
CREATE TABLE IF NOT EXISTS rm_run_queue (
    run_id uuid PRIMARY KEY,
    workspace_id text NOT NULL,
    task_id uuid NOT NULL,
    subtask_id text NOT NULL,
    agent_type text NOT NULL,
    attempt integer NOT NULL,
    handover integer NOT NULL,
    external boolean NOT NULL,
    dispatch_seq bigint NOT NULL,
    queued_at bigint NOT NULL,
    previous_run_id text,
    task_created_at bigint NOT NULL
);
-- A run kept for one session (a container worker's, spec 003): `claim-next` leaves it to that
-- session, which names it. Added after the table; a row written before it is nobody's.
ALTER TABLE rm_run_queue ADD COLUMN IF NOT EXISTS reserved boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS rm_run_queue_order ON rm_run_queue (workspace_id, task_created_at, dispatch_seq);
CREATE INDEX IF NOT EXISTS rm_run_queue_task ON rm_run_queue (task_id);
-- Every claimed run's lease as its claim set it and its end left it (heartbeats move the end
-- in `lease_heartbeats`, which is no read model): the views, and the sweeper's candidates.
CREATE TABLE IF NOT EXISTS rm_leases (
    run_id uuid PRIMARY KEY,
    workspace_id text NOT NULL,
    task_id uuid NOT NULL,
    subtask_id text NOT NULL,
    agent_type text NOT NULL,
    attempt integer NOT NULL,
    session_id text NOT NULL,
    status text NOT NULL,
    claim_token_hash text NOT NULL,
    claimed_at bigint NOT NULL,
    lease_until bigint NOT NULL,
    ended_at bigint,
    error text,
    previous_run_id text,
    dispatch_seq bigint
);
CREATE INDEX IF NOT EXISTS rm_leases_claimed ON rm_leases (lease_until) WHERE status = 'claimed';
CREATE INDEX IF NOT EXISTS rm_leases_session ON rm_leases (session_id, claimed_at);
-- Agent sessions (spec 002): the session list, a spawn's counts, the TTL sweeper's query
-- (`libs.readmodels.agent_sessions`). Ids as the events spell them; `details` is the
-- session's `agent_session.created` payload without its token's hash.
CREATE TABLE IF NOT EXISTS rm_agent_sessions (
    session_id uuid PRIMARY KEY,
    workspace_id text NOT NULL,
    parent_session_id text,
    state text NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    ttl_expires_at bigint,
    last_activity text NOT NULL,
    stop_reason text,
    stop_detail text,
    details jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_agent_sessions_workspace ON rm_agent_sessions (workspace_id, created_at);
CREATE INDEX IF NOT EXISTS rm_agent_sessions_active ON rm_agent_sessions (workspace_id, parent_session_id)
    WHERE state <> 'stopped';
CREATE INDEX IF NOT EXISTS rm_agent_sessions_ttl ON rm_agent_sessions (ttl_expires_at)
    WHERE state <> 'stopped' AND ttl_expires_at IS NOT NULL;
-- Spec 004's runs (`libs.readmodels.orchestration_runs`): a row per run, found by its aggregate
-- id or by the `run_id` its client holds.
CREATE TABLE IF NOT EXISTS rm_orchestration_runs (
    id uuid PRIMARY KEY,
    run_id text NOT NULL UNIQUE,
    workspace_id text NOT NULL,
    orchestration_id text NOT NULL,
    digest text NOT NULL,
    status text NOT NULL,
    response text,
    shared_state jsonb NOT NULL,
    step_history jsonb NOT NULL,
    human_input_required jsonb,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_orchestration_runs_workspace ON rm_orchestration_runs (workspace_id, status);
CREATE TABLE IF NOT EXISTS rm_position (
    name text PRIMARY KEY,
    position bigint NOT NULL
);
"""

# The projector NOTIFYs this channel with its new position after each commit.
READMODELS_CHANNEL = "readmodels"
PROJECTOR = "readmodels"
# Advisory locks that make the relay and the projector single-active across replicas.
RELAY_LOCK, PROJECTOR_LOCK = 7_100_001, 7_100_002
# Makes the executor's lease sweeper single-active: one actor expires a lease.
LEASE_SWEEPER_LOCK = 7_100_003
# Makes the executor's reaper of container workers single-active: one actor destroys a machine.
WORKER_REAPER_LOCK = 7_100_004
# The runtime service's sweeper of agent sessions past their TTL: single-active across replicas.
SESSION_TTL_LOCK = 7_100_021
# The first key of the runtime's per-workspace spawn locks (a spawn's counts and its save).
SPAWN_LOCK_CLASS = 7_101
# The first key of the executors' per-branch locks (pull requests): (class, key) pairs never meet
# the single-key locks above.
BRANCH_LOCK_CLASS = 7_100
# Likewise the runtime's per-channel locks: one writer of a channel at a time, across replicas.
CHANNEL_LOCK_CLASS = 7_102


def create(conn: psycopg.Connection) -> None:
    with conn.transaction():
        # Several services start at once; serialize the DDL so CREATE IF NOT EXISTS races
        # cannot fail on the catalog's unique indexes.
        conn.execute("SELECT pg_advisory_xact_lock(4242)")  # the event store's schema lock
        conn.execute(DDL)
        conn.execute(channels.DDL)
        conn.execute(task_history.DDL)
        conn.execute(worker_machines.DDL)


def drop(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("DROP TABLE IF EXISTS " + ", ".join(TABLES))
