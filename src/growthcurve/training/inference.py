"""Use a finished run: evaluate it on labelled data, or predict labels for new inputs.

`Predictor` and `evaluate_run` look up the run's kind in `growthcurve.training.registry` and call the
functions below that it names for that kind; the scoring itself is `growthcurve.training.scoring`, the same
code the recipes validate with.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from growthcurve.atomic import write_json
from growthcurve.config import FinetuneConfig, load_finetune_config
from growthcurve.data.images import decode_images, load_labelled_images
from growthcurve.data.readers import line_of, read_table, require_columns
from growthcurve.data.text import TextExamples, load_text_splits
from growthcurve.data.tokens import read_labelled
from growthcurve.errors import ConfigError, DataError, ModelError
from growthcurve.evaluation.answer import answer_rows
from growthcurve.evaluation.classification import classification_metrics, write_reports
from growthcurve.evaluation.ner import entities, write_ner_reports
from growthcurve.evaluation.ood import OodDetector, load_detector, ood_report
from growthcurve.evaluation.slices import MIN_SLICE_ROWS, N_BOOT, slice_metrics
from growthcurve.training.batching import Encoded, encode_texts, encode_words
from growthcurve.training.explain import check_explainable, explain_texts
from growthcurve.training.ood import missing_detector, probs_from_logits, run_scorer
from growthcurve.training.registry import kind_of
from growthcurve.training.runfolder import LoadedRun, load_run, read_meta
from growthcurve.training.scoring import (
    decode,
    evaluate_tokens,
    image_probs,
    join_pairs,
    logits_loss,
    predict_logits_features,
    predict_probs,
    split_metrics,
    tfidf_split,
    word_log_probs,
)

CPU = torch.device("cpu")
EVAL_BATCH = 64

Scored = tuple[dict[str, float], dict[str, Any] | str, list[str], dict[str, Any]]
"""What an evaluator returns: metrics, the report it wrote (a classification report dict, or the seqeval report
text of a token run), data warnings, and extras (``ood``, ``slices``)."""


@dataclass
class EvalOptions:
    """What `evaluate_run` measures besides the metrics: out-of-scope rows and slices (text classification)."""

    oos_label: str | None = None  # rows so labelled are out of scope; None: the run's data.oos_label, else "oos"
    slice_by: str | None = None  # a column of the file: metrics per value with bootstrap intervals
    min_slice_rows: int = MIN_SLICE_ROWS
    n_boot: int = N_BOOT
    seed: int = 0


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
    options: EvalOptions | None = None,
) -> dict[str, Any]:
    """Metrics and reports of a run's best model on a labelled file (columns as in training unless given);
    for text classifiers also out-of-scope metrics (rows labelled ``options.oos_label``) and slices."""
    options = options or EvalOptions()
    _, meta, _ = read_meta(run_dir)
    kind = kind_of(meta)
    if options.slice_by is not None and (kind.scores is None or meta.get("multi_label")):
        raise ModelError(
            f"--slice-by applies to single-label text-classification runs; '{run_dir}' is a "
            f"{'multi-label ' if meta.get('multi_label') else ''}{meta.get('task')} run"
        )
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir else Path(run_dir) / f"eval-{Path(data_path).stem}"
    evaluate = kind.function("evaluate")
    metrics, report, warnings, extras = evaluate(run, data_path, out, text_column, label_column, progress, options)
    if "slices" in extras:
        write_json(out / "slices.json", extras["slices"])
    write_json(out / "metrics.json", {"data": str(data_path), "metrics": metrics, "warnings": warnings, **extras})
    run_root = run.path.parent if run.path.name == "model" else run.path
    if "slices" in extras and out.resolve().parent == run_root.resolve():
        from growthcurve.training.modelcard import write_model_card

        write_model_card(run_root)  # the run's card shows the slices kept in its eval folders
    return {"metrics": metrics, "report": report, "out_dir": str(out), "warnings": warnings, **extras}


class Predictor:
    """Batched predictions from a run folder: ``Predictor("runs/latest").predict(["hi"])``."""

    def __init__(self, run_dir: str | Path, batch_size: int = 64) -> None:
        self.run = load_run(run_dir)
        self.kind = kind_of(self.run.meta)
        self.batch_size = batch_size
        # the run's out-of-scope detector (model/ood.json); None for runs made before detectors or without one
        self.detector = load_detector(self.run.path) if self.kind.scores is not None else None

    @property
    def labels(self) -> list[str]:
        return self.run.labels

    def predict_proba(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """Probabilities [n, num_labels] (softmax, or sigmoid for multi-label runs); image runs take paths."""
        if self.kind.predicts_rows:
            raise DataError(f"a {self.run.meta['task']} run predicts spans, not class probabilities: use predict()")
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.asarray(self.kind.function("predict")(self.run, texts, pairs, self.batch_size))

    def answer(
        self,
        texts: list[str],
        pairs: list[str] | None = None,
        top_k: int | list[int] = 1,
        explain: bool | list[bool] = False,
    ) -> list[dict[str, Any]]:
        """The prediction answer per input (`growthcurve.evaluation.answer`): label, score, top-k, the out-of-scope
        verdict when the run has a detector and, for the inputs ``explain`` asks for, the per-word attributions
        of the predicted label (`growthcurve.training.explain`). The input itself is not repeated (`predict`
        adds it). Token-classification runs answer with `predict` (entity spans)."""
        wanted = [explain] * len(texts) if isinstance(explain, bool) else list(explain)
        if any(wanted):
            check_explainable(self.run.meta, pairs)
        if not texts:
            return []
        verdict = None
        if self.detector is not None:
            probs, logits, feats = self.kind.function("scores")(self.run, texts, pairs, self.batch_size)
            verdict = self.detector.verdict(logits, feats)
        else:
            probs = self.predict_proba(texts, pairs)
        explanations: list[dict[str, Any] | None] | None = None
        if any(wanted):
            rows = [i for i, w in enumerate(wanted) if w]
            found = explain_texts(self.run, [texts[i] for i in rows], [int(np.argmax(probs[i])) for i in rows])
            explanations = [None] * len(texts)
            for i, e in zip(rows, found, strict=True):
                explanations[i] = e
        multi = bool(self.run.meta["multi_label"])
        return answer_rows(probs, self.labels, multi, top_k, verdict, explanations)

    def predict(
        self, texts: list[str], pairs: list[str] | None = None, top_k: int = 1, explain: bool = False
    ) -> list[dict[str, Any]]:
        """One dict per input: the input (``text``, or ``image`` for image runs) and its answer (`answer`).

        Token-classification runs return entity spans with character offsets instead (`entity_rows`).
        """
        if self.kind.predicts_rows:
            if explain:
                check_explainable(self.run.meta, pairs)
            rows: list[dict[str, Any]] = self.kind.function("predict")(self.run, texts, self.batch_size)
            return rows
        answers = self.answer(texts, pairs, top_k, explain)
        return [{self.kind.input_key: t, **a} for t, a in zip(texts, answers, strict=True)]


# ----------------------------------------------------------------------------------------------
# text classification (transformers and the neural baselines; TF-IDF)


def text_probs(run: LoadedRun, texts: list[str], pairs: list[str] | None, batch_size: int) -> np.ndarray:
    """Class probabilities of a run whose model reads token ids."""
    enc: Encoded = encode_texts(
        run.tokenizer, texts, pairs, np.zeros(len(texts), dtype=np.int64), run.meta["max_length"], progress=False
    )
    enc.labels = None  # type: ignore[assignment]
    pad_id = run.tokenizer.pad_token_id or 0
    multi = run.meta["multi_label"]
    return predict_probs(run.model, enc, pad_id, batch_size, _bf16(run), multi, CPU, progress=False)[0]


def tfidf_probs(run: LoadedRun, texts: list[str], pairs: list[str] | None, batch_size: int) -> np.ndarray:
    """Class probabilities of a TF-IDF run (pairs joined as in training)."""
    return np.asarray(run.model.predict_proba(join_pairs(texts, pairs)))


def _labelled_texts(
    run: LoadedRun,
    data_path: str | Path,
    text_column: str | None,
    label_column: str | None,
    oos_label: str | None = None,
) -> tuple[TextExamples, TextExamples | None, list[str]]:
    """A labelled text file read with the run's data settings, checked against the run's labels: its in-scope
    rows, its out-of-scope rows (labelled ``oos_label``, else the run's data.oos_label, else ``oos`` when that
    is not one of the run's labels) and the data warnings."""
    cfg = _run_config(run)
    data_cfg = cfg.data.model_copy(update={"train": str(data_path), "dev": str(data_path), "test": None})
    if text_column:
        data_cfg.text_column = text_column
    if label_column:
        data_cfg.label_column = label_column
    if oos_label is not None and oos_label in run.labels:
        raise ConfigError(f"--oos-label '{oos_label}' is one of the run's labels; it cannot mark out-of-scope rows")
    if not run.meta.get("multi_label"):
        data_cfg.oos_label = oos_label or cfg.data.oos_label or ("oos" if "oos" not in run.labels else None)
    splits = load_text_splits(data_cfg, label_names=run.labels)
    return splits.dev, splits.oos.get("dev"), splits.warnings  # type: ignore[return-value]


def _slice_values(data_path: str | Path, column: str, ex: TextExamples) -> list[Any]:
    """The ``column`` value of each scored row (rows the reader skipped are skipped here too); a missing value
    is an error naming the line, never a slice of its own."""
    df = read_table(data_path)
    require_columns(df, [column], data_path, "--slice-by")
    if ex.rows is None:
        raise DataError(f"'{data_path}': the scored rows cannot be matched to their '{column}' values")
    values: list[Any] = df[column].iloc[ex.rows].tolist()
    for pos, v in zip(ex.rows, values, strict=True):
        if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()):
            raise DataError(f"{data_path}:{line_of(df, int(pos))}: '{column}' is empty; give every row a slice value")
    return values


