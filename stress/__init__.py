"""Benchmarks and stress runs for Metrana (``python -m stress bench``)."""
