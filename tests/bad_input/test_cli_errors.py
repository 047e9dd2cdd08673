"""`growthcurve.cli.main`'s one error path: usage errors exit 2 with the usage text, user-fixable OS errors
name the path, and every other exception stays an "internal error" (never passed off as the user's)."""

from __future__ import annotations

import errno

import pytest
import typer

from growthcurve import cli


def _app_raising(exc: BaseException) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def boom(n: int = typer.Option(1, min=1)) -> None:
        raise exc

    @app.command()
    def other() -> None:  # two commands so typer keeps sub-command names
        pass

    return app


def _main(monkeypatch: pytest.MonkeyPatch, exc: BaseException, argv: list[str]) -> int:
    monkeypatch.setattr(cli, "app", _app_raising(exc))
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    return int(info.value.code)


@pytest.mark.parametrize(
    ("exc", "path", "hint"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "out/x.json"), "out/x.json", "permissions"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "afile/sub"), "afile/sub", "file where a folder"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", ".x.tmp", None, "adir"), "adir", "is a folder"),
        (FileExistsError(errno.EEXIST, "File exists", "afile"), "afile", "already exists"),
    ],
)
def test_user_os_errors_name_the_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: OSError, path: str, hint: str
) -> None:
    assert _main(monkeypatch, exc, ["boom"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error:") and f"'{path}'" in err and hint in err and "internal" not in err


@pytest.mark.parametrize("exc", [FileNotFoundError(2, "gone", "x"), OSError(errno.EIO, "I/O error"), KeyError("k")])
def test_other_exceptions_stay_internal_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: BaseException
) -> None:
    monkeypatch.delenv("GROWTHCURVE_DEBUG", raising=False)
    assert _main(monkeypatch, exc, ["boom"]) == 1
    assert "internal error" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["boom", "--n", "0"], ["boom", "--n", "abc"], ["boom", "--nope"], ["missing"]])
def test_usage_errors_show_usage_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert _main(monkeypatch, RuntimeError("unreached"), argv) == 2
    err = capsys.readouterr().err
    assert "Usage:" in err and "internal error" not in err
