"""A throwaway PostgreSQL cluster for tests and benchmarks: ``initdb`` into a temporary
directory, ``postgres`` on a free loopback port, stopped and removed afterwards.

The binaries are found with ``pg_config --bindir``, else under ``/usr/lib/postgresql/*/bin``
(Debian's ``postgresql`` package). PostgreSQL refuses to run as root: as root, the cluster
runs as the ``postgres`` user (Debian's package creates it) through ``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PostgresCluster", "find_postgres_bindir", "postgres_cluster"]

_USER = "metrana"


def find_postgres_bindir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    candidates: list[str] = []
    if shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, check=True
            )
            candidates.append(out.stdout.strip())
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=lambda p: int(Path(p).parent.name), reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """A running throwaway cluster: databases are made with :meth:`create_database`; the
    server can be stopped and started again (on the same port) to test an outage."""

    def __init__(self, bindir: Path, root: Path, port: int, as_user: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = port
        self._as_user = as_user

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [str(self.bindir / tool), *args]
        if self._as_user is not None:
            command = ["runuser", "-u", self._as_user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip()}")

    def url(self, database: str = "postgres") -> str:
        """The URL of a database of the cluster."""
        return f"postgresql://{_USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the server (and wait until it accepts connections)."""
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root}"
            " -c fsync=off -c full_page_writes=off"
            " -c max_connections=300 -c shared_buffers=64MB"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as if it crashed)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; answer its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database`, its connections closed."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A fresh cluster on a free loopback port (user ``metrana``, trust authentication, no
    fsync: for tests only, yet a crash of the server alone loses no commit); stopped and
    removed on exit."""
    bindir = find_postgres_bindir()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL is not installed (no initdb in pg_config --bindir nor "
            "/usr/lib/postgresql/*/bin): apt-get install postgresql"
        )
    as_user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="metrana-pg-"))
    if as_user is not None:
        shutil.chown(root, as_user)
    cluster = PostgresCluster(bindir, root, _free_port(), as_user)
    started = False
    try:
        cluster._run("initdb", "-D", str(cluster.data), "-U", _USER, "--auth=trust",
                     "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        started = True  # from here a server may run, even if start() then fails
        cluster.start()
        yield cluster
    finally:
        if started:
            try:
                cluster.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                _kill_postmaster(cluster.data)
        shutil.rmtree(root, ignore_errors=True)


def _kill_postmaster(data: Path) -> None:
    """SIGKILL the server of ``data`` by the pid it wrote, when pg_ctl could not stop it (its
    directory is about to be removed)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)
