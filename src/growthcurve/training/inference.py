"""Use a finished run: evaluate it on labelled data, or predict labels for new texts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from growthcurve.config import DataConfig, FinetuneConfig, load_finetune_config
from growthcurve.data.text import load_text_splits
from growthcurve.errors import DataError
from growthcurve.evaluation.classification import write_reports
from growthcurve.training.batching import Encoded, encode_texts
from growthcurve.training.runfolder import LoadedRun, load_run


def _run_config(run: LoadedRun) -> FinetuneConfig:
    cfg_file = run.path.parent / "config.yaml"
    return load_finetune_config(cfg_file if cfg_file.is_file() else None)


def _bf16(run: LoadedRun) -> bool:
    return run.meta.get("precision") == "bf16"


def evaluate_run(
    run_dir: str | Path,
    data_path: str | Path,
    out_dir: str | Path | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Metrics and reports of a run's best model on a labelled file (columns as in training unless given)."""
    from growthcurve.training.text import evaluate_split

    run = load_run(run_dir)
    if run.meta.get("task") == "token-classification":
        from growthcurve.training.token import evaluate_token_run

        tcfg = _run_config(run).data
        out_tok = Path(out_dir) if out_dir else Path(run_dir) / f"eval-{Path(data_path).stem}"
        return evaluate_token_run(run, tcfg, data_path, out_tok, progress)
    if run.meta.get("task") == "image-classification":
        from growthcurve.training.image import evaluate_image_run

        return evaluate_image_run(run, data_path, out_dir, text_column, label_column, progress)
    cfg = _run_config(run)
    data_cfg: DataConfig = cfg.data.model_copy(update={"train": str(data_path), "dev": str(data_path), "test": None})
    if text_column:
        data_cfg.text_column = text_column
    if label_column:
        data_cfg.label_column = label_column
    splits = load_text_splits(data_cfg, label_names=run.labels)
    ex = splits.dev
    if run.meta.get("model_type") == "tfidf":
        from growthcurve.training.baseline import evaluate_tfidf

        metrics, probs = evaluate_tfidf(run, ex)
    else:
        max_length = run.meta["max_length"]
        enc = encode_texts(run.tokenizer, ex.texts, ex.pairs, ex.labels, max_length, "tokenise", progress)
        metrics, probs = evaluate_split(
            run.model,
            enc,
            run.tokenizer.pad_token_id or 0,
            cfg,
            _bf16(run),
            run.meta["multi_label"],
            torch.device("cpu"),
            "evaluate",
            progress,
        )
    out = Path(out_dir) if out_dir else Path(run_dir) / f"eval-{Path(data_path).stem}"
    out.mkdir(parents=True, exist_ok=True)
    report = write_reports(out, "eval", ex.labels, probs, run.labels, run.meta["multi_label"])
    from growthcurve.io import write_json

    write_json(out / "metrics.json", {"data": str(data_path), "metrics": metrics, "warnings": splits.warnings})
    return {"metrics": metrics, "report": report, "out_dir": str(out), "warnings": splits.warnings}


class Predictor:
    """Batched predictions from a run folder: ``Predictor("runs/latest").predict(["hi"])``."""

    def __init__(self, run_dir: str | Path, batch_size: int = 64) -> None:
        self.run = load_run(run_dir)
        self.batch_size = batch_size

    @property
    def labels(self) -> list[str]:
        return self.run.labels

    def predict_proba(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """Probabilities [n, num_labels] (softmax, or sigmoid for multi-label runs)."""
        from growthcurve.training.text import predict_probs

        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        if self.run.meta.get("task") == "image-classification":  # the "texts" are image paths
            from growthcurve.training.image import predict_image_paths

            return predict_image_paths(self.run, texts, self.batch_size)
        if self.run.meta.get("model_type") == "tfidf":
            from growthcurve.training.baseline import tfidf_texts

            return self.run.model.predict_proba(tfidf_texts(texts, pairs))
        enc: Encoded = encode_texts(
            self.run.tokenizer,
            texts,
            pairs,
            np.zeros(len(texts), dtype=np.int64),
            self.run.meta["max_length"],
            progress=False,
        )
        enc.labels = None  # type: ignore[assignment]
        probs, _ = predict_probs(
            self.run.model,
            enc,
            self.run.tokenizer.pad_token_id or 0,
            self.batch_size,
            _bf16(self.run),
            self.run.meta["multi_label"],
            torch.device("cpu"),
            progress=False,
        )
        return probs

    def predict(self, texts: list[str], pairs: list[str] | None = None, top_k: int = 1) -> list[dict[str, Any]]:
        """One dict per text: label (or labels for multi-label), score, and the top-k labels with probabilities.

        Token-classification runs return entity spans with character offsets instead (``predict_entities``).
        """
        if self.run.meta.get("task") == "token-classification":
            from growthcurve.training.token import predict_entities

            return predict_entities(self.run, texts, self.batch_size)
        probs = self.predict_proba(texts, pairs)
        out = []
        k = max(1, min(top_k, len(self.labels)))
        for text, p in zip(texts, probs, strict=True):
            order = np.argsort(-p)[:k]
            key = "image" if self.run.meta.get("task") == "image-classification" else "text"
            row: dict[str, Any] = {key: text}
            if self.run.meta["multi_label"]:
                row["labels"] = [self.labels[i] for i in np.flatnonzero(p >= 0.5)]
            else:
                row["label"] = self.labels[int(order[0])]
                row["score"] = round(float(p[order[0]]), 6)
            row["top_k"] = [{"label": self.labels[int(i)], "probability": round(float(p[i]), 6)} for i in order]
            out.append(row)
        return out


def read_texts(lines: Iterable[str], source: str, text_column: str = "text") -> Iterator[str]:
    """Texts from plain lines or JSONL objects with ``text_column``; errors name the line."""
    import json

    for lineno, line in enumerate(lines, start=1):
        s = line.rstrip("\n")
        if not s.strip():
            continue
        if s.lstrip().startswith("{"):
            try:
                obj = json.loads(s)
            except json.JSONDecodeError as exc:
                raise DataError(f"{source}:{lineno}: malformed JSON ({exc.msg})") from None
            if text_column not in obj:
                raise DataError(f"{source}:{lineno}: no '{text_column}' field; fields are: {', '.join(obj)}")
            yield str(obj[text_column])
        else:
            yield s
