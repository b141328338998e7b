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
"""

from __future__ import annotations

import argparse
import json
import mmap
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import psutil

ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = "default"  # the workspace of the first API key of a new `metrana serve` store
PROJECT = "bench"
MIB = 1024 * 1024
STALL_KINDS = ("healthy", "stalled", "unreachable")


# -- statistics and timing ---------------------------------------------------------------


def _quantiles(samples: list[float]) -> dict[str, float]:
    samples.sort()
    n = len(samples)
    return {
        "mean_us": round(statistics.fmean(samples), 3),
        "p50_us": round(samples[n // 2], 3),
        "p99_us": round(samples[min(n - 1, int(n * 0.99))], 3),
    }


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _median_quantiles(runs: list[dict[str, float]]) -> dict[str, Any]:
    """The median of each quantile over several runs, with the runs themselves."""
    out: dict[str, Any] = {
        key: round(_median([r[key] for r in runs]), 3) for key in ("mean_us", "p50_us", "p99_us")
    }
    out["runs"] = runs
    return out


def _timer_floor() -> int:
    clock = time.perf_counter_ns
    overhead = []
    for _ in range(10_000):
        a = clock()
        overhead.append(clock() - a)
    return sorted(overhead)[len(overhead) // 2]


def _time_calls(
    fn: Callable[[int], None], calls: int, start: int = 0, warmup: int = 1_000
) -> dict[str, float]:
    """Per-call latency in µs, the timer's own overhead subtracted."""
    for i in range(warmup):
        fn(start - warmup + i) if start >= warmup else fn(i)
    clock = time.perf_counter_ns
    floor = _timer_floor()
    samples = []
    for i in range(start, start + calls):
        a = clock()
        fn(i)
        samples.append(max(0, clock() - a - floor) / 1000)
    return _quantiles(samples)


def _time_log_calls(
    log: Callable[..., None], calls: int, start: int = 0, warmup: int = 1_000
) -> dict[str, float]:
    """Per-call latency of ``log("loss", 0.5, step=i)`` called as a training loop calls it,
    with no wrapper function around it, the timer's own overhead subtracted."""
    for i in range(start - warmup, start) if start >= warmup else range(warmup):
        log("loss", 0.5, step=i)
    clock = time.perf_counter_ns
    floor = _timer_floor()
    samples = []
    for i in range(start, start + calls):
        a = clock()
        log("loss", 0.5, step=i)
        samples.append(max(0, clock() - a - floor) / 1000)
    return _quantiles(samples)


def _empty(i: int) -> None:
    pass


def _bare_append_factory() -> Callable[[int], None]:
    """msgspec-encode a small tuple into a reused buffer, copy it into an mmap, publish the
    position with one aligned 8-byte store: the least a ring append can cost in Python."""
    encoder = msgspec.msgpack.Encoder()
    buf = bytearray(64)
    size = 8 * MIB
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the closure
    handle.truncate(size)
    mm = mmap.mmap(handle.fileno(), size)
    slots = memoryview(mm).cast("Q")
    state = [4096]

    def append(i: int) -> None:
        encoder.encode_into((0, 1, i, 0.5, 1_700_000_000_000_000_000), buf, 8)
        n = len(buf)
        pos = state[0]
        if pos + n > size:
            pos = 4096
        mm[pos : pos + n] = buf
        state[0] = pos + ((n + 7) & -8)
        slots[0] = state[0]

    append.keep = (handle, mm, slots)  # type: ignore[attr-defined]
    return append


# -- processes: sampling, the server, the dispatcher ---------------------------------------


def _proc_status(pid: int | str = "self") -> dict[str, int]:
    """The memory lines of /proc/PID/status, in bytes."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(("Vm", "Rss")):
                    key, _, rest = line.partition(":")
                    parts = rest.split()
                    if parts and parts[-1] == "kB":
                        out[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return out


class Sampler:
    """CPU time and RSS of one process, sampled in a thread until stopped or the process ends."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.process = psutil.Process(pid)
        self.pid = pid
        self.interval = interval
        self.cpu = 0.0
        self.rss = 0
        self.peak_rss = 0
        self.peak_shmem = 0
        self.peak_own = 0
        self.samples = 0
        self._stop = threading.Event()
        self.sample()
        self.start_rss = self.rss
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def sample(self) -> bool:
        try:
            times = self.process.cpu_times()
            rss = self.process.memory_info().rss
        except psutil.Error:
            return False
        self.cpu = times.user + times.system
        self.rss = rss
        status = _proc_status(self.pid)
        self.peak_rss = max(self.peak_rss, rss, status.get("VmHWM", 0))
        # RssShmem: the writers' rings mapped by the dispatcher (shared, counted in the
        # writers too); RssAnon + RssFile: the process's own memory
        self.peak_shmem = max(self.peak_shmem, status.get("RssShmem", 0))
        own = status.get("RssAnon", 0) + status.get("RssFile", 0)
        self.peak_own = max(self.peak_own, own)
        self.samples += 1
        return True

    def cpu_now(self) -> float:
        self.sample()
        return self.cpu

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.sample():
                return

    def stop(self) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(5)


class Server:
    """``metrana serve --port 0`` in its own process; its URL and first API key."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.process = subprocess.Popen(
            [sys.executable, "-m", "metrana.cli", "serve", "--store", str(store), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.api_key = ""
        if line.startswith("Created the first API key"):
            self.api_key = self.process.stdout.readline().strip()
            line = self.process.stdout.readline()
        if not line.startswith("Metrana server on"):
            self.stop()
            raise RuntimeError(f"metrana serve did not start: {line!r}")
        self.url = line.split()[3]
        self.pid = self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _dispatcher(session_root: Path, timeout: float = 10.0) -> psutil.Process | None:
    """The live dispatcher of the (only) session under ``session_root``, from dispatcher.json."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for info_path in session_root.glob("*/dispatcher.json"):
            try:
                info = json.loads(info_path.read_bytes())
                process = psutil.Process(info["pid"])
                if abs(int(process.create_time() * 1000) - info["create_ms"]) <= 1:
                    return process
            except (OSError, ValueError, KeyError, psutil.Error):
                continue
        time.sleep(0.01)
    return None


def _cpu_sum(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with _suppress_psutil():
            times = process.cpu_times()
            total += times.user + times.system
    return total


class _suppress_psutil:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, *rest: object) -> bool:
        return isinstance(kind, type) and issubclass(kind, psutil.Error)


def _kill_dispatchers(shm: Path) -> None:
    for info_path in shm.glob("*/*/dispatcher.json"):
        try:
            info = json.loads(info_path.read_bytes())
            process = psutil.Process(info["pid"])
            if abs(int(process.create_time() * 1000) - info["create_ms"]) <= 1:
                process.kill()
        except (OSError, ValueError, KeyError, psutil.Error):
            continue


