"""Helpers for testing code that uses Metrana: a real server in a thread."""

from .server._serve import RunningServer, serve_in_thread

__all__ = ["RunningServer", "serve_in_thread"]
