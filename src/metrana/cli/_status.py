"""``metrana status``: the command, and its rendering with rich: a few labelled lines and a
table of writers per session (the data comes from ``metrana.session.collect_status``)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

import msgspec

from ..session import DROP_REASONS, SessionStatus, WriterStatus, collect_status
from ._console import stdout_console

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["EMPTY_MESSAGE", "cmd_status", "render_status"]


EMPTY_MESSAGE = "no Metrana sessions on this host"

_STATE_STYLE = {
    "running": "green",
    "waiting": "yellow",
    "orphaned": "red",
    "failed": "red",
    "finished": "dim",
}
_HEALTH_STYLE = {"ok": "green", "starting": "yellow", "stalled": "red", "failed": "red"}


def _count(value: int) -> str:
    return f"{value:,}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}/s"


def _rank(writer: WriterStatus) -> str:
    if writer.rank is not None:
        return str(writer.rank)
    if writer.local_rank is not None:
        return f"local {writer.local_rank}"
    return "-"


def _run_name(status: SessionStatus) -> str:
    run = status.run
    if run is None:
        return "(run unknown: config.json missing or unreadable in the session dir)"
    project = run.project + (f"/{run.experiment_name}" if run.experiment_name else "")
    return f"{run.workspace}/{project}/{run.run_name}"


def render_status(sessions: list[SessionStatus], now_ns: int | None = None) -> RenderableType:
    """A rich renderable of every session: a few labelled lines and a table of writers."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    if not sessions:
        return Text(EMPTY_MESSAGE)
    now = time.time_ns() if now_ns is None else now_ns
    parts: list[RenderableType] = []
    running = sum(1 for s in sessions if s.state == "running")
    noun = "session" if len(sessions) == 1 else "sessions"
    parts.append(
        Text(f"{len(sessions)} Metrana {noun} on this host ({running} running)", style="bold")
    )
    for status in sessions:
        parts.append(Text(""))
        title = Text.assemble(
            (_run_name(status), "bold cyan"),
            "  ",
            (status.state, _STATE_STYLE.get(status.state, "")),
            f"  session {status.key}",
        )
        parts.append(title)

        def line(label: str, *content: str | tuple[str, str]) -> Text:
            return Text.assemble(f"  {label:<11}", *content)

        target = status.target or "-"
        if status.experiment_id is not None:
            target += f"  (experiment {status.experiment_id})"
        parts.append(line("target", target))
        d = status.dispatcher
        dispatcher: list[str | tuple[str, str]] = [
            f"pid {d.pid if d.pid is not None else '-'}  ",
            (d.health, _HEALTH_STYLE.get(d.health, "dim")),
        ]
        if d.alive:
            dispatcher.append(f"  up {_seconds(d.uptime_s)}")
        elif d.stats_updated_ns is not None:
            dispatcher.append(f"  ended {_seconds((now - d.stats_updated_ns) / 1e9)} ago")
        if d.stats_age_s is not None and d.alive:
            dispatcher.append(f"  stats {_seconds(d.stats_age_s)} ago")
        parts.append(line("dispatcher", *dispatcher))
        if status.handshake_error:
            parts.append(line("handshake", (status.handshake_error, "red")))
        rate = _rate(status.points_per_s) + (" avg" if status.rate_basis == "uptime" else "")
        if status.writers:
            points = (
                f"logged {_count(status.logged)}  delivered {_count(status.delivered)}"
                f"  pending {_count(status.pending)}  "
            )
        else:
            points = "no writer left (their rings were drained and removed)  "
        parts.append(line("points", points, (rate, "bold")))
        parts.append(
            line(
                "delivery",
                f"stored {_count(d.stored)}  duplicates {_count(d.duplicates)}"
                f"  batches {_count(d.batches)}  in flight {d.inflight}"
                f"  spooled {_count(d.spooled)}  replayed {_count(d.replayed)}",
            )
        )
        dropped = status.dropped
        parts.append(
            line(
                "dropped",
                (_count(dropped.total), "red" if dropped.total else ""),
                "  ("
                + ", ".join(
                    f"{reason.name.replace('_', ' ')} {_count(getattr(dropped, reason.name))}"
                    for reason in DROP_REASONS
                )
                + ")",
            )
        )
        errors = status.errors
        if errors.count:
            parts.append(
                line(
                    "errors",
                    (_count(errors.count), "red"),
                    f"  last: {errors.last_kind}: {errors.last_message}",
                )
            )
        else:
            parts.append(line("errors", "0"))
        parts.append(line("log", status.log_file))
        if not status.writers:
            continue
        table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False)
        table.add_column("PID", justify="right", no_wrap=True)
        table.add_column("RANK", no_wrap=True)
        table.add_column("ALIVE", no_wrap=True)
        table.add_column("STATE", no_wrap=True)
        table.add_column("RING", justify="right", no_wrap=True)
        table.add_column("LOGGED", justify="right", no_wrap=True)
        table.add_column("DELIVERED", justify="right", no_wrap=True)
        table.add_column("PENDING", justify="right", no_wrap=True)
        table.add_column("DROPPED", justify="right", no_wrap=True)  # rejected ones included
        table.add_column("POINTS/S", justify="right", no_wrap=True)
        unbounded = status.ring_capacity == 0
        for writer in status.writers:
            table.add_row(
                str(writer.pid),
                _rank(writer),
                Text("yes", "green") if writer.alive else Text("no", "red"),
                "closed" if writer.closed else "open",
                "unbounded" if unbounded else f"{writer.ring_fill:.0%}",
                _count(writer.logged),
                _count(writer.delivered),
                _count(writer.pending),
                Text(_count(writer.dropped.total), "red" if writer.dropped.total else ""),
                _rate(writer.points_per_s),
            )
        parts.append(Padding(table, (0, 0, 0, 2)))
    return Group(*parts)


def cmd_status(args: argparse.Namespace) -> int:
    """``metrana status``: every session on this host, once or every ``--watch`` seconds (as a
    table, or one JSON document a refresh)."""
    encoder = msgspec.json.Encoder()
    if args.watch is None:
        sessions = collect_status()
        if args.json:
            sys.stdout.write(encoder.encode(sessions).decode() + "\n")
        elif not sessions:
            print(EMPTY_MESSAGE)
        else:
            stdout_console().print(render_status(sessions))
        return 0

    from rich.live import Live

    previous: dict[str, SessionStatus] = {}
    try:
        if args.json:  # one JSON document per line, per refresh
            while True:
                sessions = collect_status(previous=previous)
                sys.stdout.write(encoder.encode(sessions).decode() + "\n")
                sys.stdout.flush()
                previous = {s.key: s for s in sessions}
                time.sleep(args.watch)
        console = stdout_console()
        sessions = collect_status()
        if not console.is_terminal:  # a pipe or a file: one snapshot per refresh
            while True:
                console.print(render_status(sessions))
                console.file.flush()
                time.sleep(args.watch)
                previous = {s.key: s for s in sessions}
                sessions = collect_status(previous=previous)
                console.print()
        with Live(render_status(sessions), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(args.watch)
                previous = {s.key: s for s in sessions}
                sessions = collect_status(previous=previous)
                live.update(render_status(sessions), refresh=True)
    except KeyboardInterrupt:
        return 0
