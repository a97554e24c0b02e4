"""Progress display for long work (rich), silent when asked or when output is not a terminal-friendly stream."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def make_progress(console: Console | None = None, transient: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        transient=transient,
    )


class EpochProgress:
    """A bar over the epochs of one run, showing the latest loss; no-op when ``enabled`` is False."""

    def __init__(self, epochs: int, start: int, description: str, enabled: bool = True):
        self.enabled = enabled
        self.progress = make_progress(transient=False) if enabled else None
        self.epochs, self.start, self.description = epochs, start, description

    def __enter__(self) -> EpochProgress:
        if self.progress is not None:
            self.progress.start()
            self.task = self.progress.add_task(
                self.description, total=self.epochs, completed=self.start, info=""
            )
        return self

    def advance(self, row: dict[str, Any]) -> None:
        if self.progress is not None:
            info = f"loss {row.get('train_loss', float('nan')):.4f} acc {row.get('train_accuracy', 0):.3f}"
            if "val_accuracy" in row:
                info += f" val {row['val_accuracy']:.3f}"
            self.progress.update(self.task, advance=1, info=info)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
