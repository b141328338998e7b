"""Performance harness: every row of the performance targets, each beside baselines measured in
the same run.

``python -m stress bench`` prints one JSON line per figure, one JSON line per target row
(``"figure": "target"``: target, measured value, met or not), then a readable table; it draws
throughput against writer count into ``docs/perf/throughput.png`` and profiles the dispatcher
with py-spy. ``--quick`` is a seconds-long smoke run of every section (no plot in ``docs/``).

Everything is measured through the public surface: ``metrana.init/log/flush/close/stats``,
``metrana serve`` as a separate process, ``metrana runs --json`` to count what was stored, and
the session directory's ``dispatcher.json`` to find the dispatcher's pid. Nothing here reads
storage internals, so the harness keeps working while the storage layer changes.

Figures (see docs/performance.md for the method):

* ``import_time``: ``python -c "import metrana"`` minus ``python -c pass`` (fresh interpreters),
  and the ``-X importtime`` cumulative time of the ``metrana`` package.
* ``log_latency``: µs per ``metrana.log(name, value, step=…)`` in one process (mean, p50, p99),
  beside an empty Python call, a bare "msgspec-encode a small tuple and copy it into an mmap"
  append, and that append in log()'s call shape (two calls, a lookup, time_ns, a lock),
  interleaved; the ratio to the bare append.
* ``log_latency_faulted``: the same call in a process whose HTTP target is healthy, stalled
  (``metrana serve`` SIGSTOPped) or unreachable (a FaultProxy refusing connections).
* ``end_to_end``: points/s from N spawned writer processes until every point is committed
  (``close(CompleteAll)`` returned in all of them), into the embedded store and into
  ``metrana serve`` over loopback HTTP, beside ``multiprocessing.Queue.put`` from N producers
  to one consumer; the stored count is checked.
* ``dispatcher_cpu``: the dispatcher's CPU-seconds (user + system, psutil) per million points
  during those runs; for the embedded store also without the storage engine's share, taken
  from the py-spy profile.
* ``memory``: RSS a writer process adds with the default ring (after init and enough points to
  wrap the ring, minus before init), the dispatcher's and the server's peak RSS under load.
* ``start_stop``: ``init()`` until the first ``log()`` returned, dispatcher start included (a
  fresh process and session each time), and ``close()`` of an idle writer.
* ``scale``: throughput for 1..32 writers (a fixed total of points), and the 8-writer figure
  with 64 idle rings in the session versus without.
* ``profile``: py-spy ``record -f raw`` on the dispatcher during an 8-writer embedded run: the
  frames with the most self time, as a share and as µs per point.
* ``integration_overhead``: µs per training step (wall and CPU time of the training process)
  of a tiny Lightning ``fit`` and a tiny Transformers ``train``, logging every step, with
  ``MetranaLogger``/``MetranaCallback`` against none (Lightning also beside a logger that
  does nothing and ``CSVLogger``); skipped, with a note, when the frameworks are missing.

The sections live in the modules of this package (``latency``, ``faulted``, ``throughput``,
``dispatcher``, ``memory``, ``startup``, ``scale``, ``integrations``), the target rows in
``report``, the plot in ``plotting``, the order of it all in ``harness``.
"""

from .dispatcher import parse_profile
from .harness import DEFAULT_PLOT, SECTIONS, run
from .plotting import plot
from .report import evaluate, markdown_table, print_table

__all__ = [
    "DEFAULT_PLOT",
    "SECTIONS",
    "evaluate",
    "markdown_table",
    "parse_profile",
    "plot",
    "print_table",
    "run",
]
