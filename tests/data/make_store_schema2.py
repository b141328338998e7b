"""Writes the store of store_schema2.sql with the sources of commit 5cbb31f (schema 2):
``git worktree add /tmp/old 5cbb31f; PYTHONPATH=/tmp/old/src python make_store_schema2.py s.db``,
then ``sqlite3 s.db .dump``. Kept to show how the fixture was made; not run by the tests."""

import math
import sys

from metrana.api import _types as t
from metrana.storage import SqliteStore
from metrana.storage._base import SeriesColumns

s = SqliteStore(sys.argv[1])
key, secret = s.create_api_key("team-a", "ci")
s.create_api_key("team-b", "other")
h = s.open_run("team-a", "vision", None, "run-1", "job-1", True)
s.write_points(
    h.experiment_id,
    {
        ("loss", "ML_STEP", "{}"): SeriesColumns(
            [0, 1, 2], [1.0, 0.5, math.nan], [10**18, 10**18 + 1, 10**18 + 2]
        ),
        ("reward", "EPISODE", '{"env":"3"}'): SeriesColumns([0, 1], [1, 2], [10**18, 10**18]),
    },
)
s.set_status(h.experiment_id, "finished")
h2 = s.open_run("team-a", "vision", "ablation", "run-2", "job-2", True)
s.write_points(h2.experiment_id, {("loss", "ML_STEP", "{}"): SeriesColumns([5], [0.25], [10**18])})
s.set_status(h2.experiment_id, "crashed")
h3 = s.open_run("team-b", "vision", None, "run-1", "job-3", True)
s.write_points(h3.experiment_id, {("acc", "ML_STEP", "{}"): SeriesColumns([0], [0.9], [10**18])})
ws = s.workspace_id("team-a")
s.create_ingestion_key(ws, h.experiment_id, "dispatcher", 3600_000)
s.create_annotation(
    ws, h.experiment_id, t.AnnotationCreate(text="lr drop", step=1, metadata={"by": "me"})
)
s.ingest_json(
    ws, h.experiment_id, [t.IngestMetric(client_event_id="e1", metric_name="lr", value=0.1, step=0)]
)
print(secret)
