-- The build pipeline: one build per (package group submission, OS
-- version), the history of every state change, the operator's
-- investigations, and webhooks with their deliveries. River keeps its own
-- tables (river_job, …), migrated by the pipeline with rivermigrate.
-- +goose Up
CREATE TABLE builds (
    id              TEXT PRIMARY KEY,
    group_id        TEXT NOT NULL REFERENCES package_groups (id) ON DELETE CASCADE,
    owner           TEXT NOT NULL,
    -- 1 for the first submission of the group, 2 for the next, …
    submission      INTEGER NOT NULL,
    os_name         TEXT NOT NULL,
    base_image_id   TEXT NOT NULL,
    state           TEXT NOT NULL,
    image_id        TEXT NOT NULL DEFAULT '',
    troubleshooting TEXT NOT NULL DEFAULT '',
    findings        TEXT NOT NULL DEFAULT '',
    changed_files   TEXT NOT NULL DEFAULT '',
    build_report    TEXT NOT NULL DEFAULT '',
    scan_report     TEXT NOT NULL DEFAULT '',
    log             TEXT NOT NULL DEFAULT '',
    -- The River job that currently stands for this build; a job with
    -- another ID is stale and does nothing.
    job_id          BIGINT,
    -- The lease of the worker running the build, kept alive by heartbeats.
    run_id          TEXT,
    heartbeat_at    TIMESTAMP,
    attempt         INTEGER NOT NULL DEFAULT 0,
    -- Workers lost in a row (reset by an operator retry).
    lost            INTEGER NOT NULL DEFAULT 0,
    submitted_at    TIMESTAMP NOT NULL,
    started_at      TIMESTAMP,
    scan_started_at TIMESTAMP,
    ended_at        TIMESTAMP,
    updated_at      TIMESTAMP NOT NULL,
    UNIQUE (group_id, submission, os_name)
);
CREATE INDEX builds_owner_group ON builds (owner, group_id, submission);
CREATE INDEX builds_state ON builds (state);

-- Every state change of a build (build_id set) and of a group (build_id '').
CREATE TABLE group_history (
    id       TEXT PRIMARY KEY,
    group_id TEXT NOT NULL,
    owner    TEXT NOT NULL,
    build_id TEXT NOT NULL DEFAULT '',
    os_name  TEXT NOT NULL DEFAULT '',
    state    TEXT NOT NULL,
    reason   TEXT NOT NULL,
    at       TIMESTAMP NOT NULL
);
CREATE INDEX group_history_group ON group_history (group_id, at);

-- The operator queue: a build entering Investigating opens one; a retry or
-- a resolution closes it.
CREATE TABLE investigations (
    id          TEXT PRIMARY KEY,
    build_id    TEXT NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    reason      TEXT NOT NULL,
    opened_at   TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP,
    resolution  TEXT NOT NULL DEFAULT '',
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX investigations_build ON investigations (build_id);
CREATE INDEX investigations_open ON investigations (resolved_at, opened_at);

-- One webhook per account. The secret signs deliveries, so it is kept as is.
CREATE TABLE webhooks (
    account_id TEXT PRIMARY KEY REFERENCES accounts (id),
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE webhook_deliveries (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    event        TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_status  INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT '',
    delivered_at TIMESTAMP
);
CREATE INDEX webhook_deliveries_account ON webhook_deliveries (account_id, created_at);

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
DROP TABLE investigations;
DROP TABLE group_history;
DROP TABLE builds;
