"""`growthcurve serve`: every unusable start-up is one `error:` line and exit 2; kill -9 loses no acked feedback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from growthcurve.cli import main
from growthcurve.errors import ModelError
from growthcurve.serving import load_handler
from growthcurve.store import feedback
from tests.conftest import free_port, wait_ready


def _serve_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as ex:
        main(["serve", *args])
    err = capsys.readouterr().err.strip()
    assert ex.value.code == 2, err
    assert err.startswith("error:") and "Traceback" not in err, err
    return " ".join(err.split())  # rich wraps long lines


def _free_port() -> int:
    return free_port()


@pytest.fixture()
def broken_runs(text_runs: tuple[Path, Path], tmp_path: Path) -> dict[str, Path]:
    src = text_runs[0]
    runs = {}
    for name in ("corrupt", "half", "garbage", "image"):
        runs[name] = Path(shutil.copytree(src, tmp_path / name))
    (runs["corrupt"] / "model" / "run.json").write_text('{"task": "text-classi', encoding="utf-8")
    (runs["half"] / "model" / "model.safetensors").unlink()
    (runs["garbage"] / "model" / "model.safetensors").write_bytes(b"\x00" * 100)
    meta = json.loads((src / "model" / "run.json").read_text())
    (runs["image"] / "model" / "run.json").write_text(json.dumps({**meta, "task": "image-classification"}))
    return runs


def test_unusable_runs_fail_at_start_up(
    broken_runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = str(_free_port())
    assert "does not exist" in _serve_error(capsys, str(tmp_path / "nope"), "--port", port)
    assert "is corrupt" in _serve_error(capsys, str(broken_runs["corrupt"]), "--port", port)
    assert "no weight files" in _serve_error(capsys, str(broken_runs["half"]), "--port", port)
    assert "cannot load" in _serve_error(capsys, str(broken_runs["garbage"]), "--port", port)  # ours or the loader's
    msg = _serve_error(capsys, str(broken_runs["image"]), "--port", port)
    assert "image-classification run" in msg and "text-classification and token-classification" in msg


def test_port_in_use_is_found_before_models_load(
    broken_runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = str(s.getsockname()[1])
        # the run is corrupt too: the port error comes first, so nothing was loaded
        msg = _serve_error(capsys, str(broken_runs["corrupt"]), "--port", port)
    assert f"cannot listen on 127.0.0.1:{port}" in msg and "--port" in msg


def test_bad_options(text_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = (str(r) for r in text_runs)
    assert "--experiment NAME" in _serve_error(capsys, a, b)
    assert "need two or more runs" in _serve_error(capsys, a, "--experiment", "x")
    assert "'x' is not a number" in _serve_error(capsys, a, b, "--experiment", "e", "--weights", "x,1")
    assert "torch or onnx" in _serve_error(capsys, a, "--backend", "tf")
    os.environ.pop("GC_TEST_NO_KEY", None)
    assert "not set" in _serve_error(capsys, a, "--api-key-env", "GC_TEST_NO_KEY")
    (tmp_path / "keys").write_text("# none\n", encoding="utf-8")
    assert "holds no API key" in _serve_error(capsys, a, "--api-key-file", str(tmp_path / "keys"))
    port = str(_free_port())
    assert "cannot open database" in _serve_error(capsys, a, "--port", port, "--store", "sqlite:////no/such/dir/x.db")


def test_store_that_cannot_be_migrated(
    text_runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import alembic.command
    from alembic.util.exc import CommandError

    def two_heads(*_a: object, **_k: object) -> None:
        raise CommandError("Multiple head revisions are present for given argument 'head'")

    monkeypatch.setattr(alembic.command, "upgrade", two_heads)
    msg = _serve_error(capsys, str(text_runs[0]), "--port", str(_free_port()), "--store", "sqlite:///x.db")
    assert "cannot be migrated: Multiple head revisions" in msg


def test_onnx_backend_is_wired_with_a_clear_error(text_runs: tuple[Path, Path]) -> None:
    # no `growthcurve export` was run for this run: either the exporter module is missing or the export is
    with pytest.raises(ModelError, match=r"growthcurve\.compression\.onnx|run `growthcurve export"):
        load_handler(text_runs[0], backend="onnx")


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_feedback(text_runs: tuple[Path, Path], tmp_path: Path) -> None:
    """A real server process takes feedback from 4 threads, gets kill -9: every acked row is in the store."""
    db = tmp_path / "kill.db"
    port = _free_port()
    cmd = [sys.executable, "-m", "growthcurve.cli", "serve", str(text_runs[0]), "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--store", f"sqlite:///{db}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base)
        rid = httpx.post(f"{base}/predict", json={"text": "good"}).json()["request_id"]
        acked: list[int] = []
        lock = threading.Lock()

        def client(k: int) -> None:
            with httpx.Client(base_url=base, timeout=5) as c:
                for j in range(10_000):
                    try:
                        r = c.post("/feedback", json={"request_id": rid, "rating": 1, "comment": f"{k}-{j}"})
                    except httpx.TransportError:
                        return
                    if r.status_code == 200:
                        with lock:
                            acked.append(k * 100_000 + j)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        while len(acked) < 50:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        for t in threads:
            t.join()
    finally:
        proc.kill()
        proc.wait()
    engine = sa.create_engine(f"sqlite:///{db}")  # opening recovers the WAL, as a restarted server would
    with engine.connect() as conn:
        stored = {r[0] for r in conn.execute(sa.select(feedback.c.comment))}
    engine.dispose()
    wanted = {f"{a // 100_000}-{a % 100_000}" for a in acked}
    assert len(acked) >= 50 and wanted <= stored, len(wanted - stored)