def _text_extras(
    run: LoadedRun,
    detector: OodDetector | None,
    data_path: str | Path,
    ex: TextExamples,
    oos: TextExamples | None,
    probs: np.ndarray,
    scores_of: Callable[[TextExamples], tuple[np.ndarray, np.ndarray | None]],
    in_scores: np.ndarray | None,
    options: EvalOptions,
) -> dict[str, Any]:
    """Out-of-scope metrics (with out-of-scope rows; else the share of in-scope rows answered) and slices."""
    extras: dict[str, Any] = {}
    multi = bool(run.meta.get("multi_label"))
    if detector is not None and in_scores is not None and not multi:
        correct = probs.argmax(axis=1) == ex.labels
        answered = in_scores <= detector.threshold
        ood: dict[str, Any] = {
            "detector": detector.detector,
            "threshold": detector.threshold,
            "in_scope_rows": len(ex),
            "in_scope_answered": float(answered.mean()),
            "in_scope_answered_accuracy": float(correct[answered].mean()) if answered.any() else None,
        }
        if oos is not None:
            oos_logits, oos_feats = scores_of(oos)
            ood.update(ood_report(in_scores, detector.score(oos_logits, oos_feats), detector.threshold, correct))
        extras["ood"] = ood
    if options.slice_by is not None:
        values = _slice_values(data_path, options.slice_by, ex)
        extras["slices"] = slice_metrics(
            ex.labels, probs.argmax(axis=1), values, options.slice_by, options.min_slice_rows, options.n_boot,
            seed=options.seed,
        )  # fmt: skip
    return extras


