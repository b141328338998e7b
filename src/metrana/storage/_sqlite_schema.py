"""The SQLite store's tables as the current schema version has them, but for ``chunks`` (in
``_chunks``, with the code that packs them). Every statement is idempotent: it runs each time
a store is opened, after ``_migrations`` has brought an older store to this shape.

The tenant is the organization: API keys, folders and experiments belong to one, and a query
only sees its caller's. A run of ``metrana.init()`` is the experiment whose slug is its
``run_name`` in folder ``workspace/project[/experiment_name]``.

The large tables are reached through their experiment (schema 5): ``series`` is unique by it
first, ``client_events`` and ``producer_batches`` keyed by it, ``annotations`` indexed by it
and ``chunks`` hold it (keyed by series: see ``_chunks`` and docs/deployment.md).
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS organizations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS folders (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES organizations(id),
    parent_id INTEGER REFERENCES folders(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_ns INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS folders_by_name
    ON folders(org_id, IFNULL(parent_id, 0), name);
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES organizations(id),
    folder_id INTEGER REFERENCES folders(id),
    slug TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    error_name TEXT,
    error_detail TEXT,
    orchestration_id TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    started_ms INTEGER,
    done_ms INTEGER,
    last_heartbeat_ms INTEGER,
    last_event_ms INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS experiments_by_slug
    ON experiments(org_id, IFNULL(folder_id, 0), slug);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    metric_name TEXT NOT NULL,
    scale TEXT NOT NULL,
    labels TEXT NOT NULL,  -- the canonical JSON of the events' metadata (log()'s labels)
    UNIQUE (experiment_id, metric_name, scale, labels)
);
CREATE TABLE IF NOT EXISTS client_events (
    experiment_id INTEGER NOT NULL,
    client_event_id TEXT NOT NULL,
    PRIMARY KEY (experiment_id, client_event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES organizations(id),
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
    revoked_ns INTEGER,
    expires_ns INTEGER,
    last_used_ns INTEGER
);
CREATE TABLE IF NOT EXISTS annotations (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    text TEXT NOT NULL,
    step INTEGER,  -- unused since schema 3 (kept in metadata)
    timestamp_ns INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS annotations_by_experiment ON annotations(experiment_id, created_ns);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_ns INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS producer_batches (  -- keyed by experiment first (schema 5)
    experiment_id INTEGER NOT NULL,  -- 0: recorded before schema 5
    producer_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    accepted INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    PRIMARY KEY (experiment_id, producer_id, sequence)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS login_tokens (  -- the dashboard's one-time logins (schema 4)
    hash TEXT PRIMARY KEY,  -- SHA-256 of the token (the token itself is not kept)
    org_id INTEGER NOT NULL REFERENCES organizations(id),
    key_id INTEGER NOT NULL,  -- the API key that minted it (0: printed by the server)
    key_name TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    expires_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dashboard_sessions (  -- the dashboard's sessions (schema 4)
    hash TEXT PRIMARY KEY,  -- SHA-256 of the session cookie
    org_id INTEGER NOT NULL REFERENCES organizations(id),
    key_id INTEGER NOT NULL,
    key_name TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    expires_ns INTEGER NOT NULL
) WITHOUT ROWID;
"""
