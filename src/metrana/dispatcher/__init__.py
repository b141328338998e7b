"""The dispatcher: one process per (run, host) that drains every ring of its session,
deduplicates, batches by series and delivers to the target. Run as
``python -m metrana.dispatcher SESSION_DIR``; writers start it, never users."""