def _prepare_text_eval(
    run: LoadedRun, data_path: str | Path, text_column: str | None, label_column: str | None, options: EvalOptions
) -> tuple[TextExamples, TextExamples | None, list[str], OodDetector | None]:
    """Read the file and check everything a user can get wrong before the model runs: an out-of-scope row
    needs a detector, the slice column must exist."""
    ex, oos, warnings = _labelled_texts(run, data_path, text_column, label_column, options.oos_label)
    detector = load_detector(run.path)
    if oos is not None and detector is None:
        raise missing_detector(run.path.parent if run.path.name == "model" else run.path)
    if options.slice_by is not None:
        _slice_values(data_path, options.slice_by, ex)
    return ex, oos, warnings, detector


def evaluate_text_file(
    run: LoadedRun,
    data_path: str | Path,
    out: Path,
    text_column: str | None,
    label_column: str | None,
    progress: bool,
    options: EvalOptions,
) -> Scored:
    """Metrics and reports of a token-id text classifier on a labelled file, with its out-of-scope rows and
    slices (`EvalOptions`)."""
    ex, oos, warnings, detector = _prepare_text_eval(run, data_path, text_column, label_column, options)
    enc = encode_texts(run.tokenizer, ex.texts, ex.pairs, ex.labels, run.meta["max_length"], "tokenise", progress)
    multi = run.meta["multi_label"]
    pad_id = run.tokenizer.pad_token_id or 0
    logits, feats = predict_logits_features(run.model, enc, pad_id, EVAL_BATCH, _bf16(run), CPU, "evaluate", progress)
    probs = probs_from_logits(logits, multi)
    metrics = classification_metrics(ex.labels, probs, multi)
    metrics["loss"] = logits_loss(logits, ex.labels, multi)
    in_scores = detector.score(logits, feats) if detector is not None and not multi else None
    extras = _text_extras(run, detector, data_path, ex, oos, probs, run_scorer(run, EVAL_BATCH), in_scores, options)
    out.mkdir(parents=True, exist_ok=True)
    return metrics, write_reports(out, "eval", ex.labels, probs, run.labels, multi), warnings, extras


