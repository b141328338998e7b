-- A store written by Metrana at 5cbb31f (schema version 2, before organizations), made by
-- tests/data/make_store_schema2.py run against that commit's sources, then dumped with
-- `sqlite3 store.db .dump`. Its team-a API key is mtr_xc3VvWoZlRCX5zCCrKIHHo9fFuBJsW6lzNqQpkPhZ9A.
PRAGMA user_version=2;
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE workspaces (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL
);
INSERT INTO workspaces VALUES(1,'team-a',1796482711927709521);
INSERT INTO workspaces VALUES(2,'team-b',1796482711927864892);
CREATE TABLE folders (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    parent_id INTEGER REFERENCES folders(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_ns INTEGER NOT NULL
);
INSERT INTO folders VALUES(1,1,NULL,'vision','',1796482711927938732);
INSERT INTO folders VALUES(2,1,1,'ablation','',1796482711928319858);
INSERT INTO folders VALUES(3,2,NULL,'vision','',1796482711928463191);
CREATE TABLE experiments (
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
INSERT INTO experiments VALUES(1,1,1,'run-1','finished','','{}','job-1',1796482711927971110,1796482711928277555);
INSERT INTO experiments VALUES(2,1,2,'run-2','crashed','','{}','job-2',1796482711928325466,1796482711928437503);
INSERT INTO experiments VALUES(3,2,3,'run-1','running','','{}','job-3',1796482711928469771,1796482711928469771);
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    metric_name TEXT NOT NULL,
    scale TEXT NOT NULL,
    labels TEXT NOT NULL,
    UNIQUE (experiment_id, metric_name, scale, labels)
);
INSERT INTO series VALUES(1,1,'loss','ML_STEP','{}');
INSERT INTO series VALUES(2,1,'reward','EPISODE','{"env":"3"}');
INSERT INTO series VALUES(3,2,'loss','ML_STEP','{}');
INSERT INTO series VALUES(4,3,'acc','ML_STEP','{}');
INSERT INTO series VALUES(5,1,'lr','ML_STEP','{}');
CREATE TABLE client_events (
    experiment_id INTEGER NOT NULL,
    client_event_id TEXT NOT NULL,
    PRIMARY KEY (experiment_id, client_event_id)
) WITHOUT ROWID;
INSERT INTO client_events VALUES(1,'e1');
CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL,
    revoked_ns INTEGER
);
INSERT INTO api_keys VALUES(1,1,'ci','mtr_xc3VvWoZ','8f9ebd59cf7a504c28478d916ec49fbef22aab6fdaf2dbb37279cf5b69ecd80f',1796482711927757202,NULL);
INSERT INTO api_keys VALUES(2,2,'other','mtr_C0u73_jq','058dd4d68bbd7c8ca0d756386692271017397d45d19abc0c158bfac62e267569',1796482711927871742,NULL);
CREATE TABLE ingestion_keys (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL,
    revoked_ns INTEGER
, expires_ns INTEGER, last_used_ns INTEGER);
INSERT INTO ingestion_keys VALUES(1,1,'dispatcher','mti_xb-atZxW','024cfd6b22847406a73427634f0702107cd1c2118f1252e58e52a8589d18e2eb',1796482711928615457,NULL,1796486311928615457,NULL);
CREATE TABLE annotations (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    text TEXT NOT NULL,
    step INTEGER,
    timestamp_ns INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_ns INTEGER NOT NULL
);
INSERT INTO annotations VALUES(1,1,'lr drop',1,1796482711928685031,'{"by":"me"}',1796482711928685031);
CREATE TABLE idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_ns INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE TABLE producer_batches (
    producer_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    accepted INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    PRIMARY KEY (producer_id, sequence)
) WITHOUT ROWID;
CREATE TABLE chunks (
    series_id INTEGER NOT NULL,
    first_step INTEGER NOT NULL,
    last_step INTEGER NOT NULL,
    count INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (series_id, first_step)
) WITHOUT ROWID;
INSERT INTO chunks VALUES(1,0,2,3,X'94a16400c418000000000000f03f000000000000e03f000000000000f87fc418000064a7b3b6e00d010064a7b3b6e00d020064a7b3b6e00d');
INSERT INTO chunks VALUES(2,0,1,2,X'94a17100c41001000000000000000200000000000000cf0de0b6b3a7640000');
INSERT INTO chunks VALUES(3,5,5,1,X'94a16405c408000000000000d03fcf0de0b6b3a7640000');
INSERT INTO chunks VALUES(4,0,0,1,X'94a16400c408cdccccccccccec3fcf0de0b6b3a7640000');
INSERT INTO chunks VALUES(5,0,0,1,X'94a16400c4089a9999999999b93fcf18ee638221a4779e');
CREATE UNIQUE INDEX folders_by_name
    ON folders(workspace_id, IFNULL(parent_id, 0), name);
CREATE INDEX chunks_by_last_step ON chunks(series_id, last_step);
COMMIT;
