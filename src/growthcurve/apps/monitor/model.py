"""`monitor fit`: a sentiment run (and a topic run when the data has topic labels) through the engine.

A monitor folder holds ``sentiment/`` and optionally ``topic/`` (ordinary run folders, served and
evaluated like any other) and ``monitor.json`` naming the negative label.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from growthcurve.errors import ConfigError, DataError, ModelError

NEGATIVE_NAMES = ("negative", "bearish", "neg")


def _labels_of(path: Path, column: str) -> list[str]:
    from growthcurve.data.readers import read_table, require_columns

    df = read_table(path)
    require_columns(df, [column], path)
    return sorted(df[column].astype(str).unique())


def pick_negative(labels: list[str], negative_label: str | None) -> str:
    """The label that counts as negative: the one given, or the one named negative/bearish/neg."""
    if negative_label is not None:
        if negative_label not in labels:
            raise ConfigError(f"--negative-label '{negative_label}' is not a label of the data ({', '.join(labels)})")
        return negative_label
    found = [lab for lab in labels if lab.lower() in NEGATIVE_NAMES]
    if len(found) != 1:
        raise ConfigError(
            f"cannot tell which sentiment label is negative among {', '.join(labels)}: pass --negative-label"
        )
    return found[0]


def _write_default_data(out: Path) -> dict[str, Path]:
    from growthcurve.apps.monitor.synthetic import labelled_rows

    paths = {}
    for split, (n, seed) in {"train": (600, 0), "dev": (200, 1)}.items():
        p = out / "data" / f"{split}.csv"
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, ["text", "topic", "sentiment"])
            w.writeheader()
            w.writerows(labelled_rows(n, seed))
        paths[split] = p
    return paths


def fit_monitor(
    out: Path,
    train: Path | None = None,
    dev: Path | None = None,
    text_column: str = "text",
    sentiment_column: str = "sentiment",
    topic_column: str | None = "topic",
    negative_label: str | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train the sentiment (and topic) runs into ``out``; returns what ``monitor.json`` records.

    No ``train``: generated financial headlines (4 topics, 3 sentiments) so the command works anywhere.
    ``topic_column`` absent from the data: no topic model (the stream's own ``topic`` field, or "all").
    """
    from growthcurve.atomic import write_json
    from growthcurve.config import load_finetune_config
    from growthcurve.data.readers import read_table
    from growthcurve.training.dispatch import run_finetune

    if train is None:
        if dev is not None:
            raise ConfigError("--dev needs --data (the default data brings its own dev split)")
        paths = _write_default_data(out)
        train, dev = paths["train"], paths["dev"]
        text_column, sentiment_column, topic_column = "text", "sentiment", "topic"
        log(f"no --data: training on generated financial headlines ({train})")
    columns = list(read_table(train).columns)
    if sentiment_column not in columns:
        raise DataError(
            f"'{train}' has no column '{sentiment_column}' (set --sentiment-column); columns are: {', '.join(columns)}"
        )
    has_topic = topic_column is not None and topic_column in columns
    sentiment_labels = _labels_of(train, sentiment_column)
    negative = pick_negative(sentiment_labels, negative_label)
    base = [f"data.train={train}", f"data.text_column={text_column}"]
    if dev is not None:
        base.append(f"data.dev={dev}")
    meta: dict[str, Any] = {"negative_label": negative, "sentiment_labels": sentiment_labels, "topic_run": None}
    runs = [("sentiment", sentiment_column)] + ([("topic", topic_column)] if has_topic else [])
    for name, column in runs:
        log(f"training the {name} model on column '{column}' ...")
        cfg = load_finetune_config(
            None, [*base, f"data.label_column={column}", f"output_dir={out / name}", *(overrides or [])]
        )
        res = run_finetune(cfg, progress=progress)
        meta[f"{name}_run"] = name
        meta[f"{name}_dev"] = res.dev
    write_json(out / "monitor.json", meta)
    return meta


class RunClassifier:
    """The trained runs of a monitor folder as a `Classifier` (batched through the engine's `Predictor`)."""

    def __init__(self, monitor_dir: Path, batch_size: int = 64, negative_label: str | None = None) -> None:
        import json

        from growthcurve.training.inference import Predictor

        meta_path = monitor_dir / "monitor.json"
        if not meta_path.is_file():
            raise ModelError(
                f"'{monitor_dir}' is not a monitor folder (no monitor.json): run `growthcurve monitor fit`"
            )
        try:
            self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
            self.sentiment = Predictor(monitor_dir / self.meta["sentiment_run"], batch_size=batch_size)
            topic = self.meta.get("topic_run")
            self.topic = Predictor(monitor_dir / topic, batch_size=batch_size) if topic else None
        except ModelError:
            raise
        except (OSError, ValueError, KeyError) as exc:  # a half-copied or hand-edited folder
            raise ModelError(f"cannot load the monitor folder '{monitor_dir}': {type(exc).__name__}: {exc}") from None
        self.negative_label = pick_negative(list(self.sentiment.labels), negative_label or self.meta["negative_label"])

    def classify(self, texts: list[str]) -> tuple[list[bool], list[str | None]]:
        sent = self.sentiment.predict(texts)
        topics: list[str | None] = (
            [p["label"] for p in self.topic.predict(texts)] if self.topic is not None else [None] * len(texts)
        )
        return [p["label"] == self.negative_label for p in sent], topics

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """Per text: sentiment label and probability, negative flag, topic (None without a topic model)."""
        sent = self.sentiment.predict(texts)
        topics = self.topic.predict(texts) if self.topic is not None else [None] * len(texts)
        return [
            {
                "label": s["label"],
                "score": s["score"],
                "negative": s["label"] == self.negative_label,
                "topic": None if t is None else t["label"],
                "topic_score": None if t is None else t["score"],
            }
            for s, t in zip(sent, topics, strict=True)
        ]
