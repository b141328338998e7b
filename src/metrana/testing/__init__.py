"""Helpers for testing code that uses Metrana, and Metrana itself: a real server in a thread,
a fault-injecting proxy."""

from __future__ import annotations

from ..server._serve import RunningServer, serve_in_thread
from ._fault_proxy import Fault, FaultProxy

__all__ = ["Fault", "FaultProxy", "RunningServer", "serve_in_thread"]
