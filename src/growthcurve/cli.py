"""The one `growthcurve` CLI: each subcommand is a thin call into a module of the package."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

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
    "growthcurve.validation.cli",
    "growthcurve.planning.cli",
    "growthcurve.team.cli",
    "growthcurve.compression.cli",
    "growthcurve.serving.cli",
    "growthcurve.apps.recommender.cli",
]


def _register_all() -> None:
    """Import each command module and let it add its commands."""
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning user errors into one line and exit code 2."""
    try:
        rv = app(args=argv, standalone_mode=False)
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
    except Exception as exc:  # click usage errors and friends
        import click

        if isinstance(exc, click.exceptions.Abort):
            err_console.print("[yellow]aborted[/]")
            sys.exit(130)
        if isinstance(exc, click.ClickException):
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
