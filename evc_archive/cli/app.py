"""The Typer app, its consoles and the console entry point. The cli package is the only code that
prints; user errors exit 1 with one line, never a traceback."""

from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from evc_archive.core.errors import EVCError

warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")  # compressai's torch.jit.script

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Archive video at extreme compression (0.01-0.1 bpp) with generative prediction.",
)
console = Console(stderr=True, log_path=False)
stdout = Console()


def fail(message: str) -> None:
    """A user error: one line on stderr, exit 1."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def new_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)


@contextmanager
def job_progress():
    """A progress display that leaves nothing behind when the job fails with a user error, so the
    error is the one line the user sees (not a half-drawn bar, then the error)."""
    progress = new_progress()
    with progress:
        try:
            yield progress
        except EVCError:
            progress.live.transient = True
            progress.live.stop()
            progress.disable = True  # Progress.stop would still print an empty line on non-terminals
            raise


def main(args: list[str] | None = None) -> None:
    """Console entry point: EVCError -> one line on stderr, exit 1; Ctrl-C -> exit 130."""
    from evc_archive.cli import commands  # noqa: F401 - registers every command on `app`

    try:
        result = app(args=args, standalone_mode=False)  # click returns typer.Exit codes here instead of raising
        sys.exit(result if isinstance(result, int) else 0)
    except EVCError as exc:
        from rich.markup import escape

        # one line, never wrapped; file names and URLs in the message are text, not markup
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - click usage errors, then anything unexpected
        import os

        if callable(getattr(exc, "show", None)) and hasattr(exc, "exit_code"):  # click's (typer's vendored) usage errors
            exc.show()
            sys.exit(exc.exit_code)
        if os.environ.get("EVC_DEBUG"):
            raise
        console.print(f"[bold red]internal error:[/] {exc.__class__.__name__}: {exc} (set EVC_DEBUG=1 for a traceback)",
                      highlight=False)
        sys.exit(2)
