"""Tables that stay readable on any terminal: a rich table when it fits, stacked records when it does not.

Rich fits a wide table into a narrow terminal by folding or cutting cells (``0.93…``, ``fin/etu/ne``), which
loses numbers. :func:`print_records` measures the table first; when it is wider than the console it prints one
block per row instead, the way ``kubectl`` and ``gh`` fall back on a narrow terminal: the key columns on the
first line, then ``column value`` pairs packed into lines that fit, never cutting a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "print_records"]


@dataclass(frozen=True)
class Column:
    """One column: its header, whether it is right-aligned, and whether it names the row (a key column)."""

    header: str
    right: bool = False
    key: bool = False
    no_wrap: bool = False


def _width(cell: str) -> int:
    return Text.from_markup(cell).cell_len


def print_records(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    title: str | None = None,
    wide: bool | None = None,
) -> None:
    """Print ``rows`` (cells may hold rich markup) as a table when it fits ``console.width``, else stacked.
    ``wide`` forces one layout (tests, ``--wide``)."""
    table = Table(title=title)
    for c in columns:
        table.add_column(c.header, justify="right" if c.right else "left", no_wrap=True)
    for r in rows:
        table.add_row(*r)
    natural = Measurement.get(console, console.options.update_width(100_000), table).maximum
    fits = natural <= console.width
    if wide if wide is not None else fits:
        console.print(table)
        return
    if title:
        console.print(Text.from_markup(f"[italic]{title}[/]"))
    room = max(console.width - 2, 20)
    for r in rows:
        head = "  ".join(cell for c, cell in zip(columns, r, strict=True) if c.key and cell)
        console.print(Text.from_markup(f"[bold]{head}[/]" if head else ""))
        line, used = "", 0
        for c, cell in zip(columns, r, strict=True):
            if c.key or not cell:
                continue
            item = f"[dim]{c.header}[/] {cell}"
            w = _width(item)
            if used and used + 3 + w > room:
                console.print(Text.from_markup("  " + line))
                line, used = "", 0
            line, used = (f"{line} · {item}", used + 3 + w) if used else (item, w)
        if line:
            console.print(Text.from_markup("  " + line))
