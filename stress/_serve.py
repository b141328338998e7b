"""``metrana serve`` as both harnesses start it: in its own process, read until it says where
it listens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SERVING = "Metrana server on"


def start_serve(store: Path | str, port: int) -> tuple[subprocess.Popen[str], str, str]:
    """``metrana serve --store STORE --port PORT`` (port 0: any free one). Answers the
    process, the API key it printed on creating the store (empty when the store had one) and
    the last line read: ``Metrana server on URL`` once it listens, else why it did not start."""
    process = subprocess.Popen(
        [sys.executable, "-m", "metrana.cli", "serve", "--store", str(store), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    api_key = ""
    if line.startswith("Created the first API key"):
        api_key = process.stdout.readline().strip()
        line = process.stdout.readline()
    return process, api_key, line