def evaluate_tfidf_file(
    run: LoadedRun,
    data_path: str | Path,
    out: Path,
    text_column: str | None,
    label_column: str | None,
    progress: bool,
    options: EvalOptions,
) -> Scored:
    """Metrics and reports of a TF-IDF run on a labelled file, with its out-of-scope rows and slices."""
    ex, oos, warnings, detector = _prepare_text_eval(run, data_path, text_column, label_column, options)
    multi = run.meta["multi_label"]
    metrics, probs = tfidf_split(run.model, ex, multi)
    scorer = run_scorer(run, EVAL_BATCH)
    in_scores = None
    if detector is not None and not multi:
        logits, feats = scorer(ex)
        in_scores = detector.score(logits, feats)
    extras = _text_extras(run, detector, data_path, ex, oos, probs, scorer, in_scores, options)
    out.mkdir(parents=True, exist_ok=True)
    return metrics, write_reports(out, "eval", ex.labels, probs, run.labels, multi), warnings, extras


# ----------------------------------------------------------------------------------------------
# token classification


# URLs, @mentions/#hashtags, words (with inner - or .), clitics like 's, then single symbols:
# close to how CoNLL/WNUT corpora are tokenised, so words at prediction time look like training words.
_WORD = re.compile(r"https?://\S+|www\.\S+|[@#]?\w+(?:[-.]\w+)*|'\w+|[^\w\s]")


def split_words(text: str, char_level: bool) -> tuple[list[str], list[tuple[int, int]]]:
    """Words (characters for character-level runs) of ``text`` with their character offsets."""
    if char_level:
        return list(text), [(i, i + 1) for i in range(len(text))]
    found = list(_WORD.finditer(text))
    return [m.group() for m in found], [m.span() for m in found]


def entity_rows(run: LoadedRun, inputs: list[str] | list[list[str]], batch_size: int = 64) -> list[dict[str, Any]]:
    """Entity spans with character offsets for raw texts (or pre-split word lists) from a token run.

    Each result: ``{"text", "entities": [{"type", "text", "start", "end", "score"}], "tokens", "tags"}``;
    ``score`` is the mean probability of the entity's tags. A word list is joined with single spaces.
    """
    meta, tags = run.meta, run.labels
    char_level = bool(meta.get("char_level"))
    texts: list[str] = []
    words: list[list[str]] = []
    spans: list[list[tuple[int, int]]] = []
    for item in inputs:
        if isinstance(item, str):
            w, s = split_words(item, char_level)
            text = item
        else:
            w = [str(x) for x in item]
            sep = "" if char_level else " "
            text = sep.join(w)
            s, pos = [], 0
            for x in w:
                s.append((pos, pos + len(x)))
                pos += len(x) + len(sep)
        texts.append(text)
        words.append(w)
        spans.append(s)
    if not texts:
        return []
    enc = encode_words(run.tokenizer, words, None, meta["max_length"], progress=False)
    enc.labels = None  # type: ignore[assignment]
    pad_id = run.tokenizer.pad_token_id or 0
    lps, _ = word_log_probs(
        run.model,
        enc,
        pad_id,
        batch_size,
        meta.get("precision") == "bf16",
        torch.device("cpu"),
        len(tags),
        progress=False,
    )
    pred = decode(lps, tags, meta["tag_scheme"])
    index = {t: i for i, t in enumerate(tags)}
    out = []
    for text, w, s, p, lp in zip(texts, words, spans, pred, lps, strict=True):
        ents = []
        for etype, a, b in entities(p, meta["tag_scheme"]):
            start, end = s[a][0], s[b - 1][1]
            score = float(np.mean([np.exp(lp[i, index[p[i]]]) for i in range(a, b)]))
            ents.append({"type": etype, "text": text[start:end], "start": start, "end": end, "score": round(score, 6)})
        out.append({"text": text, "entities": ents, "tokens": w, "tags": p})
    return out


