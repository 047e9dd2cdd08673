"""Image classification: the digits CNN, run-folder reload through image files, torchvision models by
name with local weights, augmentation geometry, and bad input reported in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from growthcurve.cli import main
from growthcurve.config import load_finetune_config
from growthcurve.data.images import digits_splits, load_image_splits
from growthcurve.errors import DataError, ModelError
from growthcurve.training.dispatch import run_finetune
from growthcurve.training.image import augment_batch
from growthcurve.training.inference import Predictor
from growthcurve.training.runfolder import load_run
from growthcurve.training.scoring import image_probs


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> object:
    run_dir = tmp_path_factory.mktemp("digits")
    cfg = load_finetune_config(
        None,
        ["task=image-classification", "model.hidden_size=64", "train.epochs=8", f"output_dir={run_dir}"],
    )
    return run_finetune(cfg, progress=False)


def _write_pngs(root: Path, pixels: torch.Tensor, labels: np.ndarray, names: list[str]) -> list[Path]:
    paths = []
    for i, (img, y) in enumerate(zip(pixels, labels, strict=True)):
        d = root / names[int(y)]
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"{i:04d}.png"
        Image.fromarray(img[0].numpy(), mode="L").save(p)
        paths.append(p)
    return paths


@pytest.mark.slow
def test_digits_cnn_beats_90_percent_and_writes_run_folder(digits_run: object) -> None:
    res = digits_run
    assert res.test["accuracy"] > 0.90  # published small CNNs reach ~98-99% on these digits
    run_dir = Path(res.run_dir)
    meta = json.loads((run_dir / "model" / "run.json").read_text())
    assert meta["task"] == "image-classification" and meta["model_type"] == "cnn"
    assert meta["image_size"] == 16 and meta["channels"] == 1
    for name in ("metrics.json", "classification_report_test.json", "classification_report_dev.txt"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "confusion_matrix_test.png").stat().st_size > 1000
    assert (run_dir / "training_curves.png").stat().st_size > 1000
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["train"]["seconds_per_epoch"] > 0
    assert len(summary["test"]) and summary["labels"] == [str(i) for i in range(10)]


@pytest.mark.slow
def test_image_run_predicts_files_like_tensors_and_evaluates_folder(digits_run: object, tmp_path: Path) -> None:
    run = load_run(digits_run.run_dir)
    test = digits_splits(16).test
    paths = _write_pngs(tmp_path / "test", test.pixels[:60], test.labels[:60], run.labels)
    direct = image_probs(run.model, test.pixels[:60], run.meta["mean"], run.meta["std"], 64, torch.device("cpu"))
    from_files = Predictor(digits_run.run_dir).predict_proba([str(p) for p in paths])
    np.testing.assert_allclose(from_files, direct, rtol=1e-5, atol=1e-6)  # PNG round trip is lossless
    # CLI: evaluate a class-folder tree and predict a list of paths
    out = tmp_path / "eval"
    main(["evaluate", str(digits_run.run_dir), str(tmp_path / "test"), "--out", str(out), "-q"])
    saved = json.loads((out / "metrics.json").read_text())
    expected = float(np.mean(direct.argmax(1) == test.labels[:60]))
    assert saved["metrics"]["accuracy"] == pytest.approx(expected)
    listing = tmp_path / "paths.txt"
    listing.write_text("\n".join(str(p) for p in paths[:5]) + "\n")
    preds = tmp_path / "preds.jsonl"
    main(["predict", str(digits_run.run_dir), str(listing), "--out", str(preds)])
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [r["image"] for r in rows] == [str(p) for p in paths[:5]]
    assert [r["label"] for r in rows] == [run.labels[i] for i in direct[:5].argmax(1)]


def test_vision_model_by_name_with_local_weights_trains_and_reloads(tmp_path: Path) -> None:
    torchvision = pytest.importorskip("torchvision")
    from growthcurve.models.vision import build_image_model

    torch.manual_seed(0)
    reference = torchvision.models.get_model("resnet18", weights=None)
    weights = tmp_path / "resnet18-0123abcd.pth"  # torchvision's file naming: the architecture is read from it
    torch.save(reference.state_dict(), weights)
    model, pretrained = build_image_model("vision", str(weights), 3, 3, 32, 64, None)
    assert pretrained
    assert torch.equal(model.net.conv1.weight, reference.conv1.weight)
    assert model.net.fc.out_features == 3
    # a tiny coloured two-class folder: train one epoch end to end, then reload
    rng = np.random.default_rng(0)
    for cls, channel in (("red", 0), ("blue", 2)):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            arr = rng.integers(0, 60, size=(20, 24, 3), dtype=np.uint8)
            arr[..., channel] = 220
            Image.fromarray(arr).save(tmp_path / "imgs" / cls / f"{i}.png")
    cfg = load_finetune_config(
        None,
        [
            "task=image-classification",
            "model.type=vision",
            f"model.name_or_path={weights}",
            f"data.train={tmp_path / 'imgs'}",
            "data.dev_fraction=0",
            "train.epochs=1",
            "train.batch_size=4",
            f"output_dir={tmp_path / 'run'}",
        ],
    )
    res = run_finetune(cfg, progress=False)
    run = load_run(res.run_dir)
    assert run.meta["pretrained"] and run.meta["mean"] == pytest.approx([0.485, 0.456, 0.406])
    files = sorted(str(p) for p in (tmp_path / "imgs").rglob("*.png"))
    p1 = Predictor(res.run_dir).predict_proba(files)
    p2 = Predictor(res.run_dir).predict_proba(files)
    assert p1.shape == (12, 2) and np.array_equal(p1, p2)


def test_unknown_architecture_and_missing_weights_are_one_line_errors(tmp_path: Path) -> None:
    pytest.importorskip("torchvision")
    from growthcurve.models.vision import build_image_model

    with pytest.raises(ModelError, match="did you mean 'resnet18'"):
        build_image_model("vision", "resnet181", 3, 3, 32, 64, None)
    with pytest.raises(ModelError, match="does not exist"):
        build_image_model("vision", f"resnet18@{tmp_path / 'nope.pth'}", 3, 3, 32, 64, None)


def test_augment_batch_geometry() -> None:
    x = torch.zeros(64, 1, 8, 8, dtype=torch.uint8)
    x[:, 0, 3, 4] = 255
    same = augment_batch(x, 0, degrees=0.0, scale=(1.0, 1.0))
    torch.testing.assert_close(same, x.float(), atol=1e-3, rtol=0)
    torch.manual_seed(0)
    shifted = augment_batch(x, 1, degrees=0.0, scale=(1.0, 1.0))
    where = [tuple((img[0] > 0).nonzero()[0].tolist()) for img in shifted]
    assert {(r - 3, c - 4) for r, c in where} <= {(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)}
    assert len(set(where)) > 3  # every image draws its own shift
    flipped = augment_batch(x[:1], 0, degrees=0.0, scale=(1.0, 1.0), hflip=True)
    torch.manual_seed(1)
    flips = {tuple((img[0] > 0).nonzero()[0].tolist()) for img in augment_batch(x, 0, 0.0, (1.0, 1.0), True)}
    assert flips == {(3, 4), (3, 3)} and flipped.shape == x[:1].shape  # column 4 mirrors to 8-1-4 = 3


# ----------------------------------------------------------------------------------------------
# bad input


def _folder(tmp_path: Path, n: int = 3) -> Path:
    root = tmp_path / "data"
    digits = digits_splits(8)
    for cls in ("zero", "one"):
        (root / cls).mkdir(parents=True)
    for i in range(n):
        Image.fromarray(digits.train.pixels[i, 0].numpy()).save(root / "zero" / f"{i}.png")
        Image.fromarray(digits.train.pixels[i + n, 0].numpy()).save(root / "one" / f"{i}.png")
    return root


def test_undecodable_images_are_skipped_and_counted(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    (root / "one" / "broken.png").write_bytes(b"not a png at all")
    cfg = load_finetune_config(None, [f"data.train={root}", "data.dev_fraction=0"]).data
    splits = load_image_splits(cfg, 8)
    assert len(splits.train) == 6 and splits.channels == 1
    assert any("skipped 1 of 7" in w and "broken.png" in w for w in splits.warnings)
    for p in root.rglob("*.png"):
        p.write_bytes(b"garbage")
    with pytest.raises(DataError, match="none of the 7 image"):
        load_image_splits(cfg, 8)


def test_empty_class_folder_is_reported(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    (root / "two").mkdir()
    cfg = load_finetune_config(None, [f"data.train={root}", "data.dev_fraction=0"]).data
    splits = load_image_splits(cfg, 8)
    assert splits.labels == ["one", "zero"]
    assert any("1 class folder(s) with no images ('two')" in w for w in splits.warnings)
    for p in (root / "one").iterdir():
        p.unlink()
    with pytest.raises(DataError, match="only one class"):
        load_image_splits(cfg, 8)


def test_csv_missing_column_and_empty_csv_fail_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _folder(tmp_path)
    table = tmp_path / "images.csv"
    rows = [f"{p.relative_to(tmp_path)},{p.parent.name}" for p in sorted(root.rglob("*.png"))]
    table.write_text("path,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(SystemExit) as exc:
        main(["finetune", "-q", "--set", "task=image-classification", "--set", f"data.train={table}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no column 'image'" in err and "data.image_column" in err and "Traceback" not in err
    cfg = load_finetune_config(None, [f"data.train={table}", "data.image_column=path", "data.dev_fraction=0"])
    splits = load_image_splits(cfg.data, 8)  # paths are relative to the CSV's folder
    assert len(splits.train) == 6 and splits.labels == ["one", "zero"]
    empty = tmp_path / "empty.csv"
    empty.write_text("image,label\n")
    with pytest.raises(DataError, match="no rows"):
        load_image_splits(load_finetune_config(None, [f"data.train={empty}"]).data, 8)


def test_text_model_type_for_images_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["finetune", "-q", "--set", "task=image-classification", "--set", "model.type=rnn"])
    assert exc.value.code == 2
    assert "use cnn or vision" in capsys.readouterr().err
