"""Image-classification data: class folders or a table of paths and labels, decoded once into memory.

Every image is decoded with Pillow, resized (shorter side) and centre-cropped to ``image_size``, and kept
as uint8 ``[N, C, S, S]``: small data sets then train without a data-loader pipeline. Files that fail to
decode are skipped and counted as a warning (the run fails only if none decodes). With no ``data.train``,
the 8x8 handwritten digits that scikit-learn ships are used, split train/dev/test with a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from growthcurve.config import DataConfig
from growthcurve.data.readers import read_table, require_columns
from growthcurve.data.splits import stratified_indices
from growthcurve.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
DIGITS_SPLIT_SEED = 0  # the digits split never changes with train.seed, so test numbers stay comparable
DIGITS_TEST_FRACTION = 0.2
DIGITS_DEV_FRACTION = 0.1


@dataclass
class ImageSplit:
    """Decoded images of one split: pixels uint8 ``[n, channels, size, size]``, label ids, source paths."""

    pixels: torch.Tensor
    labels: np.ndarray
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> ImageSplit:
        """Rows ``idx`` as a new split."""
        idx = np.asarray(idx, dtype=np.int64)
        return ImageSplit(self.pixels[torch.from_numpy(idx)], self.labels[idx], [self.paths[i] for i in idx])


@dataclass
class ImageSplits:
    """Train/dev/(test) images sharing one label map and channel count."""

    train: ImageSplit
    dev: ImageSplit | None
    test: ImageSplit | None
    labels: list[str]
    channels: int
    source: str
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# listing


def list_image_folder(path: Path, warnings: list[str]) -> tuple[list[str], list[str]]:
    """Image paths and class names from ``path/<class>/<image>``; empty class folders are warned about."""
    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"'{path}' has no class sub-folders; put each class's images in '{path}/<class name>/'")
    paths: list[str] = []
    labels: list[str] = []
    empty: list[str] = []
    for cls in classes:
        files = sorted(
            f
            for f in cls.rglob("*")
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".")
        )
        if not files:
            empty.append(cls.name)
            continue
        paths.extend(str(f) for f in files)
        labels.extend([cls.name] * len(files))
    if empty:
        shown = ", ".join(repr(e) for e in empty[:5]) + (" ..." if len(empty) > 5 else "")
        warnings.append(
            f"'{path}': skipped {len(empty)} class folder(s) with no images ({shown}); "
            f"add {'/'.join(IMAGE_EXTENSIONS[:3])} files or remove the folder"
        )
    if not paths:
        raise DataError(
            f"'{path}': none of its {len(classes)} class folders holds an image ({', '.join(IMAGE_EXTENSIONS)})"
        )
    return paths, labels


def read_image_table(
    path: Path, image_column: str, label_column: str | None, warnings: list[str]
) -> tuple[list[str], list[str] | None]:
    """Paths (relative ones resolved against the table's folder) and labels from a CSV/TSV/JSONL/Parquet."""
    df = read_table(path)
    require_columns(df, [image_column], path, "data.image_column")
    if label_column is not None:
        require_columns(df, [label_column], path, "data.label_column")
    bad = df[image_column].isna() | df[image_column].astype(str).str.strip().eq("")
    if label_column is not None:
        bad |= df[label_column].isna() | df[label_column].astype(str).str.strip().eq("")
    if bad.all():
        raise DataError(f"'{path}': all {len(df)} rows have an empty image path or label; nothing to use")
    if bad.any():
        warnings.append(f"'{path}': skipped {int(bad.sum())} of {len(df)} rows with an empty image path or label")
    df = df[~bad]
    paths = [str(resolve_image_path(str(v).strip(), path.parent)) for v in df[image_column]]
    labels = [_label_str(v) for v in df[label_column]] if label_column is not None else None
    return paths, labels


def _label_str(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def resolve_image_path(value: str, base: Path) -> Path:
    """An absolute path as is; a relative one against ``base`` (the table's folder), else the working dir."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    return base / p if (base / p).exists() or not p.exists() else p


def read_image_source(
    path: str | Path, image_column: str, label_column: str | None, warnings: list[str]
) -> tuple[list[str], list[str] | None]:
    """Paths and labels from a class-folder tree or a table file."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"image data '{p}' does not exist; give a folder of class sub-folders or a CSV of paths")
    if p.is_dir():
        return list_image_folder(p, warnings)
    return read_image_table(p, image_column, label_column, warnings)


# ----------------------------------------------------------------------------------------------
# decoding


def _open(path: str, image_size: int) -> tuple[object, str]:
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img.load()
        mode = img.mode
        rgb = img.convert("RGB")
    return ImageOps.fit(rgb, (image_size, image_size), Image.Resampling.BILINEAR), mode


def decode_images(
    paths: list[str],
    image_size: int,
    channels: int | None,
    warnings: list[str],
    where: str,
    progress: bool = False,
) -> tuple[torch.Tensor, np.ndarray, int]:
    """Decode, resize and centre-crop ``paths``: (uint8 pixels of the good ones, their indices, channels).

    ``channels=None`` picks 1 when every image is grayscale, else 3. Undecodable files are skipped and
    reported in one warning naming the first few; if none decodes the data set is unusable (DataError).
    """
    from PIL import Image
    from tqdm.auto import tqdm

    arrays: list[np.ndarray] = []
    keep: list[int] = []
    failed: list[str] = []
    all_gray = True
    for i, p in enumerate(tqdm(paths, desc=f"decode {where}", unit="img", disable=not progress, leave=False)):
        try:
            img, mode = _open(p, image_size)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            reason = "file not found" if isinstance(exc, FileNotFoundError) else type(exc).__name__
            failed.append(f"{Path(p).name} ({reason})")
            continue
        all_gray &= mode in GRAY_MODES
        arrays.append(np.asarray(img, dtype=np.uint8))
        keep.append(i)
    if not arrays:
        raise DataError(
            f"{where}: none of the {len(paths)} image(s) could be decoded (first: {failed[0] if failed else '?'})"
        )
    if failed:
        shown = ", ".join(failed[:3]) + (" ..." if len(failed) > 3 else "")
        msg = f"{where}: skipped {len(failed)} of {len(paths)} image(s) that could not be decoded: {shown}"
        warnings.append(msg)  # the caller prints it (once)
    if channels is None:
        channels = 1 if all_gray else 3
    stacked = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # [n, 3, S, S]
    pixels = stacked[:, :1].contiguous() if channels == 1 else stacked.contiguous()
    return pixels, np.asarray(keep, dtype=np.int64), channels


# ----------------------------------------------------------------------------------------------
# splits


def _to_ids(labels: list[str], names: list[str], where: str) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    unseen = sorted({v for v in labels if v not in index})
    if unseen:
        shown = ", ".join(repr(u) for u in unseen[:5]) + (" ..." if len(unseen) > 5 else "")
        raise DataError(f"'{where}': {len(unseen)} label(s) never seen in training data: {shown}")
    return np.array([index[v] for v in labels], dtype=np.int64)


def load_labelled_images(
    path: str | Path,
    image_column: str,
    label_column: str,
    image_size: int,
    channels: int | None,
    label_names: list[str] | None,
    warnings: list[str],
    progress: bool = False,
) -> tuple[ImageSplit, list[str], int]:
    """One labelled image set: (split, label names, channels); labels must be in ``label_names`` if given."""
    paths, labels = read_image_source(path, image_column, label_column, warnings)
    assert labels is not None
    pixels, keep, channels = decode_images(paths, image_size, channels, warnings, str(path), progress)
    labels = [labels[i] for i in keep]
    if label_names is None:
        label_names = sorted(set(labels))
    y = _to_ids(labels, label_names, str(path))
    return ImageSplit(pixels, y, [paths[i] for i in keep]), label_names, channels


def load_image_splits(
    cfg: DataConfig, image_size: int, seed: int = 0, channels: int | None = None, progress: bool = False
) -> ImageSplits:
    """Train/dev/test images as ``cfg`` says (the scikit-learn digits when ``cfg.train`` is unset)."""
    if cfg.multi_label:
        raise DataError("data.multi_label is not supported for image classification; give one label per image")
    if cfg.train is None:
        return digits_splits(image_size, channels)
    warnings: list[str] = []
    train, labels, channels = load_labelled_images(
        cfg.train, cfg.image_column, cfg.label_column, image_size, channels, None, warnings, progress
    )
    if len(labels) < 2:
        raise DataError(f"'{cfg.train}': only one class ({labels[0]!r}); classification needs at least two")
    dev = test = None
    if cfg.dev is not None:
        dev = load_labelled_images(
            cfg.dev, cfg.image_column, cfg.label_column, image_size, channels, labels, warnings, progress
        )[0]
    elif cfg.dev_fraction > 0:
        keep, held = stratified_indices(train.labels, cfg.dev_fraction, seed)
        train, dev = train.subset(keep), train.subset(held)
        warnings.append(f"no dev data: held out a stratified {cfg.dev_fraction:.0%} of train ({len(dev)} images)")
    else:
        warnings.append("no dev split (data.dev_fraction=0): no per-epoch validation; the last epoch is kept")
    if cfg.test is not None:
        test = load_labelled_images(
            cfg.test, cfg.image_column, cfg.label_column, image_size, channels, labels, warnings, progress
        )[0]
    return ImageSplits(train, dev, test, labels, channels, str(cfg.train), warnings)


def digits_splits(image_size: int, channels: int | None = None) -> ImageSplits:
    """scikit-learn's 1,797 8x8 digits: stratified 70/10/20 train/dev/test split with a fixed seed."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(np.round(digits.images * (255.0 / 16.0)).astype(np.float32)).unsqueeze(1)  # [n,1,8,8]
    if image_size != 8:
        x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    pixels = x.round().clamp(0, 255).to(torch.uint8)
    if channels == 3:
        pixels = pixels.repeat(1, 3, 1, 1)
    y = digits.target.astype(np.int64)
    full = ImageSplit(pixels, y, [f"digits[{i}]" for i in range(len(y))])
    rest, test_idx = stratified_indices(y, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    frac = DIGITS_DEV_FRACTION / (1 - DIGITS_TEST_FRACTION)
    keep, dev_idx = stratified_indices(y[rest], frac, DIGITS_SPLIT_SEED)
    splits = ImageSplits(
        full.subset(rest[keep]),
        full.subset(rest[dev_idx]),
        full.subset(test_idx),
        [str(i) for i in range(10)],
        3 if channels == 3 else 1,
        "sklearn digits",
        [],
    )
    return splits