def evaluate_token_file(
    run: LoadedRun,
    data_path: str | Path,
    out: Path,
    text_column: str | None,
    label_column: str | None,
    progress: bool,
    options: EvalOptions | None = None,
) -> Scored:
    """Entity-level metrics and reports of a token run's best model on a labelled file (the column options
    do not apply: words and tags are read as in training)."""
    ex, warnings = read_labelled(data_path, _run_config(run).data, run.labels, run.meta["tag_scheme"])
    index = {t: i for i, t in enumerate(run.labels)}
    tag_ids = [[index[t] for t in sent] for sent in ex.tags]
    enc = encode_words(run.tokenizer, ex.tokens, tag_ids, run.meta["max_length"], "tokenise", progress)
    scheme = run.meta["tag_scheme"]
    pad_id = run.tokenizer.pad_token_id or 0
    metrics, pred = evaluate_tokens(
        run.model, enc, ex, run.labels, scheme, pad_id, EVAL_BATCH, _bf16(run), CPU, "evaluate", progress
    )
    out.mkdir(parents=True, exist_ok=True)
    return metrics, write_ner_reports(out, "eval", ex.tags, pred, scheme, ex.tokens), warnings, {}


# ----------------------------------------------------------------------------------------------
# image classification


def image_probs_of_paths(run: LoadedRun, paths: list[str], pairs: None, batch_size: int) -> np.ndarray:
    """Probabilities for image files (one path per input); an undecodable file is an error naming it."""
    warnings: list[str] = []
    pixels, keep, _ = decode_images(
        [p.strip() for p in paths], run.meta["image_size"], run.meta["channels"], warnings, "predict"
    )
    if len(keep) != len(paths):
        raise DataError(warnings[0] + "; fix or remove those lines")
    return image_probs(run.model, pixels, run.meta["mean"], run.meta["std"], batch_size, CPU)


def evaluate_image_file(
    run: LoadedRun,
    data_path: str | Path,
    out: Path,
    image_column: str | None,
    label_column: str | None,
    progress: bool,
    options: EvalOptions | None = None,
) -> Scored:
    """Metrics and reports of an image run on a class-folder tree or a table of paths and labels."""
    data_cfg = _run_config(run).data
    warnings: list[str] = []
    split, _, _ = load_labelled_images(
        data_path,
        image_column or data_cfg.image_column,
        label_column or data_cfg.label_column,
        run.meta["image_size"],
        run.meta["channels"],
        run.labels,
        warnings,
        progress,
    )
    metrics, probs = split_metrics(run.model, split, run.meta, 128, CPU)
    out.mkdir(parents=True, exist_ok=True)
    return metrics, write_reports(out, "eval", split.labels, probs, run.labels, False), warnings, {}


# ----------------------------------------------------------------------------------------------
# reading inputs


def read_texts(lines: Iterable[str], source: str, text_column: str = "text") -> Iterator[str]:
    """Texts from plain lines or JSONL objects with ``text_column``; errors name the line."""
    for lineno, line in enumerate(lines, start=1):
        s = line.rstrip("\n")
        if not s.strip():
            continue
        if s.lstrip().startswith("{"):
            try:
                obj = json.loads(s)
            except json.JSONDecodeError as exc:
                raise DataError(f"{source}:{lineno}: malformed JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{source}:{lineno}: expected a JSON object, found {type(obj).__name__}")
            if text_column not in obj:
                raise DataError(f"{source}:{lineno}: no '{text_column}' field; fields are: {', '.join(obj)}")
            yield _text_value(obj[text_column], f"{source}:{lineno}", text_column)
        else:
            yield s


