"""What the commands print: tables and lines on a rich console, or strict JSON.

The only module of the command line that uses ``rich``, and only inside functions, so that
``import rexecutor``, ``rexecutor --help`` and a worker never load it. Commands describe
what to show with plain strings: a :data:`Cell` is a text, or a text and a rich style;
every text is shown as it is (never read as rich markup, so stored values print verbatim).
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rexecutor._views import dumps_json, format_age
from rexecutor.job import JobStatus

if TYPE_CHECKING:
    from rich.console import Console, JustifyMethod
    from rich.text import Text

__all__ = [
    "STATUS_STYLES",
    "Cell",
    "Column",
    "Output",
    "clip",
    "short",
    "sparkline",
    "status_cell",
    "tree_guide",
    "when",
]

STATUS_STYLES = {
    JobStatus.SCHEDULED: "cyan",
    JobStatus.EXECUTING: "blue",
    JobStatus.RETRYABLE: "yellow",
    JobStatus.COMPLETE: "green",
    JobStatus.CANCELLED: "magenta",
    JobStatus.DISCARDED: "red",
}

#: A table cell or a line: its text, or its text and a rich style.
Cell = str | tuple[str, str]


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a table: its header, alignment, wrapping, footer and style."""

    header: Cell = ""
    justify: JustifyMethod = "left"
    no_wrap: bool = False
    footer: str | None = None
    style: str = ""


def _text(cell: Cell) -> Text:
    from rich.text import Text

    text, style = (cell, "") if isinstance(cell, str) else cell
    return Text(text, style=style)


class Output:
    """Tables on a rich console, or JSON, on standard output."""

    def __init__(self, as_json: bool) -> None:
        self.json = as_json
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """The rich console on standard output, made on first use."""
        if self._console is None:
            from rich.console import Console

            # A stored value may hold a lone surrogate, which no encoding can write: print it
            # as a \\uXXXX escape (still valid JSON) instead of failing half-way through.
            if isinstance(sys.stdout, io.TextIOWrapper):
                sys.stdout.reconfigure(errors="backslashreplace")
            width = None
            if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
                width = max(shutil.get_terminal_size((160, 24)).columns, 160)
            self._console = Console(file=sys.stdout, width=width, highlight=False, soft_wrap=False)
        return self._console

    def dump(self, value: Any) -> None:
        """Print ``value`` as strict JSON (see :func:`rexecutor._views.dumps_json`)."""
        if isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(errors="backslashreplace")
        print(dumps_json(value, indent=2))

    def line(self, text: str, style: str = "") -> None:
        """Print one line (or several, for a text holding newlines) as it is."""
        self.console.print(_text((text, style)))

    def note(self, message: str) -> None:
        """A dim line for people (not printed in JSON mode)."""
        if not self.json:
            self.line(message, "dim")

    def parts(self, cells: Sequence[Cell]) -> None:
        """Print one line made of several texts, each in its own style, never wrapped (a
        deep tree's lines stay whole; a terminal cuts them, a pipe gets them as they are)."""
        from rich.text import Text

        line = Text()
        for cell in cells:
            line.append_text(_text(cell))
        self.console.print(line, soft_wrap=True)

    def table(
        self, columns: Sequence[Column], rows: Iterable[Sequence[Cell]], *, header: bool = True
    ) -> None:
        """Print a borderless table; footers are shown when a column has one."""
        from rich.table import Table

        table = Table(
            box=None,
            header_style="bold",
            pad_edge=False,
            show_header=header,
            show_footer=any(column.footer is not None for column in columns),
        )
        for column in columns:
            table.add_column(
                _text(column.header),
                justify=column.justify,
                no_wrap=column.no_wrap,
                footer=column.footer or "",
                style=column.style or None,
            )
        for row in rows:
            table.add_row(*(_text(cell) for cell in row))
        self.console.print(table)


def status_cell(status: JobStatus) -> Cell:
    """A status, in its colour."""
    return status.value, STATUS_STYLES.get(status, "")


def tree_guide(indent: int, last: bool, open_levels: Sequence[bool]) -> str:
    """The guide drawn before a line of a tree: ``│   ├── `` and the like.

    ``open_levels`` says, for each level above the line's parent, whether a sibling still
    follows there (a vertical bar continues); a line at indent 0 is a root and has none.
    """
    if indent == 0:
        return ""
    above = "".join("│   " if more else "    " for more in open_levels)
    return above + ("└── " if last else "├── ")


def when(moment: datetime | None) -> str:
    """A local time with how long ago it was: ``2024-05-01 12:00:00 (3m ago)``."""
    if moment is None:
        return "-"
    return f"{moment.astimezone().strftime('%Y-%m-%d %H:%M:%S')} ({format_age(moment)})"


def short(value: Any, limit: int = 40) -> str:
    """A JSON value on one line, cut to ``limit`` characters."""
    return clip(dumps_json(value), limit)


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[int]) -> str:
    """One block character per value, scaled to the largest."""
    top = max(values, default=0)
    if top == 0:
        return _SPARKS[0] * len(values)
    return "".join(_SPARKS[min(7, (v * 7 + top - 1) // top)] for v in values)