def _stored_points(store: Path, run_name: str) -> int:
    """Points stored for ``run_name``, through the public CLI (``metrana runs --json``)."""
    result = subprocess.run(
        [sys.executable, "-m", "metrana.cli", "runs", "--store", str(store), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        return -1
    for run in json.loads(result.stdout):
        if run.get("run_name") == run_name:
            return int(run.get("points", 0))
    return 0


def _wait_count(sem: Any, n: int, processes: list[Any], timeout: float, what: str) -> None:
    """Acquire ``sem`` n times; fail early if one of ``processes`` died with an error."""
    deadline = time.monotonic() + timeout
    got = 0
    while got < n:
        if sem.acquire(timeout=0.2):
            got += 1
            continue
        failed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
        if failed:
            raise RuntimeError(f"{what}: a process exited with {failed[0]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: only {got} of {n} after {timeout:.0f} s")


class Spy:
    """py-spy recording a process (raw collapsed stacks), stopped with SIGINT."""

    RATE = 250

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        self.process: subprocess.Popen[bytes] | None = None
        self.note = ""
        exe = Path(sys.executable).with_name("py-spy")
        found = str(exe) if exe.exists() else shutil.which("py-spy")
        if found is None:
            self.note = "py-spy not installed: profile skipped"
            return
        self.process = subprocess.Popen(
            [found, "record", "-p", str(pid), "-f", "raw", "-o", str(out), "--nolineno",
             "-r", str(self.RATE)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(0.3)  # attaching takes a moment
        if self.process.poll() is not None:
            err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
            self.note = f"py-spy could not attach: {err.strip()[-200:]}"
            self.process = None

    def stop(self, points: int) -> dict[str, Any]:
        if self.process is None:
            return {"note": self.note}
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return {"note": "py-spy did not stop"}
        return parse_profile(self.out, self.RATE, points)


def _frame_name(frame: str) -> str:
    return frame.strip()


def parse_profile(path: Path, rate: int, points: int, top: int = 15) -> dict[str, Any]:
    """Self time per frame from py-spy's raw output (``frame;frame;leaf count`` lines)."""
    own: Counter[str] = Counter()
    total = storage = 0
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {"note": "py-spy wrote no profile"}
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        own[_frame_name(frames[-1])] += count
        total += count
        if any("storage" in f or "sqlite3" in f for f in frames):
            storage += count
    if total == 0:
        return {"note": "py-spy took no samples"}
    return {
        "samples": total,
        "rate_hz": rate,
        "sampled_seconds": round(total / rate, 2),
        "storage_share": round(storage / total, 3),
        "top_self": [
            {
                "frame": frame,
                "share": round(count / total, 3),
                "sampled_us_per_point": round(count / rate / max(points, 1) * 1e6, 3),
            }
            for frame, count in own.most_common(top)
        ],
    }


# -- the bench context ---------------------------------------------------------------------


class Bench:
    """A work directory and a session root; each measurement gets a fresh home and session."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="metrana-bench-"))
        base = Path("/dev/shm") if Path("/dev/shm").is_dir() else self.work
        self.shm = base / f"metrana-bench-{uuid.uuid4().hex[:8]}"
        self.count = 0
        self.server: Server | None = None
        for name in list(os.environ):
            if name.startswith("METRANA_"):
                del os.environ[name]
        os.environ["METRANA_LOG_LEVEL"] = "Error"

    def fresh(self, tag: str, url: str | None = None, api_key: str | None = None) -> Path:
        """A new METRANA_HOME, session root and orchestration id in os.environ (inherited by
        every process started afterwards); answers the session root."""
        self.count += 1
        home = self.work / f"{self.count:03d}-{tag}"
        root = self.shm / f"{self.count:03d}-{tag}"
        os.environ["METRANA_HOME"] = str(home)
        os.environ["METRANA_SESSION_ROOT"] = str(root)
        os.environ["METRANA_ORCHESTRATION_ID"] = uuid.uuid4().hex
        for name in ("METRANA_INGESTION_URL", "METRANA_API_KEY", "METRANA_RETRY_MAX_ELAPSED"):
            os.environ.pop(name, None)
        if url is not None:
            os.environ["METRANA_INGESTION_URL"] = url
            os.environ["METRANA_API_KEY"] = api_key or ""
        return root

    @property
    def store(self) -> Path:
        return Path(os.environ["METRANA_HOME"]) / "store.sqlite"

    def http_server(self) -> Server:
        if self.server is None:
            self.server = Server(self.work / "server.sqlite")
        return self.server

    def cleanup(self) -> None:
        if self.server is not None:
            self.server.stop()
        _kill_dispatchers(self.shm)
        shutil.rmtree(self.shm, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)


def _provenance() -> dict[str, Any]:
    """The commit measured, and whether src/ had uncommitted changes (others edit it)."""
    import metrana

    src = Path(metrana.__file__).resolve().parent
    try:

        def git(*args: str) -> str:
            out = subprocess.run(
                ["git", *args], cwd=src, capture_output=True, text=True, timeout=10
            )
            return out.stdout

        head = git("rev-parse", "--short", "HEAD").strip()
        dirty = git("status", "--porcelain", ".")
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": head, "src_uncommitted_files": len(dirty.splitlines())}


def _other_cpu_percent(interval: float = 0.5) -> tuple[float, list[str]]:
    """CPU% used by processes other than this one and its children (how shared the machine
    is), and the busiest of them."""
    me = psutil.Process()
    ours = {me.pid, *(c.pid for c in me.children(recursive=True))}
    procs = [p for p in psutil.process_iter(["pid", "name", "cmdline"]) if p.pid not in ours]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(interval)
    busy = []
    for p in procs:
        try:
            busy.append((p.cpu_percent(None), " ".join(p.info["cmdline"] or [p.info["name"]])))
        except psutil.Error:
            continue
    busy.sort(reverse=True)
    total = sum(c for c, _ in busy)
    return round(total, 1), [f"{c:.0f}% {cmd[:70]}" for c, cmd in busy[:4] if c >= 5]


# -- import time ---------------------------------------------------------------------------


def bench_import(repeat: int) -> list[dict[str, Any]]:
    py = sys.executable
    # As an installed package is imported: from cached bytecode (some environments set
    # PYTHONDONTWRITEBYTECODE, which makes every import compile every module again).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([py, "-c", "import metrana"], check=True, capture_output=True, env=env)

    def wall(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([py, "-c", code], check=True, capture_output=True, env=env)
        return (time.perf_counter() - started) * 1000

    bare, full, cumulative, own = [], [], [], []
    biggest: dict[str, list[float]] = {}
    for _ in range(repeat):
        bare.append(wall("pass"))
        full.append(wall("import metrana"))
        result = subprocess.run(
            [py, "-X", "importtime", "-c", "import metrana"],
            capture_output=True,
            text=True,
            env=env,
        )
        own_self = 0.0
        for line in result.stderr.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) != 3 or not parts[1].isdigit():
                continue
            name = parts[2]
            self_us = int(parts[0].rsplit(":", 1)[-1])
            if name == "metrana" or name.startswith("metrana."):
                own_self += self_us / 1000  # metrana's own modules, without what they import
                if name == "metrana":
                    cumulative.append(int(parts[1]) / 1000)
            elif "." not in name and name not in ("encodings", "site"):
                # the top-level packages imported on the way (dependencies, stdlib)
                biggest.setdefault(name, []).append(int(parts[1]) / 1000)
        own.append(own_self)
    diffs = [f - b for f, b in zip(full, bare, strict=True)]
    return [
        {
            "figure": "import_time",
            "what": "baseline: python -c pass",
            "ms": round(_median(bare), 1),
            "runs": [round(x, 1) for x in bare],
        },
        {
            "figure": "import_time",
            "what": "python -c 'import metrana' minus python -c pass",
            "ms": round(_median(diffs), 1),
            "runs": [round(x, 1) for x in diffs],
        },
        {
            "figure": "import_time",
            "what": "import metrana (-X importtime, cumulative)",
            "ms": round(_median(cumulative), 1),
            "runs": [round(x, 1) for x in cumulative],
            "metrana_modules_self_ms": round(_median(own), 1),
            "largest_imports_ms": dict(
                sorted(
                    ((name, round(_median(v), 1)) for name, v in biggest.items()),
                    key=lambda item: -item[1],
                )[:12]
            ),
        },
    ]


# -- log() latency in this process ------------------------------------------------------------


def _shaped_append_factory() -> Callable[..., None]:
    """The bare append in the shape log() must have: a module function calling a method with
    log()'s arguments, a dict lookup of the series, ``time.time_ns()``, a lock around the
    encode and copy. What the bare append does not pay, and log() cannot avoid."""
    import threading as _threading

    encoder = msgspec.msgpack.Encoder()
    buf = bytearray(64)
    size = 8 * MIB
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the closure
    handle.truncate(size)
    mm = mmap.mmap(handle.fileno(), size)
    slots = memoryview(mm).cast("Q")

    class Series:
        __slots__ = ("id", "next_step")

        def __init__(self) -> None:
            self.id = 1
            self.next_step = 0

    class Shaped:
        def __init__(self) -> None:
            self.lock = _threading.Lock()
            self.plain = {"loss": Series()}
            self.encode_into = encoder.encode_into
            self.pos = 4096

        def log(
            self,
            name: str,
            value: float,
            scale: Any = None,
            step: int | None = None,
            labels: Any = None,
            timestamp: int | None = None,
        ) -> None:
            series = self.plain[name]
            if timestamp is None:
                timestamp = time.time_ns()
            with self.lock:
                self.encode_into((0, series.id, step, value, timestamp), buf, 8)
                n = len(buf)
                pos = self.pos
                if pos + n > size:
                    pos = 4096
                mm[pos : pos + n] = buf
                self.pos = pos + ((n + 7) & -8)
                slots[0] = self.pos
                series.next_step = step

    writer = Shaped()

    def log(
        name: str,
        value: float,
        scale: Any = None,
        step: int | None = None,
        labels: Any = None,
        timestamp: int | None = None,
    ) -> None:
        writer.log(name, value, scale, step, labels, timestamp)

    log.keep = (handle, mm, slots)  # type: ignore[attr-defined]
    return log


def bench_latency(bench: Bench, calls: int, repeat: int) -> list[dict[str, Any]]:
    """log() beside its baselines, interleaved (empty, bare, shaped, log; again), so that a
    slow phase of a shared machine hits every figure alike; each figure is the median over
    the repeats."""
    import metrana

    bare_fn = _bare_append_factory()
    shaped_fn = _shaped_append_factory()
    bench.fresh("latency")
    metrana.init(
        workspace_name=WORKSPACE,
        project_name=PROJECT,
        run_name=f"latency-{uuid.uuid4().hex[:8]}",
        backpressure_strategy="Block",
    )
    log = metrana.log
    runs: dict[str, list[dict[str, float]]] = {"empty": [], "bare": [], "shaped": [], "log": []}
    step = 1_000
    for k in range(repeat):
        runs["empty"].append(_time_calls(_empty, calls))
        runs["bare"].append(_time_calls(bare_fn, calls))
        runs["shaped"].append(_time_log_calls(shaped_fn, calls))
        # fewer calls than the ring holds, then flush: no run ever waits for room
        runs["log"].append(_time_log_calls(log, calls, start=step, warmup=0 if k else 1_000))
        step += calls
        metrana.flush(timeout=300)
    dropped = metrana.stats().process.dropped_queue_full
    metrana.close(close_strategy="CompleteAll", timeout=300)
    bare = _median_quantiles(runs["bare"])
    measured = _median_quantiles(runs["log"])
    ratios = [
        round(m["p50_us"] / b["p50_us"], 2) for m, b in zip(runs["log"], runs["bare"], strict=True)
    ]
    return [
        {"figure": "log_latency", "what": "empty Python call", **_median_quantiles(runs["empty"])},
        {"figure": "log_latency", "what": "bare msgspec encode + mmap copy", **bare},
        {
            "figure": "log_latency",
            "what": "bare append shaped like log() (2 calls, lookup, time_ns, lock)",
            **_median_quantiles(runs["shaped"]),
        },
        {
            "figure": "log_latency",
            "what": "metrana.log(name, value, step=)",
            **measured,
            "calls_per_run": calls,
            "dropped": dropped,
            "ratio_to_bare_p50": round(_median(ratios), 2),
            "ratio_to_bare_p50_runs": ratios,
            "ratio_to_bare_mean": round(measured["mean_us"] / bare["mean_us"], 2),
        },
    ]


# -- log() latency with the HTTP target healthy, stalled, unreachable ----------------------------


def _fault_child(conn: Any, calls: int, repeat: int) -> None:
    import metrana

    metrana.init(
        workspace_name=WORKSPACE,
        project_name=PROJECT,
        run_name=f"faulted-{uuid.uuid4().hex[:8]}",
        close_strategy="Immediate",
    )
    log = metrana.log
    healthy = [_time_log_calls(log, calls, start=1_000 + k * calls) for k in range(repeat)]
    metrana.flush(timeout=120)
    conn.send(healthy)
    conn.recv()  # the parent has stalled or cut the target
    time.sleep(0.1)
    step = 1_000 + repeat * calls
    faulted = [_time_log_calls(log, calls, start=step + k * calls, warmup=0) for k in range(repeat)]
    stats = metrana.stats().process
    conn.send((faulted, stats.dropped_queue_full, stats.pending))
    conn.recv()  # the fault is lifted
    metrana.close(timeout=30)


def bench_faulted(bench: Bench, calls: int, repeat: int) -> list[dict[str, Any]]:
    """log() in a process whose HTTP target stops answering: the ring absorbs the points
    (``calls * repeat`` stays below the default ring's 100,000 events)."""
    from metrana.testing import Fault, FaultProxy

    server = bench.http_server()
    ctx = mp.get_context("spawn")
    results: dict[str, list[dict[str, float]]] = {"healthy": []}
    notes: dict[str, dict[str, int]] = {}
    for kind in ("stalled", "unreachable"):
        proxy = FaultProxy(server.url) if kind == "unreachable" else None
        root = bench.fresh(kind, url=proxy.url if proxy else server.url, api_key=server.api_key)
        os.environ["METRANA_RETRY_MAX_ELAPSED"] = "5"
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_fault_child, args=(child, calls, repeat))
        process.start()
        stopped = False
        try:
            if not parent.poll(120):
                raise RuntimeError(f"log() under fault ({kind}): the child did not start")
            results["healthy"] += parent.recv()
            dispatcher = _dispatcher(root)
            cpu0 = wall0 = 0.0
            if dispatcher is not None:
                cpu0, wall0 = sum(dispatcher.cpu_times()[:2]), time.monotonic()
            if proxy is not None:
                proxy.set_fault(Fault.refuse())
            else:
                os.kill(server.pid, signal.SIGSTOP)
                stopped = True
            parent.send("go")
            if not parent.poll(120):
                raise RuntimeError(f"log() under fault ({kind}): no answer")
            faulted, dropped, pending = parent.recv()
            results[kind] = faulted
            busy = None
            if dispatcher is not None:
                with _suppress_psutil():
                    cpu = sum(dispatcher.cpu_times()[:2]) - cpu0
                    busy = round(cpu / (time.monotonic() - wall0) * 100, 1)
            notes[kind] = {
                "dropped": dropped,
                "pending_while_faulted": pending,
                "dispatcher_cpu_percent_while_faulted": busy,
            }
        finally:
            if stopped:
                os.kill(server.pid, signal.SIGCONT)
            if proxy is not None:
                proxy.set_fault(None)
            try:
                parent.send("done")
            except OSError:
                pass
            process.join(60)
            if process.is_alive():
                process.kill()
            if proxy is not None:
                proxy.close()
    what = {
        "healthy": "log() with the HTTP target healthy",
        "stalled": "log() while the target is stalled (server SIGSTOPped)",
        "unreachable": "log() while the target is unreachable (connections refused)",
    }
    return [
        {
            "figure": "log_latency_faulted",
            "what": what[kind],
            **_median_quantiles(results[kind]),
            **notes.get(kind, {}),
        }
        for kind in STALL_KINDS
        if results.get(kind)
    ]


# -- end to end: N writers until committed -------------------------------------------------------


def _writer_process(run_name: str, index: int, points: int, ready: Any, go: Any, done: Any) -> None:
    import metrana

    metrana.init(
        workspace_name=WORKSPACE,
        project_name=PROJECT,
        run_name=run_name,
        backpressure_strategy="Block",
        close_strategy="CompleteAll",
    )
    log = metrana.log
    name = f"loss_{index}"  # one series per writer: the same (series, step) is stored once
    ready.release()
    go.wait()
    for i in range(points):
        log(name, 0.5, step=i)
    metrana.close(timeout=900)
    done.release()


def _idle_child(run_name: str, ready: Any, release: Any) -> None:
    import metrana

    metrana.init(workspace_name=WORKSPACE, project_name=PROJECT, run_name=run_name)
    ready.release()
    release.wait()
    metrana.close(close_strategy="Immediate", timeout=30)


def _idle_host(rings: int, run_name: str, ready: Any, release: Any) -> None:
    """One spawned process that joins the session, then forks the others: ``rings`` idle
    writer processes, each with its own (empty) ring, that init() and wait."""
    import metrana

    metrana.init(workspace_name=WORKSPACE, project_name=PROJECT, run_name=run_name)
    fork = mp.get_context("fork")
    children = [
        fork.Process(target=_idle_child, args=(run_name, ready, release)) for _ in range(rings - 1)
    ]
    for child in children:
        child.start()
    ready.release()
    release.wait()
    for child in children:
        child.join(60)
    metrana.close(close_strategy="Immediate", timeout=30)


def bench_throughput(
    bench: Bench,
    writers: int,
    points: int,
    *,
    http: bool = False,
    idle: int = 0,
    profile: bool = False,
    label: str = "",
) -> dict[str, Any]:
    """N spawned writers log ``points`` each, flat out, from one start signal until the last
    ``close(CompleteAll)`` returned: every point acknowledged by the target."""
    server = bench.http_server() if http else None
    tag = "http" if http else "embedded"
    root = bench.fresh(tag, url=server.url if server else None,
                       api_key=server.api_key if server else None)  # fmt: skip
    run_name = f"{tag}-{uuid.uuid4().hex[:8]}"
    ctx = mp.get_context("spawn")
    ready, go, done = ctx.Semaphore(0), ctx.Event(), ctx.Semaphore(0)
    release = ctx.Event()
    host = None
    processes: list[Any] = []
    sampler = server_sampler = None
    spy: Spy | None = None
    profile_result: dict[str, Any] | None = None
    try:
        if idle:
            host = ctx.Process(target=_idle_host, args=(idle, run_name, ready, release))
            host.start()
            _wait_count(ready, idle, [host], 600, "idle rings")
        processes = [
            ctx.Process(target=_writer_process, args=(run_name, k, points, ready, go, done))
            for k in range(writers)
        ]
        for process in processes:
            process.start()
        _wait_count(ready, writers, processes, 600, "writers starting")
        dispatcher = _dispatcher(root)
        if dispatcher is not None:
            sampler = Sampler(dispatcher.pid)
            if profile:
                spy = Spy(dispatcher.pid, bench.work / f"profile-{bench.count}.txt")
        if server is not None:
            server_sampler = Sampler(server.pid)
        cpu0 = sampler.cpu_now() if sampler else 0.0
        server_cpu0 = server_sampler.cpu_now() if server_sampler else 0.0
        idle_procs: list[psutil.Process] = []
        if host is not None:
            with _suppress_psutil():
                top = psutil.Process(host.pid)
                # the first idle process started the dispatcher: its child, not an idle writer
                idle_procs = [
                    p
                    for p in [top, *top.children(recursive=True)]
                    if dispatcher is None or p.pid != dispatcher.pid
                ]
        idle_cpu0 = _cpu_sum(idle_procs)
        started = time.monotonic()
        go.set()
        _wait_count(done, writers, processes, 1800, "writers finishing")
        elapsed = time.monotonic() - started
        cpu1 = sampler.cpu_now() if sampler else 0.0
        server_cpu1 = server_sampler.cpu_now() if server_sampler else 0.0
        idle_cpu1 = _cpu_sum(idle_procs)
        total = writers * points
        if spy is not None:
            profile_result = spy.stop(total)
            spy = None
            if profile_result.get("top_self") and sampler is not None:
                # py-spy counts a runnable thread waiting for a CPU as busy: express each
                # frame's share of the samples as a share of the measured CPU time instead
                cpu_us = (cpu1 - cpu0) / total * 1e6
                profile_result["cpu_us_per_point"] = round(cpu_us, 3)
                for frame in profile_result["top_self"]:
                    frame["cpu_us_per_point"] = round(frame["share"] * cpu_us, 3)
    finally:
        release.set()
        go.set()
        if spy is not None:
            spy.stop(0)
        for process in [*processes, *([host] if host else [])]:
            process.join(120)
            if process.is_alive():
                process.kill()
        if sampler is not None:
            sampler.stop()
        if server_sampler is not None:
            server_sampler.stop()
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    stored = _stored_points(server.store if server else bench.store, run_name)
    target = "metrana serve over HTTP (loopback)" if http else "embedded store"
    result: dict[str, Any] = {
        "figure": "end_to_end",
        "what": f"{writers} writers -> {target}, until committed" + label,
        "writers": writers,
        "idle_rings": idle,
        "points": total,
        "stored": stored,
        "seconds": round(elapsed, 3),
        "points_per_s": round(total / elapsed),
        "ok": stored == total and not failed,
    }
    if sampler is not None:
        result["dispatcher_cpu_s"] = round(cpu1 - cpu0, 3)
        result["dispatcher_cpu_s_per_million"] = round((cpu1 - cpu0) / total * 1e6, 3)
        result["dispatcher_rss_start_mib"] = round(sampler.start_rss / MIB, 1)
        result["dispatcher_peak_rss_mib"] = round(sampler.peak_rss / MIB, 1)
        result["dispatcher_peak_rss_shmem_mib"] = round(sampler.peak_shmem / MIB, 1)
        result["dispatcher_peak_rss_own_mib"] = round(sampler.peak_own / MIB, 1)
    if idle_procs:
        # the idle writers' own CPU (their watchdog threads) during the timed run
        result["idle_processes_cpu_percent"] = round((idle_cpu1 - idle_cpu0) / elapsed * 100, 1)
    if server_sampler is not None:
        result["server_rss_idle_mib"] = round(server_sampler.start_rss / MIB, 1)
        result["server_peak_rss_mib"] = round(server_sampler.peak_rss / MIB, 1)
        result["server_cpu_s_per_million"] = round((server_cpu1 - server_cpu0) / total * 1e6, 3)
    if profile_result is not None:
        result["profile"] = profile_result
    return result


def _median_runs(runs: list[dict[str, Any]], what: str) -> dict[str, Any]:
    """One figure from several runs: the median of each number, every run kept."""
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    out: dict[str, Any] = {"figure": runs[0]["figure"], "what": what}
    for key in keys:
        values = [r[key] for r in runs if key in r]
        median = _median(values)
        out[key] = round(median) if isinstance(runs[0][key], int) else round(median, 3)
    out["stored"] = sum(r["stored"] for r in runs)
    out["points"] = sum(r["points"] for r in runs)
    out["ok"] = all(r["ok"] for r in runs)
    out["runs"] = [
        {k: r[k] for k in ("points_per_s", "seconds", "dispatcher_cpu_s_per_million") if k in r}
        for r in runs
    ]
    return out


def _queue_producer(queue: Any, points: int, ready: Any, go: Any) -> None:
    ready.release()
    go.wait()
    for i in range(points):
        queue.put((0, 1, i, 0.5, 1_700_000_000_000_000_000))
    queue.put(None)


def bench_queue_baseline(writers: int, points: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue(maxsize=100_000)
    ready, go = ctx.Semaphore(0), ctx.Event()
    processes = [
        ctx.Process(target=_queue_producer, args=(queue, points, ready, go)) for _ in range(writers)
    ]
    for p in processes:
        p.start()
    _wait_count(ready, writers, processes, 300, "queue producers")
    started = time.perf_counter()
    go.set()
    done = received = 0
    while done < writers:
        item = queue.get()
        if item is None:
            done += 1
        else:
            received += 1
    elapsed = time.perf_counter() - started
    for p in processes:
        p.join(60)
    return {
        "figure": "end_to_end",
        "what": f"baseline: multiprocessing.Queue.put, {writers} producers -> 1 consumer",
        "writers": writers,
        "points": received,
        "seconds": round(elapsed, 3),
        "points_per_s": round(received / elapsed),
    }


# -- memory and start/stop, each in a fresh process ------------------------------------------


def _memory_child(conn: Any, points: int) -> None:
    import metrana

    before = _proc_status()
    metrana.init(
        workspace_name=WORKSPACE,
        project_name=PROJECT,
        run_name=f"memory-{uuid.uuid4().hex[:8]}",
        backpressure_strategy="Block",
    )
    for i in range(points):
        metrana.log("loss", 0.5, step=i)
    metrana.flush(timeout=300)
    after = _proc_status()
    metrana.close(timeout=60)
    conn.send((before, after))


def bench_memory(bench: Bench, points: int) -> dict[str, Any]:
    bench.fresh("memory")
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_memory_child, args=(child, points))
    process.start()
    if not parent.poll(300):
        process.kill()
        raise RuntimeError("memory: no answer from the child")
    before, after = parent.recv()
    process.join(60)
    added = {
        key: round((after.get(key, 0) - before.get(key, 0)) / MIB, 2)
        for key in ("VmRSS", "RssAnon", "RssFile", "RssShmem")
    }
    return {
        "figure": "memory",
        "what": "added RSS per writer process (default ring), after init + logging",
        "mib": added["VmRSS"],
        "points_logged": points,
        "added_mib_by_kind": added,
        "rss_before_init_mib": round(before.get("VmRSS", 0) / MIB, 1),
    }


def _startstop_child(conn: Any) -> None:
    import metrana

    started_ns = time.time_ns()
    started = time.perf_counter()
    metrana.init(
        workspace_name=WORKSPACE,
        project_name=PROJECT,
        run_name=f"startstop-{uuid.uuid4().hex[:8]}",
    )
    metrana.log("loss", 0.5, step=0)
    first = time.perf_counter() - started
    accepted_ns = time.time_ns()
    # where the time went, from the session directory: the dispatcher's start (dispatcher.json
    # says when it held its lock, imports done) and its handshake (handshake.json written)
    phases: dict[str, float] = {}
    root = Path(os.environ["METRANA_SESSION_ROOT"])
    try:
        info_path = next(root.glob("*/dispatcher.json"))
        locked_ns = json.loads(info_path.read_bytes())["started_ns"]
        handshake_ns = (info_path.parent / "handshake.json").stat().st_mtime_ns
        phases = {
            "until the dispatcher runs (spawn, imports, lock)": (locked_ns - started_ns) / 1e6,
            "dispatcher opens the run (store, handshake)": (handshake_ns - locked_ns) / 1e6,
            "writer sees the handshake, first log()": (accepted_ns - handshake_ns) / 1e6,
        }
    except (StopIteration, OSError, ValueError, KeyError):
        pass
    for i in range(1, 100):
        metrana.log("loss", 0.5, step=i)
    metrana.flush(timeout=60)
    time.sleep(0.3)  # idle: nothing pending
    started = time.perf_counter()
    metrana.close()
    closed = time.perf_counter() - started
    conn.send((first * 1000, closed * 1000, phases))


def bench_start_stop(bench: Bench, repeat: int) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    first, closed = [], []
    phases: dict[str, list[float]] = {}
    for _ in range(repeat):
        bench.fresh("startstop")  # a new session: this init() starts the dispatcher
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_startstop_child, args=(child,))
        process.start()
        if not parent.poll(120):
            process.kill()
            raise RuntimeError("start/stop: no answer from the child")
        a, b, where = parent.recv()
        for name, ms in where.items():
            phases.setdefault(name, []).append(ms)
        first.append(round(a, 1))
        closed.append(round(b, 1))
        process.join(60)
    return [
        {
            "figure": "start_stop",
            "what": "init() until the first log() is accepted (dispatcher start included)",
            "ms": round(_median(first), 1),
            "runs": first,
            "phases_ms": {name: round(_median(v), 1) for name, v in phases.items()},
        },
        {
            "figure": "start_stop",
            "what": "close() of an idle writer",
            "ms": round(_median(closed), 1),
            "runs": closed,
        },
    ]


# -- targets ---------------------------------------------------------------------------------


def _find(results: list[dict[str, Any]], figure: str, contains: str = "") -> dict[str, Any] | None:
    for r in results:
        if r.get("figure") == figure and contains in r.get("what", ""):
            return r
    return None


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f} points/s"


def evaluate(results: list[dict[str, Any]], writers: int) -> list[dict[str, Any]]:
    """One line per target row: the target, the measured figure, met or not, the baselines."""
    rows: list[dict[str, Any]] = []

    def row(name: str, target: str, measured: str | None, met: bool | None, base: str) -> None:
        rows.append(
            {
                "figure": "target",
                "what": f"{name}: {target}",
                "row": name,
                "target": target,
                "measured": measured if measured is not None else "not measured",
                "met": met,
                "baselines": base,
            }
        )

    empty = _find(results, "log_latency", "empty")
    bare = _find(results, "log_latency", "bare")
    log = _find(results, "log_latency", "metrana.log")
    shaped = _find(results, "log_latency", "shaped like log()")
    base = (
        f"empty call p50 {empty['p50_us']} µs; bare encode+mmap p50 {bare['p50_us']} / "
        f"p99 {bare['p99_us']} µs"
        if empty and bare
        else ""
    )
    if shaped:
        base += (
            f"; bare append shaped like log() p50 {shaped['p50_us']} / p99 {shaped['p99_us']} µs"
        )
    row("log() in one process", "p50 ≤ 0.8 µs",
        f"p50 {log['p50_us']} µs (mean {log['mean_us']})" if log else None,
        log["p50_us"] <= 0.8 if log else None, base)  # fmt: skip
    row("log() in one process", "p99 ≤ 1.5 µs", f"p99 {log['p99_us']} µs" if log else None,
        log["p99_us"] <= 1.5 if log else None, base)  # fmt: skip
    row("log() in one process", "≤ 2x bare msgspec+mmap append",
        f"{log['ratio_to_bare_p50']}x at p50 ({log['ratio_to_bare_mean']}x mean)" if log else None,
        log["ratio_to_bare_p50"] <= 2.0 if log else None, base)  # fmt: skip
    healthy = _find(results, "log_latency_faulted", "healthy")
    for kind in ("stalled", "unreachable"):
        r = _find(results, "log_latency_faulted", kind)
        row(f"log() while the target is {kind}", "p99 ≤ 1.5 µs (never waits on the network)",
            f"p99 {r['p99_us']} µs, p50 {r['p50_us']} µs" if r else None,
            r["p99_us"] <= 1.5 if r else None,
            f"same process, target healthy: p50 {healthy['p50_us']} / p99 {healthy['p99_us']} µs"
            if healthy else "")  # fmt: skip
    queue = _find(results, "end_to_end", "baseline: multiprocessing.Queue")
    qbase = f"multiprocessing.Queue.put: {_fmt_rate(queue['points_per_s'])}" if queue else ""
    emb = _find(results, "end_to_end", f"{writers} writers -> embedded store, until committed")
    row(f"{writers} writers -> embedded store, until committed", "≥ 1,000,000 points/s",
        _fmt_rate(emb["points_per_s"]) if emb else None,
        emb["points_per_s"] >= 1_000_000 if emb else None, qbase)  # fmt: skip
    http = _find(results, "end_to_end", f"{writers} writers -> metrana serve")
    row(f"{writers} writers -> metrana serve (HTTP), until committed", "≥ 500,000 points/s",
        _fmt_rate(http["points_per_s"]) if http else None,
        http["points_per_s"] >= 500_000 if http else None, qbase)  # fmt: skip
    cpu = _find(results, "dispatcher_cpu", "excluding storage")
    cpu_total = _find(results, "dispatcher_cpu", "embedded, total")
    cpu_http = _find(results, "dispatcher_cpu", "HTTP")
    row("dispatcher CPU (excluding storage engine / server)", "≤ 0.5 CPU-s per million points",
        f"{cpu['cpu_s_per_million']} CPU-s/M (embedded, storage share removed)" if cpu else None,
        cpu["cpu_s_per_million"] <= 0.5 if cpu else None,
        "; ".join(x for x in (
            f"embedded incl. SQLite {cpu_total['cpu_s_per_million']}" if cpu_total else "",
            f"HTTP target {cpu_http['cpu_s_per_million']} CPU-s/M" if cpu_http else "",
        ) if x))  # fmt: skip
    mem = _find(results, "memory", "added RSS per writer")
    row("memory: writer process", "≤ 8 MiB added RSS (default ring)",
        f"{mem['mib']} MiB" if mem else None, mem["mib"] <= 8 if mem else None,
        "by kind: " + ", ".join(f"{k} {v}" for k, v in mem["added_mib_by_kind"].items())
        if mem else "")  # fmt: skip
    disp = _find(results, "memory", "dispatcher peak RSS")
    row("memory: dispatcher", "≤ 80 MiB RSS", f"{disp['mib']} MiB peak (largest run)"
        if disp else None, disp["mib"] <= 80 if disp else None,
        f"peaks of the embedded runs {disp['embedded_runs']}, of the HTTP runs "
        f"{disp['http_runs']} MiB; of the peak, at most {disp['rings_shmem_mib']} MiB are the "
        f"writers' rings mapped (shared memory), at most {disp['own_mib']} MiB its own "
        "(anon + file)" if disp else "")  # fmt: skip
    srv = _find(results, "memory", "server peak RSS")
    row("memory: server under load", "≤ 150 MiB RSS", f"{srv['mib']} MiB peak" if srv else None,
        srv["mib"] <= 150 if srv else None,
        f"idle before load {srv['idle_mib']} MiB" if srv else "")  # fmt: skip
    imp = _find(results, "import_time", "minus")
    imp_cum = _find(results, "import_time", "importtime")
    imp_bare = _find(results, "import_time", "baseline")
    row("start: import metrana", "≤ 80 ms", f"{imp['ms']} ms" if imp else None,
        imp["ms"] <= 80 if imp else None,
        "; ".join(x for x in (
            f"python -c pass {imp_bare['ms']} ms" if imp_bare else "",
            f"-X importtime cumulative {imp_cum['ms']} ms" if imp_cum else "",
        f"metrana's own modules {imp_cum.get('metrana_modules_self_ms')} ms; largest "
        "packages imported: " + ", ".join(f"{k} {v}" for k, v in
                                          list(imp_cum.get("largest_imports_ms", {}).items())[:6])
        if imp_cum else "",
        ) if x))  # fmt: skip
    first = _find(results, "start_stop", "init()")
    row("start: init() until the first log() accepted", "≤ 300 ms (dispatcher start included)",
        f"{first['ms']} ms" if first else None, first["ms"] <= 300 if first else None,
        f"runs: {first['runs']}; median phases: " + ", ".join(f"{k} {v} ms" for k, v in
                                                              first.get("phases_ms", {}).items())
        if first else "")  # fmt: skip
    closing = _find(results, "start_stop", "close()")
    row("stop: close() of an idle writer", "≤ 50 ms",
        f"{closing['ms']} ms" if closing else None, closing["ms"] <= 50 if closing else None,
        f"runs: {closing['runs']}" if closing else "")  # fmt: skip
    curve = [r for r in results if r.get("figure") == "scale" and "idle" not in r["what"]]
    row("scale: throughput for 1..32 writers", "a curve (docs/perf/throughput.png)",
        ", ".join(f"{r['writers']}: {r['points_per_s']:,}" for r in curve) if curve else None,
        all(r["ok"] for r in curve) if curve else None, "points/s by writer count")  # fmt: skip
    idle = _find(results, "scale", "idle rings")
    row(f"scale: {idle['idle_rings'] if idle else 64} idle rings",
        f"< 5% of the {writers}-writer throughput",
        f"cost {idle['cost_percent']}% ({_fmt_rate(idle['with_idle'])} with, "
        f"{_fmt_rate(idle['without_idle'])} without)" if idle else None,
        idle["cost_percent"] < 5 if idle else None,
        f"medians of {idle['repeat']} interleaved runs each; dispatcher CPU-s/M "
        f"{idle['dispatcher_cpu_s_per_million_with']} with, "
        f"{idle['dispatcher_cpu_s_per_million_without']} without; the idle processes "
        f"themselves used {idle['idle_processes_cpu_percent']}% of a CPU"
        if idle else "")  # fmt: skip
    return rows


# -- output ------------------------------------------------------------------------------------


def print_table(rows: list[dict[str, Any]], out: Any = sys.stdout) -> None:
    width = max(len(r["row"]) for r in rows)
    twidth = max(len(r["target"]) for r in rows)
    print(f"{'row':<{width}}  {'target':<{twidth}}  {'met':<7}  measured", file=out)
    print("-" * (width + twidth + 50), file=out)
    for r in rows:
        met = "n/a" if r["met"] is None else ("met" if r["met"] else "NOT MET")
        print(f"{r['row']:<{width}}  {r['target']:<{twidth}}  {met:<7}  {r['measured']}", file=out)
        if r["baselines"]:
            print(f"    beside: {r['baselines']}", file=out)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The target rows as a Markdown table (for docs/performance.md)."""
    lines = [
        "| figure | target | measured | met | beside it, same run |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        met = "n/a" if r["met"] is None else ("met" if r["met"] else "**not met**")
        cells = [r["row"], r["target"], r["measured"], met, r["baselines"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], writers: int, path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return "matplotlib not installed: no plot"
    curve = sorted(
        (r for r in results if r.get("figure") == "scale" and "idle" not in r["what"]),
        key=lambda r: r["writers"],
    )
    if not curve:
        return "no scale figures: no plot"
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=120)
    xs = [r["writers"] for r in curve]
    ys = [r["points_per_s"] for r in curve]
    lows = [y - min((x["points_per_s"] for x in r.get("runs", [])), default=y) for y, r in
            zip(ys, curve, strict=True)]  # fmt: skip
    highs = [max((x["points_per_s"] for x in r.get("runs", [])), default=y) - y for y, r in
             zip(ys, curve, strict=True)]  # fmt: skip
    ax.errorbar(xs, ys, yerr=[lows, highs], fmt="o-", color="C0", capsize=3,
                label="embedded store, until committed (median, min-max)")  # fmt: skip
    ax.axhline(
        1_000_000, ls="--", color="C0", alpha=0.5, label=f"target, {writers} writers, embedded"
    )
    headline = _find(results, "end_to_end", f"{writers} writers -> embedded store, until committed")
    if headline:
        ax.plot([writers], [headline["points_per_s"]], "D", color="C0", ms=7, mfc="white",
                label="embedded, headline runs (median)")  # fmt: skip
    http = _find(results, "end_to_end", f"{writers} writers -> metrana serve")
    if http:
        ax.plot([writers], [http["points_per_s"]], "s", color="C1", ms=8,
                label="metrana serve over HTTP (median)")  # fmt: skip
        ax.axhline(500_000, ls=":", color="C1", alpha=0.7, label=f"target, {writers} writers, HTTP")
    queue = _find(results, "end_to_end", "baseline: multiprocessing.Queue")
    if queue:
        ax.plot([queue["writers"]], [queue["points_per_s"]], "^", color="C2", ms=8,
                label="baseline: multiprocessing.Queue.put")  # fmt: skip
    idle = _find(results, "scale", "idle rings")
    if idle:
        ax.plot([writers], [idle["with_idle"]], "x", color="C3", ms=9,
                label=f"{writers} writers + {idle['idle_rings']} idle rings")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.set_xticklabels([str(x) for x in xs])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k"))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("writer processes")
    ax.set_ylabel("points per second, end to end")
    machine = _find(results, "environment", "machine") or {}
    load = (machine.get("loadavg_start") or [None])[0]
    where = f", load {load:.1f} at the start" if load is not None else ""
    ax.set_title(f"Metrana throughput vs writers ({os.cpu_count()} CPUs{where})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return str(path)


# -- the run -----------------------------------------------------------------------------------

SECTIONS = (
    "import", "latency", "faulted", "startstop", "memory", "queue", "embedded", "profile",
    "http", "scale", "idle",
)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    writers, points, calls, repeat = args.writers, args.points, args.calls, args.repeat
    http_points, scale_total, idle_rings, idle_points = (
        args.http_points,
        args.scale_points,
        args.idle_rings,
        args.idle_points,
    )
    scale = [int(x) for x in args.scale.split(",") if x]
    memory_points = 200_000  # twice the default ring (100,000 events): every page touched
    startstop_repeat = 5
    queue_points = max(1, points // 5)
    fault_calls = min(calls, 25_000)  # 3 runs stay below the ring's 100,000
    plot_path: Path | None = None if args.no_plot else Path(args.plot or DEFAULT_PLOT)
    if args.quick:
        writers, points, calls, repeat = 2, 5_000, 5_000, 1
        http_points, scale_total, idle_rings, idle_points = 5_000, 8_000, 4, 5_000
        scale, memory_points, startstop_repeat, queue_points = [1, 2], 20_000, 1, 5_000
        fault_calls = 2_000
        if args.plot is None and not args.no_plot:
            plot_path = None  # set below to the work directory: never touch docs/ when quick
    sections = set(args.only.split(",")) if args.only else set(SECTIONS)
    if args.quick or args.no_profile:
        sections.discard("profile")
    unknown = sections - set(SECTIONS)
    if unknown:
        print(f"unknown sections: {sorted(unknown)}; known: {SECTIONS}", file=sys.stderr)
        return 2

    bench = Bench()
    scratch: Path | None = None
    if args.quick and plot_path is None and not args.no_plot:
        scratch = Path(tempfile.mkdtemp(prefix="metrana-bench-plot-"))
        plot_path = scratch / "throughput.png"
    results: list[dict[str, Any]] = []

    def emit(*figures: dict[str, Any]) -> None:
        for figure in figures:
            results.append(figure)
            line = json.dumps(figure, ensure_ascii=False)
            print(line, flush=True)
            if args.json:
                with open(args.json, "a") as out:
                    out.write(line + "\n")

    other, busiest = _other_cpu_percent()
    environment = {
        "figure": "environment",
        "what": "machine",
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "other_processes_cpu_percent_start": other,
        "busiest_other_processes": busiest,
        "quick": bool(args.quick),
        "repeat": repeat,
        **_provenance(),
    }
    emit(environment)
    started = time.monotonic()
    try:
        if "import" in sections:
            emit(*bench_import(max(3, repeat + 2) if not args.quick else 2))
        if "latency" in sections:
            emit(*bench_latency(bench, calls, max(repeat, 5) if not args.quick else 1))
        if "startstop" in sections:
            emit(*bench_start_stop(bench, startstop_repeat))
        if "memory" in sections:
            emit(bench_memory(bench, memory_points))
        if "faulted" in sections:
            emit(*bench_faulted(bench, fault_calls, repeat))
        if "queue" in sections:
            emit(bench_queue_baseline(writers, queue_points))
        embedded_runs: list[dict[str, Any]] = []
        if "embedded" in sections:
            embedded_runs = [bench_throughput(bench, writers, points) for _ in range(repeat)]
            what = f"{writers} writers -> embedded store, until committed"
            emit(_median_runs(embedded_runs, what))
        profiled = None
        if "profile" in sections:
            profiled = bench_throughput(
                bench, writers, points, profile=True, label=" (profiled, not in the medians)"
            )
            emit({k: v for k, v in profiled.items() if k != "profile"})
            emit({"figure": "profile", "what": "dispatcher, py-spy self time",
                  **profiled.get("profile", {"note": "no dispatcher found"})})  # fmt: skip
        http_runs: list[dict[str, Any]] = []
        if "http" in sections:
            http_runs = [
                bench_throughput(bench, writers, http_points, http=True) for _ in range(repeat)
            ]
            what = f"{writers} writers -> metrana serve over HTTP (loopback), until committed"
            emit(_median_runs(http_runs, what))
        emit(*_derived(embedded_runs, http_runs, profiled))
        if "scale" in sections:
            for n in scale:
                runs = [bench_throughput(bench, n, max(1, scale_total // n)) for _ in range(repeat)]
                what = f"{n} writer(s) -> embedded store, until committed"
                emit({**_median_runs(runs, what), "figure": "scale"})
        if "idle" in sections:
            without, with_idle = [], []
            for _ in range(repeat):
                without.append(bench_throughput(bench, writers, idle_points))
                with_idle.append(bench_throughput(bench, writers, idle_points, idle=idle_rings))
            w0 = _median([r["points_per_s"] for r in without])
            w1 = _median([r["points_per_s"] for r in with_idle])
            emit(
                {
                    "figure": "scale",
                    "what": f"{writers} writers with {idle_rings} idle rings vs without",
                    "writers": writers,
                    "idle_rings": idle_rings,
                    "repeat": repeat,
                    "without_idle": round(w0),
                    "with_idle": round(w1),
                    "cost_percent": round((1 - w1 / w0) * 100, 1),
                    "dispatcher_cpu_s_per_million_without": round(
                        _median([r.get("dispatcher_cpu_s_per_million", 0) for r in without]), 3
                    ),
                    "dispatcher_cpu_s_per_million_with": round(
                        _median([r.get("dispatcher_cpu_s_per_million", 0) for r in with_idle]), 3
                    ),
                    "idle_processes_cpu_percent": _median(
                        [r.get("idle_processes_cpu_percent", 0.0) for r in with_idle]
                    ),
                    "runs_without": [r["points_per_s"] for r in without],
                    "runs_with": [r["points_per_s"] for r in with_idle],
                    "ok": all(r["ok"] for r in [*without, *with_idle]),
                }
            )
    finally:
        bench.cleanup()
    other, busiest = _other_cpu_percent()
    emit(
        {
            "figure": "environment",
            "what": "machine at the end",
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            "other_processes_cpu_percent_end": other,
            "busiest_other_processes": busiest,
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    rows = evaluate(results, writers)
    emit(*rows)
    if plot_path is not None:
        emit({"figure": "plot", "what": "throughput vs writers", "path": plot(results, writers,
              plot_path)})  # fmt: skip
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.markdown:
        Path(args.markdown).write_text(markdown_table(rows))
    print()
    print_table(rows)
    prof = _find(results, "profile")
    if prof and prof.get("top_self"):
        print()
        print(f"dispatcher profile (py-spy, {prof['samples']} samples, "
              f"{prof.get('cpu_us_per_point', '?')} CPU-µs per point; storage share "
              f"{prof['storage_share']:.0%}): top self time")  # fmt: skip
        per = "cpu_us_per_point" if "cpu_us_per_point" in prof else "sampled_us_per_point"
        for f in prof["top_self"]:
            print(f"  {f['share']:>6.1%}  {f[per]:>7.3f} µs/point  {f['frame']}")
    elif prof:
        print(f"\ndispatcher profile: {prof.get('note')}")
    ok = all(r.get("ok", True) for r in results)
    return 0 if ok else 1


DEFAULT_PLOT = str(ROOT / "docs" / "perf" / "throughput.png")


def _derived(
    embedded: list[dict[str, Any]], http: list[dict[str, Any]], profiled: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Dispatcher CPU per million points and peak RSS figures, from the end-to-end runs."""
    out: list[dict[str, Any]] = []
    emb_cpu = [r["dispatcher_cpu_s_per_million"] for r in embedded if "dispatcher_cpu_s" in r]
    if emb_cpu:
        total = _median(emb_cpu)
        out.append({"figure": "dispatcher_cpu", "what": "embedded, total (SQLite included)",
                    "cpu_s_per_million": round(total, 3), "runs": emb_cpu})  # fmt: skip
        share = (profiled or {}).get("profile", {}).get("storage_share")
        if share is not None:
            out.append({
                "figure": "dispatcher_cpu",
                "what": "embedded, excluding storage (profile's storage share removed)",
                "cpu_s_per_million": round(total * (1 - share), 3),
                "storage_share": share,
            })  # fmt: skip
    http_cpu = [r["dispatcher_cpu_s_per_million"] for r in http if "dispatcher_cpu_s" in r]
    if http_cpu:
        out.append(
            {
                "figure": "dispatcher_cpu",
                "what": "HTTP target (server in its own process)",
                "cpu_s_per_million": round(_median(http_cpu), 3),
                "runs": http_cpu,
            }
        )
    rss_embedded = [
        r["dispatcher_peak_rss_mib"] for r in embedded if "dispatcher_peak_rss_mib" in r
    ]
    rss_http = [r["dispatcher_peak_rss_mib"] for r in http if "dispatcher_peak_rss_mib" in r]
    own = [r["dispatcher_peak_rss_own_mib"] for r in [*embedded, *http]
           if "dispatcher_peak_rss_own_mib" in r]  # fmt: skip
    shmem = [r["dispatcher_peak_rss_shmem_mib"] for r in [*embedded, *http]
             if "dispatcher_peak_rss_shmem_mib" in r]  # fmt: skip
    if rss_embedded or rss_http:
        out.append({"figure": "memory", "what": "dispatcher peak RSS (VmHWM) under load",
                    "mib": max(rss_embedded + rss_http), "embedded_runs": rss_embedded,
                    "http_runs": rss_http, "own_mib": max(own, default=0),
                    "rings_shmem_mib": max(shmem, default=0)})  # fmt: skip
    server = [r["server_peak_rss_mib"] for r in http if "server_peak_rss_mib" in r]
    if server:
        out.append({"figure": "memory", "what": "server peak RSS (VmHWM) under load",
                    "mib": max(server), "idle_mib": http[0]["server_rss_idle_mib"]})  # fmt: skip
    return out