def _text_value(value: object, where: str, column: str) -> str:
    """A text cell must be a non-empty string: null, numbers or lists are an error, never silently str()-ed."""
    if isinstance(value, str) and value.strip():
        return value
    if value is None or isinstance(value, str) or (isinstance(value, float) and np.isnan(value)):
        raise DataError(f"{where}: '{column}' is empty; give a text or drop the row")
    raise DataError(f"{where}: '{column}' holds {value!r:.40} (type {type(value).__name__}), not a text; quote it")


TABLES = (".csv", ".tsv", ".parquet")


def read_inputs(file: str, text_column: str, stdin: Iterable[str] | None = None) -> list[str]:
    """The inputs `predict` reads: stdin or a text file (plain lines or JSONL), or a CSV/TSV/Parquet table read
    with the same reader as training and evaluation (the header is never a text)."""
    if file == "-":
        return list(read_texts(stdin if stdin is not None else sys.stdin, "<stdin>", text_column))
    p = Path(file)
    if p.is_dir():
        raise DataError(f"'{p}' is a folder; give a file with one text per line, JSONL, CSV, TSV or Parquet")
    if not p.is_file():
        raise DataError(f"input file '{p}' does not exist")
    if p.suffix.lower() in TABLES:
        df = read_table(p)
        require_columns(df, [text_column], p, "--text-column")
        return [_text_value(v, f"{p}:{line_of(df, i)}", text_column) for i, v in enumerate(df[text_column].tolist())]
    try:
        with p.open(encoding="utf-8") as fh:
            return list(read_texts(fh, str(p), text_column))
    except UnicodeDecodeError as exc:
        raise DataError(f"'{p}' is not UTF-8 text (byte {exc.start})") from None


# ----------------------------------------------------------------------------------------------
# batch prediction into one file, sharded across the processes of `accelerate launch`


def launched_processes() -> tuple[int, int]:
    """(rank, world) of this process: (0, 1) unless started by ``accelerate launch``/torchrun with several."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return 0, 1
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())  # gloo on CPU, nccl on GPUs
    return state.process_index, state.num_processes


def predict_to_file(
    predictor: Predictor,
    texts: list[str],
    out: str | Path,
    top_k: int = 1,
    progress: bool = True,
    explain: bool = False,
) -> int:
    """Write one JSON line per text to ``out`` in input order (atomically); returns the row count.

    Under ``accelerate launch`` rank r predicts rows ``r::world`` into a part file next to ``out``; after
    a barrier rank 0 interleaves the parts back into input order, streaming, and removes them. Files, not a
    collective gather, so rank 0 never holds every rank's rows in memory at once.
    """
    from tqdm.auto import tqdm

    from growthcurve.atomic import atomic_open

    rank, world = launched_processes()
    out = Path(out)
    mine = texts[rank::world]
    rows_done = 0
    target = out if world == 1 else _part_path(out, rank, world)
    bar = tqdm(total=len(mine), desc=f"predict (rank {rank}/{world})" if world > 1 else "predict", unit="text",
               disable=not progress or rank != 0, dynamic_ncols=True)  # fmt: skip
    with atomic_open(target) as fh:
        step = max(predictor.batch_size * 16, 1)  # chunks keep memory flat and the bar moving
        for start in range(0, len(mine), step):
            for r in predictor.predict(mine[start : start + step], top_k=top_k, explain=explain):
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
                rows_done += 1
            bar.update(min(step, len(mine) - start))
    bar.close()
    if world == 1:
        return rows_done
    from accelerate import PartialState

    PartialState().wait_for_everyone()
    if rank == 0:
        parts = [_part_path(out, r, world) for r in range(world)]
        handles = [p.open(encoding="utf-8") for p in parts]
        try:
            with atomic_open(out) as fh:
                for i in range(len(texts)):  # row i is line i // world of part i % world
                    fh.write(handles[i % world].readline())
        finally:
            for h in handles:
                h.close()
        for p in parts:
            p.unlink()
    PartialState().wait_for_everyone()  # the merged file exists before any rank reports success
    return len(texts)


def _part_path(out: Path, rank: int, world: int) -> Path:
    return out.with_name(f".{out.name}.part-{rank}-of-{world}")
