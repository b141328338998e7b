"""The SQLite store's tables, but for ``chunks`` (in ``_chunks``, with the code that packs
them). Every statement is idempotent: it runs each time a store is opened."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS workspaces (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS folders (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    parent_id INTEGER REFERENCES folders(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_ns INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS folders_by_name
    ON folders(workspace_id, IFNULL(parent_id, 0), name);
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    folder_id INTEGER NOT NULL REFERENCES folders(id),
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    orchestration_id TEXT,
    created_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL,
    UNIQUE (folder_id, name)
);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    metric_name TEXT NOT NULL,
    scale TEXT NOT NULL,
    labels TEXT NOT NULL,
    UNIQUE (experiment_id, metric_name, scale, labels)
);
CREATE TABLE IF NOT EXISTS client_events (
    experiment_id INTEGER NOT NULL,
    client_event_id TEXT NOT NULL,
    PRIMARY KEY (experiment_id, client_event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL,
    revoked_ns INTEGER
);
CREATE TABLE IF NOT EXISTS ingestion_keys (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL,
    revoked_ns INTEGER
);
CREATE TABLE IF NOT EXISTS annotations (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    text TEXT NOT NULL,
    step INTEGER,
    timestamp_ns INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_ns INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS producer_batches (
    producer_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    accepted INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    PRIMARY KEY (producer_id, sequence)
) WITHOUT ROWID;
"""
