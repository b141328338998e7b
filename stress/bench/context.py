"""The bench context: a work directory, a session root, the HTTP server, the environment."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

from .processes import Server, kill_dispatchers


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
        """The embedded store of the current home."""
        return Path(os.environ["METRANA_HOME"]) / "store.sqlite"

    def http_server(self) -> Server:
        """The one ``metrana serve`` of this bench, started on first use."""
        if self.server is None:
            self.server = Server(self.work / "server.sqlite")
        return self.server

    def cleanup(self) -> None:
        """Stop the server and every dispatcher left, remove the directories."""
        if self.server is not None:
            self.server.stop()
        kill_dispatchers(self.shm)
        shutil.rmtree(self.shm, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)
