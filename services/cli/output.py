"""How ``retina`` prints: Rich tables that never cut an id, progress bars only on a terminal.

On a terminal a table fits the window (long cells fold onto a second line, nothing is cut with
"…"). Anywhere else (a pipe, a file, a test) it is plain text: no borders, no colour, one row a
line however long, so ``grep`` and ``awk '{print $1}'`` see whole camera and incident ids.
Progress bars go to stderr and only when stderr is a terminal, so scripts and CI see nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

NOT_A_TERMINAL_WIDTH = 100_000  # wide enough that no row of a table is wrapped or cut
NARROWEST_TEXT = 10  # a free-text column folds down to this width, no further


def console() -> Console:
    """A console on stdout (as it is now: tests swap sys.stdout); cell text is never markup."""
    out = Console(markup=False, emoji=False, highlight=False)
    if out.is_terminal:
        return out
    return Console(markup=False, emoji=False, highlight=False, width=NOT_A_TERMINAL_WIDTH, no_color=True)


def table(out: Console, *headers: str, right: tuple[str, ...] = (), wrap: tuple[str, ...] = ()) -> Table:
    """A table with these column headers; columns named in ``right`` hold numbers, those in ``wrap``
    free text that gives way first on a narrow terminal (ids stay on one line as long as they fit)."""
    terminal = out.is_terminal
    grid = Table(
        box=box.SIMPLE_HEAD if terminal else None,
        show_edge=False,
        pad_edge=False,
        header_style="bold" if terminal else "",
    )
    for header in headers:
        grid.add_column(
            header,
            justify="right" if header in right else "left",
            overflow="fold",
            no_wrap=header not in wrap,
        )
    return grid


def show(out: Console, grid: Table) -> None:
    """Print ``grid``. On a terminal too narrow for its one-line columns (ids, states, numbers) the
    table is laid out wider than the window, which then wraps its lines, rather than cut an id."""
    if out.is_terminal:
        needed = sum(
            3  # padding and the space between columns
            + (
                max(map(cell_len, map(str, [column.header, *column.cells])))
                if column.no_wrap
                else NARROWEST_TEXT
            )
            for column in grid.columns
        )
        out.width = max(out.width, needed)
    out.print(grid)


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr while the block runs; yields ``advance(n=1)``.

    ``total=None``: work whose size is not known beforehand (a spinner and the time taken). Shown
    only on a terminal and gone when the block ends; elsewhere ``advance`` does nothing visible.
    """
    err = Console(stderr=True)
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance
