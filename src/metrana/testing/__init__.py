"""Helpers for testing code that uses Metrana, and Metrana itself.

- :func:`serve_in_thread`: a real ``metrana serve`` on 127.0.0.1 and a free port.
- :class:`FaultProxy` and :class:`Fault`: a loopback proxy that injects HTTP faults.
- :class:`CapturingTarget`: a delivery target that keeps points in memory.
- :class:`InProcessSession`: a writer and a dispatcher in one process.
- :func:`simulate_fork`, :func:`reset`: fork behaviour and a fresh state in one process.
- :func:`postgres_cluster`: a throwaway PostgreSQL cluster on a free loopback port.
- :func:`wait_until`: poll a condition with a timeout instead of sleeping.
- :func:`read_rows`, :func:`stored_points`: a run's events read back whole through the REST
  API (paged past its row limit).
"""

from __future__ import annotations

from .._files import wait_until
from ..server._serve import RunningServer, serve_in_thread
from ._capture import CapturingTarget
from ._fault_proxy import Fault, FaultProxy
from ._inprocess import InProcessSession, reset, simulate_fork
from ._postgres import PostgresCluster, postgres_cluster
from ._readback import read_rows, stored_points

__all__ = [
    "CapturingTarget",
    "Fault",
    "FaultProxy",
    "InProcessSession",
    "PostgresCluster",
    "RunningServer",
    "postgres_cluster",
    "read_rows",
    "reset",
    "serve_in_thread",
    "simulate_fork",
    "stored_points",
    "wait_until",
]
