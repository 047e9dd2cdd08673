"""The one `growthcurve` CLI: each subcommand is a thin call into a module of the package."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

from growthcurve.cpuinfo import choose_openmp_policy
from growthcurve.errors import GrowthcurveError

app = typer.Typer(
    name="growthcurve",
    help="Fine-tune, validate, plan and grow: one toolkit for applied deep-learning teams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)

# Sub-command groups live next to the code they drive; each module exposes `register(app)`.
_COMMAND_MODULES = [
    "growthcurve.training.cli",
    "growthcurve.training.adapt_cli",
    "growthcurve.validation.cli",
    "growthcurve.planning.cli",
    "growthcurve.team.cli",
    "growthcurve.compression.cli",
    "growthcurve.serving.cli",
    "growthcurve.apps.recommender.cli",
    "growthcurve.apps.monitor.cli",
    "growthcurve.apps.assist.cli",
    "growthcurve.team.knowledge_cli",
    "growthcurve.store.cli",
    "growthcurve.report.cli",
    "growthcurve.growth.tune_cli",
    "growthcurve.growth.retrain_cli",
    "growthcurve.review.cli",
]


def _register_all() -> None:
    """Import each command module and let it add its commands."""
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


_USER_OS_ERRORS = (PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError)
_OS_HINTS = {
    PermissionError: "is not writable (or readable) by you: fix its permissions or choose another path",
    NotADirectoryError: "has a file where a folder is needed: remove that file or choose another path",
    IsADirectoryError: "is a folder where a file is needed: give a file path instead",
    FileExistsError: "already exists (a file where a folder is needed?): remove it or choose another path",
}


def _os_error_message(exc: OSError) -> str:
    """One line naming the offending path and what to do about it."""
    hint = next(h for t, h in _OS_HINTS.items() if isinstance(exc, t))
    # an atomic write fails in os.replace(tmp, target): filename2 is the user's target, filename the temp file
    path = exc.filename2 or exc.filename or "a path"
    return f"'{path}' {hint} ({exc.strerror or type(exc).__name__})"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning user errors into one line and exit code 2."""
    choose_openmp_policy()  # before any command loads torch's OpenMP runtime
    try:
        rv = app(args=argv, standalone_mode=False)
        if rv == 130:  # typer turns a KeyboardInterrupt it sees into a silent return of 130
            err_console.print("[yellow]interrupted[/]")
        if isinstance(rv, int) and rv != 0:
            sys.exit(rv)
    except GrowthcurveError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except SystemExit:
        raise
    except _USER_OS_ERRORS as exc:
        # Only the OS errors a user causes and can fix (a path that is a file, below a file, a folder, or
        # not writable); every other OSError is a bug or an outage and falls through to "internal error".
        err_console.print(f"[bold red]error:[/] {_os_error_message(exc)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except Exception as exc:  # click usage errors and friends
        import click
        import typer.exceptions

        if isinstance(exc, click.exceptions.Abort | typer.exceptions.Abort):
            err_console.print("[yellow]aborted[/]")
            sys.exit(130)
        # typer >= 0.23 vendors its own click: its UsageError/BadParameter derive from TyperException,
        # not click.ClickException; both carry show() (usage + message) and exit_code (2 for usage errors).
        if isinstance(exc, click.ClickException | typer.exceptions.TyperException) and hasattr(exc, "show"):
            exc.show()
            sys.exit(exc.exit_code)
        if os.environ.get("GROWTHCURVE_DEBUG"):
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (set GROWTHCURVE_DEBUG=1 for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
