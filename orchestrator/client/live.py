"""The live view of a followed execution: a ``rich`` table of its steps (status, attempts, duration, a
spinner while a step runs) and the text of running ``llm`` steps as it streams in.

The follower blocks on the network in the main thread while ``rich.live.Live`` redraws from its own
thread (so spinners and running durations move between events); a lock keeps the two from seeing the
model half-updated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from orchestrator.client.follow import Item, StepProgress
from orchestrator.client.model import ExecutionModel, StepRow, format_seconds

STATUS_STYLES = {
    "completed": ("✓", "green"),
    "failed": ("✗", "red"),
    "timeout": ("✗", "red"),
    "retrying": ("↻", "yellow"),
    "waiting": ("…", "yellow"),
    "skipped": ("-", "dim"),
    "cancelled": ("■", "magenta"),
    "cancelling": ("■", "magenta"),
    "pending": ("·", "dim"),
}
TEXT_LINES = 6  # of a running llm step's text, the newest


class LiveView:
    """A renderable over the model; :meth:`apply` takes the follower's items under the same lock."""

    def __init__(self, model: ExecutionModel) -> None:
        self.model = model
        self.lock = threading.Lock()
        self.final = False
        self._spinners: dict[str, Spinner] = {}

    def apply(self, item: Item) -> None:
        with self.lock:
            if isinstance(item, StepProgress):
                self.model.progress(item.step, item.delta, item.attempt)
            else:
                self.model.apply(item)

    def __rich__(self) -> RenderableType:
        with self.lock:
            return self.render()

    def render(self) -> RenderableType:
        now = datetime.now(UTC)
        model = self.model
        parts: list[RenderableType] = [self._header(now)]
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        table.add_column("", width=1, no_wrap=True)
        table.add_column("STEP", no_wrap=True)
        table.add_column("TYPE", no_wrap=True, style="dim")
        table.add_column("STATUS", no_wrap=True)
        table.add_column("ATTEMPTS", justify="right", no_wrap=True)
        table.add_column("DURATION", justify="right", no_wrap=True)
        table.add_column("ERROR", overflow="ellipsis", no_wrap=True, style="red")
        for row in model.steps.values():
            table.add_row(
                self._icon(row),
                "  " * model.depth(row) + row.name,
                row.type,
                Text(row.status, style=STATUS_STYLES.get(row.status, ("", "cyan"))[1]),
                str(row.attempts) if row.attempts else "",
                format_seconds(row.seconds(now)),
                row.error or "",
            )
        parts.append(table)
        for row in model.steps.values():
            if row.status == "waiting" and row.type in ("approval", "signal"):
                parts.append(
                    Text(f"{row.name} is waiting: {waiting_hint(model.execution_id, row)}", style="yellow")
                )
        if not self.final:
            for row in model.steps.values():
                if row.text and row.status in ("running", "retrying", "waiting"):
                    tail = "\n".join(row.text.splitlines()[-TEXT_LINES:])
                    parts.append(
                        Panel(Text(tail), title=f"{row.name} ({row.type or 'llm'})", title_align="left")
                    )
        return Group(*parts)

    def _header(self, now: datetime) -> Text:
        model = self.model
        end = model.completed_at or now
        took = format_seconds((end - model.started_at).total_seconds()) if model.started_at else ""
        style = STATUS_STYLES.get(model.status, ("", "cyan"))[1]
        header = Text.assemble(
            (model.workflow_name or "execution", "bold"),
            "  ",
            (model.execution_id, "dim"),
            "  ",
            (model.status, style),
        )
        if took:
            header.append(f"  {took}")
        return header

    def _icon(self, row: StepRow) -> RenderableType:
        if row.status == "running":
            return self._spinners.setdefault(row.name, Spinner("dots", style="cyan"))
        icon, style = STATUS_STYLES.get(row.status, ("?", "cyan"))
        return Text(icon, style=style)


def waiting_hint(execution_id: str, row: StepRow) -> str:
    """The command that unblocks a waiting step."""
    if row.type == "signal":
        return f"orchestrate signal {execution_id} {row.signal or '<name>'} --payload '<json>'"
    return f"orchestrate approve {execution_id} {row.name} [--reject]"


def show_live(
    console: Console, model: ExecutionModel, items: Iterable[Item], finish: Callable[[], None] | None = None
) -> None:
    """Draw the view until the items end (the terminal event), then run ``finish`` (which brings the model
    up to the server's final view) and draw the last frame, which stays on the screen."""
    view = LiveView(model)
    with Live(view, console=console, refresh_per_second=10, transient=False) as live:
        try:
            for item in items:
                view.apply(item)
            if finish is not None:
                with view.lock:
                    finish()
        finally:
            with view.lock:
                view.final = True
            live.refresh()


__all__ = ["LiveView", "show_live", "waiting_hint"]
